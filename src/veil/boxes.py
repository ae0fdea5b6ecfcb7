"""Box geometry on plain arrays: IoU, NMS, areas, centres, scaling, clipping, conversions.

Boxes are [N, 4] arrays of x1, y1, x2, y2 in pixels unless a name says
otherwise (cxcywh: centre x, centre y, width, height; xywh: top-left corner,
width, height). Nothing here imports `Detections`, so every room (detectors,
tracking, hiding, evaluation) and the value type itself can use it without
import cycles, as supervision keeps its `detection/utils/boxes.py`.
"""

from __future__ import annotations

import numpy as np

# nms: kept boxes measured one at a time against the rest before the crowd method takes over.
GREEDY_STEPS = 8


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
    i, j = np.indices((len(a), len(b))).reshape(2, -1)
    return pair_iou(a, b, i, j).reshape(len(a), len(b))


def overlapping_pairs(a: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of boxes whose spans overlap on both axes (a.x1 < b.x2 and
    b.x1 < a.x2, likewise in y; for boxes of positive size, those whose interiors
    intersect): a[i] with b[j], or without b each pair of a once (i < j).

    Boxes are swept in order of their left edges, so only pairs that overlap along x are
    ever formed: a crowd's few thousand boxes overlap in a few per box, where an IoU
    matrix holds millions of cells.
    """
    a = _floating(a)
    if b is None:
        order = np.argsort(a[:, 0], kind="stable")
        left = a[order, 0]
        # By left edge: box p overlaps along x the boxes after it that start before its right.
        starts = np.arange(1, len(a) + 1)
        rows, cols = _ranges(starts, np.searchsorted(left, a[order, 2]))
        i, j = order[rows], order[cols]
        i, j = np.minimum(i, j), np.maximum(i, j)
        b = a
    else:
        b = _floating(b)
        order_a = np.argsort(a[:, 0], kind="stable")
        order_b = np.argsort(b[:, 0], kind="stable")
        left_a, left_b = a[order_a, 0], b[order_b, 0]
        # b starting within a's span, then a starting strictly within b's span.
        rows, cols = _ranges(np.searchsorted(left_b, a[:, 0]), np.searchsorted(left_b, a[:, 2]))
        i1, j1 = rows, order_b[cols]
        rows, cols = _ranges(
            np.searchsorted(left_a, b[:, 0], side="right"), np.searchsorted(left_a, b[:, 2])
        )
        i, j = np.concatenate([i1, order_a[cols]]), np.concatenate([j1, rows])
    hit = (a[i, 0] < b[j, 2]) & (b[j, 0] < a[i, 2]) & (a[i, 1] < b[j, 3]) & (b[j, 1] < a[i, 3])
    return i[hit], j[hit]


def _ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, k) for every row and every k in [starts[row], ends[row])."""
    count = np.maximum(ends - starts, 0)
    rows = np.repeat(np.arange(len(count)), count)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
    return rows, np.repeat(starts, count) + offset


def pair_iou(a: np.ndarray, b: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """IoU of a[i[k]] and b[j[k]] for each k (0 where the union is empty), as float32."""
    # Each side's rows gathered once, as columns: gathering per corner and per area took
    # twice as long, and a detector's NMS measures the hundred or so cells above the
    # threshold around each face against each other.
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = as_boxes(a)[i].T, as_boxes(b)[j].T
    inter = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None) * np.clip(
        np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None
    )
    area_a = np.clip(ax2 - ax1, 0, None) * np.clip(ay2 - ay1, 0, None)
    area_b = np.clip(bx2 - bx1, 0, None) * np.clip(by2 - by1, 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def max_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a)] each box's largest IoU with any box of b (0 without one): box_iou(a, b).max(1)
    over the overlapping pairs only."""
    best = np.zeros(len(as_boxes(a)), np.float32)
    i, j = overlapping_pairs(a, b)
    np.maximum.at(best, i, pair_iou(a, b, i, j))
    return best


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first.

    A box is dropped when it overlaps an already kept, better-scoring box by
    iou_threshold or more; equal scores keep their input order. The best remaining box is
    kept and measured against all the rest, GREEDY_STEPS times at most, which settles a
    frame of a few faces (each a cluster of a hundred heat-map cells) with a few
    measurements; what remains after that (a crowd) goes to `_nms_pairs`. Measuring every
    overlapping pair of a few faces' cells instead made the detector's output decoding
    and NMS cost 1.8 CPU ms a 720p frame and 1.9 at 1080p, against 1.4 and 1.1 now
    (`benchmarks/stages.py --frames 48`, three real faces a frame).
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    b = as_boxes(boxes)[order]
    if iou_threshold <= 0:  # every box overlaps the best by at least nothing
        return order[:1].astype(np.int64)
    keep: list[int] = []
    rest = np.arange(len(b))
    while len(rest) and len(keep) < GREEDY_STEPS:
        best, rest = rest[0], rest[1:]
        keep.append(int(best))
        rest = rest[pair_iou(b, b, np.full(len(rest), best), rest) < iou_threshold]
    kept = np.concatenate([np.asarray(keep, np.int64), rest[_nms_pairs(b[rest], iou_threshold)]])
    return order[kept]


def _nms_pairs(b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """nms of boxes already in score order, measuring only the pairs that overlap
    (overlapping_pairs) and then visiting the boxes best first: a crowd's heat map gives
    thousands of candidates and hundreds of kept boxes, and measuring each kept box against
    all the rest spent a fifth of the detector's time (a 196-face WIDER photo panning in
    1080p)."""
    i, j = overlapping_pairs(b)
    close = pair_iou(b, b, i, j) >= iou_threshold
    better, worse = i[close], j[close]  # i < j: earlier in score order
    by_better = np.argsort(better, kind="stable")
    worse = worse[by_better].tolist()
    bounds = np.searchsorted(better[by_better], np.arange(len(b) + 1)).tolist()
    suppressed = bytearray(len(b))
    keep: list[int] = []
    for p in range(len(b)):
        if suppressed[p]:
            continue
        keep.append(p)
        for q in worse[bounds[p] : bounds[p + 1]]:
            suppressed[q] = 1
    return np.asarray(keep, np.int64)


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
