"""Peak memory of a whole run on a 1080p video, in its own process."""

import cv2
import numpy as np

from media import ENV, VEIL_CLI, panning_frames, peak_memory_mib, write_video

LIMIT_MIB = 1024


def test_1080p_video_stays_under_one_gib(tmp_path, astronaut):
    """More frames than the look-ahead window holds, so every queue and the window fill."""
    photo = cv2.resize(astronaut, (1080, 1080), interpolation=cv2.INTER_CUBIC)
    canvas = np.zeros((1080, 1920, 3), np.uint8)
    canvas[:, 400:1480] = photo
    src = write_video(tmp_path / "hd.mp4", panning_frames(canvas, 40), fps=25)
    run, peak = peak_memory_mib(VEIL_CLI, src, "-o", tmp_path / "out.mp4", "-q", env=ENV)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.mp4").is_file()
    assert peak < LIMIT_MIB, f"peak {peak} MiB"
