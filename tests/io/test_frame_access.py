"""Frames by index, matching the order `VideoSource.frames` decodes them in."""

from __future__ import annotations

import numpy as np
import pytest

from veil.errors import InputError
from veil.io.frame_access import CHUNK, FrameReader

from media import mean_abs_diff, panning_frames, read_video, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut):
    # Keyframes 12 apart, so reading frame N means seeking and decoding from a keyframe.
    path = tmp_path_factory.mktemp("fa") / "pan.mp4"
    return write_video(path, panning_frames(astronaut, CHUNK + 20, step=2), fps=10, gop=12)


def test_any_frame_is_the_one_decoded_in_order(clip):
    decoded, times = read_video(clip)
    with FrameReader(clip) as reader:
        assert reader.count == len(decoded)
        assert np.allclose(reader.times(), times)
        for index in (0, 13, 25, len(decoded) - 1, 7):
            frame = reader.frame(index)
            assert frame.index == index
            assert mean_abs_diff(frame.image, decoded[index]) == 0


def test_walking_backwards_and_forwards_visits_every_frame_once(clip):
    with FrameReader(clip) as reader:
        back = [f.index for f in reader.walk(40, -1)]
        ahead = [f.index for f in reader.walk(40, 1)]
        assert back == list(range(39, -1, -1))
        assert ahead == list(range(41, reader.count))


def test_a_frame_past_the_end_is_a_one_line_error(clip):
    with FrameReader(clip) as reader, pytest.raises(InputError, match="has 52 frames"):
        reader.frame(52)
