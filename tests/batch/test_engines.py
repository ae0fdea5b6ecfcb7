"""The local pool's workers: they end with their driver and survive running out of memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from batch_media import journal_rows, photo_folder, small_astronaut, worker_pids
from media import ENV, LOW_MEMORY_ENV, big_photo, limit_memory, veil_address_space_mib


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_stop_when_the_driver_is_killed(tmp_path):
    source = photo_folder(tmp_path / "in", 30)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "veil", "batch", str(source), "-o", str(out), "-j", "2", "-q"]
    driver = subprocess.Popen(command, env=ENV, stderr=subprocess.DEVNULL)
    journal = out / "veil-batch.sqlite"
    deadline = time.monotonic() + 240
    workers: list[int] = []
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            if journal.exists() and journal_rows(journal):
                workers = worker_pids(driver.pid)
                if len(workers) == 2:
                    break
            time.sleep(0.02)
        assert len(workers) == 2, "the batch should have been killed while its workers worked"
        driver.kill()  # SIGKILL: the driver cannot tell its workers anything
        driver.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(pid) for pid in workers):
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers)
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert len(journal_rows(journal)) < 30


def test_a_second_ctrl_c_cannot_cut_a_workers_cleanup_short():
    """Ctrl-C reaches a worker from the terminal and again from the driver while it unwinds:
    the first interrupts the work, the second must not interrupt the deletion after it."""
    code = (
        "import os, signal, time\n"
        "from veil.batch import engines\n"
        "signal.signal(signal.SIGINT, engines._interrupt_once)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # the driver's, during the cleanup\n"
        "    time.sleep(0.2)\n"
        "    print('cleaned up')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cleaned up"


@pytest.mark.slow
def test_out_of_memory_fails_that_file_and_the_batch_goes_on(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    big_photo(source / "big.jpg")  # 95 MP: decoding alone needs more than the 256 MiB left
    cv2.imwrite(str(source / "small.jpg"), small_astronaut())
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "veil", "batch", str(source), "-o", str(out), "-j", "1", "-q"],
        env=LOW_MEMORY_ENV,
        preexec_fn=limit_memory(veil_address_space_mib() + 256),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "veil-batch-summary.json").read_text())
    assert summary["processed"] == 1
    assert [f["file"] for f in summary["failures"]] == [str(source / "big.jpg")]
    error = summary["failures"][0]["error"]
    assert "memory" in error.lower()
    assert not error.startswith("internal error")  # running out is no bug in veil
    assert (out / "small.jpg").is_file()
