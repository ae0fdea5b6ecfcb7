"""YOLO layouts: ultralytics (YOLOv5, YOLOv8, YOLO11; boxes, keypoints, end-to-end) and YOLOv5-face.

ultralytics exports one output, [1, 4 + classes (+ K x dims), N]: box centre x,
centre y, width, height in input pixels, one score per class (no objectness),
then K keypoints (x, y in pixels, and a visibility score when dims is 3);
some tools transpose it to [1, N, ...]. The export's metadata names the classes
(`names`), the keypoints (`kpt_shape`, face models have [5, 3]) and whether NMS
is inside the model (`end2end`, or `nms` among its `args`), in which case the
output is [1, D, 6 + K x dims]: x1, y1, x2, y2, score, class, keypoints.
ultralytics/yolov5 exports are [1, N, 5 + classes] with an objectness column.

deepcam-cn's YOLOv5-face export is [1, N, 16]: centre x, centre y, width,
height, objectness, five landmarks (x, y) in input pixels, face score.

Both take a letterboxed RGB image in 0..1 (grey padding, 114), 640 px unless
the model is fixed to another size or its metadata says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...detections import CLASS_NAMES, Detections
from ...errors import DetectorError, OptionError
from .common import Convention, Graph, Layout, centre_box, check_scores, select, table

NMS_IOU = 0.45
FACE_NMS_IOU = 0.5  # deepcam-cn's evaluation setting
TARGET_IDS = {name: cid for cid, name in CLASS_NAMES.items()}
# Without metadata, a one-class model with five landmarks has 4 + 1 + 5 x dims channels.
FACE_KEYPOINTS = 5


def parse_classes(text: str | None) -> dict[int, int] | None:
    """'0,2' or '0=person,2=face' -> model class -> class_id kept (None = keep all, ids as-is)."""
    if not text:
        return None
    mapping: dict[int, int] = {}
    for item in text.split(","):
        key, _, label = item.strip().partition("=")
        try:
            model_id = int(key)
        except ValueError:
            raise OptionError(
                f"bad --classes entry {item!r}; use ids like 0,2 or 0=person,2=face"
            ) from None
        if label and label not in TARGET_IDS:
            raise OptionError(f"bad --classes label {label!r}; use one of: {', '.join(TARGET_IDS)}")
        mapping[model_id] = TARGET_IDS[label] if label else model_id
    return mapping


def convention(graph: Graph) -> Convention:
    """Letterboxed RGB in 0..1; a dynamic input runs at the export's own size when it says."""
    imgsz = graph.meta("imgsz")
    side = max(imgsz) if isinstance(imgsz, list) and imgsz else imgsz
    return Convention(
        rgb=True, std=255.0, side=side if isinstance(side, int) else 640, centred=True, pad=114
    )


@dataclass(frozen=True)
class Ultralytics:
    """ultralytics' output; see the module notes."""

    convention: Convention
    classes: int | None
    transposed: bool = False
    keypoints: tuple[int, int] = (0, 0)
    objectness: bool = False
    end2end: bool = False

    @property
    def name(self) -> str:
        kind = "YOLOv5" if self.objectness else "YOLOv8/YOLO11"
        extra = f", {self.keypoints[0]} keypoints" if self.keypoints[0] else ""
        return f"{kind} (ultralytics{', NMS inside' if self.end2end else ''}{extra})"

    def decode(
        self, outputs: Sequence[np.ndarray], height: int, width: int, threshold: float
    ) -> Detections:
        out = np.asarray(outputs[0], np.float32)
        rows = out.reshape(out.shape[-2:])
        if not (self.transposed or self.end2end):
            rows = rows.T
        count, dims = self.keypoints
        if self.end2end:
            xyxy, score, cls = rows[:, :4], rows[:, 4], rows[:, 5]
            check_scores(score, self.name)
            points = rows[:, 6 : 6 + count * dims]
        else:
            xyxy = centre_box(rows[:, :4])
            first = 5 if self.objectness else 4
            last = rows.shape[1] - count * dims
            scores = rows[:, first:last]
            check_scores(scores, self.name)
            cls = scores.argmax(axis=1)
            score = scores[np.arange(len(cls)), cls]
            if self.objectness:
                check_scores(rows[:, 4], self.name)
                score = score * rows[:, 4]
            points = rows[:, last:]
        landmarks = points.reshape(-1, count, dims)[:, :, :2] if count else None
        return select(xyxy, score, threshold, NMS_IOU, landmarks, cls)


@dataclass(frozen=True)
class YoloV5Face:
    """deepcam-cn YOLOv5-face: [1, N, 16]; see the module notes."""

    convention: Convention
    name: str = "YOLOv5-face"
    classes: int = 1

    def decode(
        self, outputs: Sequence[np.ndarray], height: int, width: int, threshold: float
    ) -> Detections:
        rows = table(outputs[0], 16)
        check_scores(rows[:, [4, 15]], self.name)
        landmarks = rows[:, 5:15].reshape(-1, 5, 2)
        return select(
            centre_box(rows[:, :4]), rows[:, 4] * rows[:, 15], threshold, FACE_NMS_IOU, landmarks
        )


def _keypoint_shape(value: object) -> tuple[int, int]:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value[0], value[1]
    return 0, 0


def _without_metadata(channels: int, transposed: bool, graph: Graph) -> Ultralytics | None:
    """No `names`: all channels after the box are classes, unless the probe shows that reading
    gives scores outside 0..1 and a one-class face model with five keypoints fits the width."""
    if channels <= 4:
        return None
    conv = convention(graph)
    plain = Ultralytics(conv, channels - 4, transposed)
    faces = [
        Ultralytics(conv, 1, transposed, (FACE_KEYPOINTS, dims))
        for dims in (3, 2)
        if channels == 5 + FACE_KEYPOINTS * dims
    ]
    for layout in [plain, *faces]:
        try:
            layout.decode(graph.probe[:1], 0, 0, threshold=2.0)
        except DetectorError:
            continue
        return layout
    return plain  # its scores fail the check again at load, with the message saying so


def match(graph: Graph) -> Layout | None:
    """A YOLO layout for this graph, or None."""
    outs = graph.outputs
    if not outs or len(outs[0].shape) != 3 or outs[0].shape[0] != 1:
        return None
    a, b = (int(d) for d in outs[0].shape[1:])  # type: ignore[call-overload]
    names = graph.meta("names")
    classes = len(names) if isinstance(names, (dict, list)) and names else None
    count, dims = _keypoint_shape(graph.meta("kpt_shape"))
    extra = outs[1:]
    if b == 16 and a > b and classes in (None, 1) and not count:
        if all(len(t.shape) == 5 for t in extra):  # raw per-stride heads may ride along
            return YoloV5Face(convention(graph))
    if extra:
        return None
    args = graph.meta("args")
    end2end = graph.meta("end2end") is True or isinstance(args, dict) and args.get("nms") is True
    if end2end:
        if b != 6 + count * dims:
            return None
        return Ultralytics(convention(graph), classes, keypoints=(count, dims), end2end=True)
    transposed = a > b >= 5
    channels = b if transposed else a
    if classes is None:
        return _without_metadata(channels, transposed, graph)
    if channels == 4 + classes + count * dims:
        return Ultralytics(convention(graph), classes, transposed, (count, dims))
    if transposed and not count and channels == 5 + classes:
        return Ultralytics(convention(graph), classes, transposed, objectness=True)
    return None
