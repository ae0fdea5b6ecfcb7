"""Live mode: camera frames in over a WebSocket, anonymized frames out.

Fail closed: the page never draws the camera's own frames, only what comes
back from here. A frame whose detection or hiding fails comes back blurred as
a whole; a frame that cannot even be decoded gets no picture back, only a
short error message, so nothing unprocessed is ever shown.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from .. import hide as anon
from ..errors import InputError
from ..frame import Frame
from ..hide import methods
from ..io.images import decode_image_bytes
from ..pipeline import Pipeline
from ..tracking import create_filter

log = logging.getLogger("veil.web")

LIVE_FPS = 15.0
JPEG_QUALITY = 80


def blur_whole(image: np.ndarray) -> np.ndarray:
    """The whole frame hidden as one big face: nothing recognisable survives."""
    h, w = image.shape[:2]
    return methods.blur(image, float(max(h, w)), methods.DEFAULT_BLUR_STRENGTH)


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


class LiveSession:
    """One camera stream: its own temporal filter (live, no look-ahead) over a shared pipeline's detector."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.temporal = create_filter(
            pipeline.options.tracking,
            LIVE_FPS,
            live=True,
            threshold=pipeline.options.detector.threshold,
        )
        self.index = 0
        self.started = time.monotonic()

    def process(self, data: bytes) -> bytes | None:
        """Anonymized JPEG for one encoded camera frame; None if it is not a picture at all."""
        try:
            image = decode_image_bytes(data, "camera frame")
        except InputError:
            return None
        frame = Frame(self.index, time.monotonic() - self.started, image)
        self.index += 1
        try:
            dets = self.pipeline.detect([image], keep_weak=True)[0]
            released = dict(self.temporal.push(frame, dets))
            out = anon.apply(image, released[frame.index], self.pipeline.options.anonymize)
        except Exception:
            log.exception(
                "live frame %d could not be anonymized; sending it blurred whole", frame.index
            )
            out = blur_whole(image)
        return encode_jpeg(out)
