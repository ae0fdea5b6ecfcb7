"""The web camera's frames: anonymized, and hidden whole when detection fails."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from veil.detectors import Detector  # noqa: E402
from veil.pipeline import Pipeline  # noqa: E402
from veil.web.live import LiveSession  # noqa: E402

from media import ASTRONAUT_FACE, mean_abs_diff  # noqa: E402
from webserver import jpeg_bytes  # noqa: E402


class Failing(Detector):
    """A detector whose inference breaks (a real failure mode: a corrupt model or out of memory)."""

    def detect(self, frames):
        raise MemoryError("out of memory")


def test_live_frame_fails_closed(astronaut):
    session = LiveSession(Pipeline(detector=Failing()))
    out = np.asarray(Image.open(io.BytesIO(session.process(jpeg_bytes(astronaut)))))[:, :, ::-1]
    assert out.shape == astronaut.shape
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert mean_abs_diff(astronaut[y1:y2, x1:x2], out[y1:y2, x1:x2]) > 12
    assert mean_abs_diff(astronaut[380:], out[380:]) > 12, "the whole frame must be hidden"
    assert session.process(b"not a picture") is None


def test_live_frame_anonymizes(astronaut):
    session = LiveSession(Pipeline())
    out = np.asarray(Image.open(io.BytesIO(session.process(jpeg_bytes(astronaut)))))[:, :, ::-1]
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert (
        mean_abs_diff(
            astronaut[y1 + 40 : y2 - 40, x1 + 30 : x2 - 30],
            out[y1 + 40 : y2 - 40, x1 + 30 : x2 - 30],
        )
        > 12
    )
    assert mean_abs_diff(astronaut[380:], out[380:]) < 5
