"""Peak memory of a whole run on a 1080p video, in its own process."""

import os
import subprocess
import sys

import cv2
import numpy as np

from media import ENV, panning_frames, write_video

LIMIT_MIB = 1024


def test_1080p_video_stays_under_one_gib(tmp_path, astronaut):
    """More frames than the look-ahead window holds, so every queue and the window fill."""
    photo = cv2.resize(astronaut, (1080, 1080), interpolation=cv2.INTER_CUBIC)
    canvas = np.zeros((1080, 1920, 3), np.uint8)
    canvas[:, 400:1480] = photo
    src = write_video(tmp_path / "hd.mp4", panning_frames(canvas, 40), fps=25)
    proc = subprocess.Popen(
        [sys.executable, "-m", "veil", str(src), "-o", str(tmp_path / "out.mp4"), "-q"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert os.waitstatus_to_exitcode(status) == 0, err
    assert (tmp_path / "out.mp4").is_file()
    assert usage.ru_maxrss / 1024 < LIMIT_MIB, f"peak {usage.ru_maxrss / 1024:.0f} MiB"
