"""Shared fixtures: real photos from scikit-image and videos built from them (helpers in
media.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from media import SHARED_DATA, astronaut_bgr, camera_bgr, panning_frames, write_video

# The web tests' `server` fixture lives beside the Server class it starts.
pytest_plugins = ["webserver"]

# Worker processes for `-n auto`: one per core, at most four. Each loads its own models and
# starts veil processes that use every core, so more workers than that only add memory.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return astronaut_bgr()


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    return camera_bgr()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture()
def face_video(tmp_path: Path, astronaut: np.ndarray) -> Path:
    """2 s of the astronaut panning, with AAC audio and identifying container tags."""
    return write_video(
        tmp_path / "clip.mp4",
        panning_frames(astronaut, 30),
        fps=15,
        audio_seconds=2.0,
        metadata={"title": "interview", "location": "+48.8584+002.2945/", "artist": "Jane Doe"},
    )
