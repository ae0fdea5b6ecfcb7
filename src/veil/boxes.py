"""Box geometry on plain arrays: IoU, NMS, areas, centres, scaling, clipping, conversions.

Boxes are [N, 4] arrays of x1, y1, x2, y2 in pixels unless a name says
otherwise (cxcywh: centre x, centre y, width, height; xywh: top-left corner,
width, height). Nothing here imports `Detections`, so every room (detectors,
tracking, hiding, evaluation) and the value type itself can use it without
import cycles, as supervision keeps its `detection/utils/boxes.py`.
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes: np.ndarray) -> np.ndarray:
    """Any box-like input (one box, a list, an array) as float32 [N, 4]."""
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def _floating(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] keeping a floating input's precision (a Kalman state is float64)."""
    out = np.asarray(boxes)
    if not np.issubdtype(out.dtype, np.floating):
        out = out.astype(np.float32)
    return out.reshape(-1, 4)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """[N] areas; an inverted box (x2 < x1 or y2 < y1) has area 0."""
    b = as_boxes(boxes)
    return np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)


def box_centre(boxes: np.ndarray) -> np.ndarray:
    """[N, 2] centres (x, y)."""
    b = _floating(boxes)
    return (b[:, :2] + b[:, 2:]) / 2


def longer_side(boxes: np.ndarray) -> np.ndarray:
    """[N] the larger of width and height: the size of a face whatever its aspect."""
    b = _floating(boxes)
    return np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of two sets of boxes (0 where the union is empty)."""
    a, b = as_boxes(a), as_boxes(b)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first.

    A box is dropped when it overlaps an already kept, better-scoring box by
    iou_threshold or more; equal scores keep their input order. The IoU is box_iou's,
    computed on coordinates split once: a crowd's heat map gives thousands of
    candidates and hundreds of kept boxes, where calling box_iou per kept box spent
    half the detector's time (a 196-face WIDER photo panning in 1080p).
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    b = as_boxes(boxes)[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    area = box_area(b)
    keep: list[int] = []
    rest = np.arange(len(b))
    while len(rest):
        i, others = rest[0], rest[1:]
        keep.append(int(order[i]))
        w = np.clip(np.minimum(x2[i], x2[others]) - np.maximum(x1[i], x1[others]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[others]) - np.maximum(y1[i], y1[others]), 0, None)
        inter = w * h
        union = area[i] + area[others] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
        rest = others[iou < iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def scale_box(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Boxes grown (or shrunk) about their centres by `factor`, as float32 [N, 4].

    Detectors box a face tightly; hiding grows the box so hair and ears are
    covered, and trackers grow a box the longer they have lost its face.
    """
    b = as_boxes(boxes)
    centre = box_centre(b)
    half = (b[:, 2:] - b[:, :2]) / 2 * factor
    return np.concatenate([centre - half, centre + half], axis=1)


def grow_box(boxes: np.ndarray, mask_scale: float) -> np.ndarray:
    """Boxes grown as deface's --mask-scale grows them, as float32 [N, 4].

    Each side moves out by (mask_scale - 1) times the box's width (left, right) or
    height (top, bottom), so the box becomes 2 x mask_scale - 1 times as large about
    its centre: 1.3 (the default of deface and veil) hides a box 1.6 times the face's.
    One meaning for every caller (hiding, coverage, review, from_keypoints) keeps the
    hidden area of a value the same everywhere, and the same as deface's.
    """
    return scale_box(boxes, 2 * mask_scale - 1)


def clip_box(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes clipped to a width x height frame, as float32 [N, 4] (a new array)."""
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    return b


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] centre x, centre y, width, height (a floating input keeps its precision)."""
    b = _floating(boxes)
    return np.concatenate([box_centre(b), b[:, 2:] - b[:, :2]], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] corners from centre x, centre y, width, height (keeps a float64 input's precision)."""
    b = _floating(boxes)
    return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], axis=1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] corners from top-left x, y, width, height (OpenCV's rectangles)."""
    b = _floating(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
