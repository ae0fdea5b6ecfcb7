"""Timestamps survive a container whose muxer picks its own time base (MPEG-TS 1/90000 -> Matroska 1/1000)."""

from __future__ import annotations

import numpy as np
import pytest

from veil.detectors import DetectorOptions
from veil.pipeline import JobOptions, Pipeline

from media import panning_frames, read_video, write_video


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_ts_to_other_container_keeps_times(tmp_path, astronaut, suffix):
    source = write_video(
        tmp_path / "in.ts", panning_frames(astronaut[:256, :256], 60, step=1), fps=25
    )
    _, times_in = read_video(source)
    result = Pipeline(JobOptions(detector=DetectorOptions(max_size=256))).run(
        [source], tmp_path / f"out{suffix}"
    )[0]
    _, times_out = read_video(result.output)
    assert len(times_out) == len(times_in)
    assert np.allclose(
        np.array(times_out) - times_out[0], np.array(times_in) - times_in[0], atol=0.002
    )
