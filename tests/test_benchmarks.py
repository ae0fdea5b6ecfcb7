"""The prepared GPU measurement runs end to end where there is no GPU: it is run unattended on
a machine lent for minutes, where a script that fails half way costs the whole chance."""

import subprocess
import sys

import pytest

from media import ENV, ROOT


@pytest.mark.slow
def test_the_gpu_script_runs_its_cpu_version_through(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--frames", "6"]
        + ["--clips", str(tmp_path)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert "no GPU" in out
    detector_row = out.split("## Detector only")[1].split("## End to end")[0]
    assert "| 1 |" in detector_row  # batch 1 on the CPU, with its fps
    assert "veil --device cpu (software codecs) |" in out and "failed" not in out
