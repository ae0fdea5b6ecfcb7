"""Detections from other libraries' results and from pose keypoints.

Nothing here imports those libraries: their results are read through the
attributes they document, so veil works beside them without depending on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .boxes import grow_box
from .detections import FACE, Detections

# COCO-17 order used by most pose models (ultralytics, MMPose, MoveNet): nose, eyes, ears.
COCO_HEAD = (0, 1, 2, 3, 4)


def _numpy(value: Any) -> np.ndarray | None:
    """Arrays, lists and framework tensors (anything with .cpu()/.numpy()) as numpy."""
    if value is None:
        return None
    if hasattr(value, "cpu"):
        value = value.cpu()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.asarray(value)


def from_keypoints(
    keypoints: Any,
    scores: Any = None,
    *,
    indices: Sequence[int] = COCO_HEAD,
    mask_scale: float = 1.5,
    min_score: float = 0.3,
    image_size: tuple[int, int] | None = None,
    class_id: int = FACE,
) -> Detections:
    """Face boxes from pose keypoints: the head points (nose, eyes, ears), grown.

    keypoints: [N, K, 2] or [N, K, 3] (x, y, confidence), in pixels, or normalised to
    0..1 (MediaPipe, MoveNet) together with `image_size` (width, height). scores:
    per-keypoint confidences [N, K], per-person scores [N], or None. A face needs two
    visible head points to have a size. The box is the square around them, as wide as
    their extent (eyes and ears lie on a line that says little about the face's
    height), grown as `--mask-scale` grows a box (boxes.grow_box): every side moves
    out by (mask_scale - 1) x the extent, so the default 1.5 adds half the extent on
    each side and reaches the chin and the top of the head.
    """
    kp = _numpy(keypoints).astype(np.float32)
    if kp.size == 0:
        return Detections.empty()
    kp = kp.reshape(-1, kp.shape[-2], kp.shape[-1])
    if image_size is not None:
        kp[:, :, :2] *= np.asarray(image_size, np.float32)
    n, k = kp.shape[:2]
    person = np.ones(n, np.float32)
    conf = kp[:, :, 2] if kp.shape[2] >= 3 else np.ones((n, k), np.float32)
    sc = _numpy(scores)
    if sc is not None:
        sc = sc.astype(np.float32)
        if sc.shape == (n, k):
            conf = sc
        elif sc.reshape(-1).shape == (n,):
            person = sc.reshape(-1)
        else:
            raise ValueError(
                f"scores must be [N, K] or [N], got {sc.shape} for keypoints {kp.shape}"
            )
    idx = np.asarray(indices, int)
    head, head_conf = kp[:, idx, :2], conf[:, idx]
    boxes, out_scores = [], []
    for i in range(n):
        visible = (head_conf[i] >= min_score) & np.all(head[i] > 0, axis=1)  # (0, 0) = not found
        if visible.sum() < 2:
            continue
        pts = head[i][visible]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = (lo + hi) / 2
        half = max(float((hi - lo).max()), 1.0) / 2
        boxes.append([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])
        out_scores.append(float(head_conf[i][visible].mean() * person[i]))
    if not boxes:
        return Detections.empty()
    grown = grow_box(np.asarray(boxes, np.float32), mask_scale)
    return Detections(grown, score=out_scores, class_id=np.full(len(boxes), class_id))


def from_supervision(detections: Any) -> Detections:
    """From supervision.Detections (xyxy, confidence, class_id, tracker_id, mask)."""
    xyxy = _numpy(detections.xyxy).reshape(-1, 4)
    n = len(xyxy)
    track = _numpy(getattr(detections, "tracker_id", None))
    return Detections(
        xyxy,
        score=_numpy(getattr(detections, "confidence", None)),
        class_id=_numpy(getattr(detections, "class_id", None)),
        track_id=None if track is None else np.where(track == None, -1, track).astype(np.int64),  # noqa: E711
        mask=_numpy(getattr(detections, "mask", None)) if n else None,
    )


def from_ultralytics(result: Any, class_map: dict[int, int] | None = None) -> Detections:
    """From one ultralytics Results (boxes.xyxy, .conf, .cls, .id; masks.data when frame-sized).

    class_map renames model classes to veil's (e.g. {0: PERSON} for a COCO model);
    unmapped classes keep the model's id.
    """
    boxes = result.boxes
    if boxes is None:
        return Detections.empty()
    xyxy = _numpy(boxes.xyxy).reshape(-1, 4)
    cls = _numpy(getattr(boxes, "cls", None))
    if cls is not None and class_map:
        cls = np.array([class_map.get(int(c), int(c)) for c in cls.reshape(-1)])
    ids = _numpy(getattr(boxes, "id", None))
    mask = None
    masks = getattr(result, "masks", None)
    if masks is not None and len(xyxy):
        data = _numpy(masks.data)
        shape = tuple(getattr(result, "orig_shape", ()))
        mask = (
            data > 0.5 if data.shape[1:] == shape else None
        )  # model-resolution masks would misplace outlines
    return Detections(
        xyxy,
        score=_numpy(getattr(boxes, "conf", None)),
        class_id=cls,
        track_id=None if ids is None else ids.astype(np.int64),
        mask=mask,
    )
