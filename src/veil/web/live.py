"""Live mode: camera frames in over a WebSocket, anonymized frames out.

Each camera runs the one frame loop (pipeline.FrameLoop) with the live detection strategy,
like `veil live`. Fail closed: the page never draws the camera's own frames, only what comes
back from here. A frame whose detection or hiding fails comes back blurred as a whole; a frame
that cannot even be decoded gets no picture back, only a short error message, so nothing
unprocessed is ever shown.
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from ..errors import InputError
from ..frame import Frame
from ..io.images import decode_image_bytes
from ..pipeline import DeadlineDetection, FrameLoop, Pipeline

log = logging.getLogger("veil.web")

LIVE_FPS = 15.0
JPEG_QUALITY = 80


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


class LiveSession:
    """One camera stream: its own frame loop (live temporal filter, no look-ahead) over a
    shared pipeline's detector.

    max_latency: seconds after a frame arrived by which its detections must be ready, or it
    comes back blurred whole. None (the default) waits for them: the page sends its next frame
    only when this one came back, so frames never queue up and a slow detector shows as a lower
    frame rate, not as hidden pictures. The detection worker thread ends with the session.
    """

    def __init__(self, pipeline: Pipeline, *, max_latency: float | None = None) -> None:
        detection = DeadlineDetection(pipeline, max_latency=max_latency)
        self.loop = FrameLoop(pipeline, detection, fps=LIVE_FPS, log=log.warning)
        self.index = 0
        self.started = time.monotonic()

    def process(self, data: bytes) -> bytes | None:
        """Anonymized JPEG for one encoded camera frame; None if it is not a picture at all."""
        arrived = time.monotonic()
        try:
            image = decode_image_bytes(data, "camera frame")
        except InputError:
            return None
        frame = Frame(self.index, arrived - self.started, image)
        self.index += 1
        # The live filter releases each frame when it is pushed, hidden or blurred whole.
        [out] = self.loop.push(frame, arrived)
        return encode_jpeg(out.image)
