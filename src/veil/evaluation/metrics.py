"""Scores of detections against labelled faces: AP, recall, precision, size buckets, leaks.

Matching follows the WIDER FACE / PASCAL VOC convention: in each image,
detections are taken best score first and each claims the unclaimed labelled
face it overlaps most, if that overlap reaches the IoU threshold (a true
positive). A detection that instead overlaps an ignore box (a face the labels
say not to count) is neither right nor wrong; any other detection is a false
positive.

The leak rate is the privacy figure: the share of labelled faces of which less
than 90% of the box pixels end up under the anonymization mask. Two figures keep
it honest, since hiding more of the frame always lowers it: false boxes (hidden
regions that overlap no labelled face, ignored ones included, at IoU 0.3: a
loose box on a real face is not counted, a box on a wall is) and the share of
frame pixels hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..boxes import box_iou, max_iou
from ..hide.masks import coverage

IOU_THRESHOLD = 0.5
COVERED_FRACTION = 0.9
FALSE_BOX_IOU = 0.3
# Face height buckets in pixels: [low, high).
BUCKETS: dict[str, tuple[float, float]] = {
    "<16": (0.0, 16.0),
    "16-32": (16.0, 32.0),
    "32-64": (32.0, 64.0),
    ">64": (64.0, float("inf")),
}


@dataclass
class ImageResult:
    """One labelled image (or video frame) with what a detector found in it."""

    shape: tuple[int, int]
    truth: np.ndarray  # [G, 4] faces that count
    detections: np.ndarray  # [D, 4]
    scores: np.ndarray  # [D]
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # [I, 4]

    def __post_init__(self) -> None:
        self.truth = np.asarray(self.truth, np.float32).reshape(-1, 4)
        self.detections = np.asarray(self.detections, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.ignore = np.asarray(self.ignore, np.float32).reshape(-1, 4)


def match(
    result: ImageResult, min_score: float = 0.0, iou_threshold: float = IOU_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Per detection (score order kept as in `result`): +1 true, -1 false, 0 ignored, and
    per labelled face the index of the detection that found it (-1 = missed).

    Only detections scoring at least min_score take part.
    """
    n_det = len(result.detections)
    outcome = np.zeros(n_det, np.int8)
    found_by = np.full(len(result.truth), -1, np.int64)
    active = np.nonzero(result.scores >= min_score)[0]
    order = active[np.argsort(-result.scores[active], kind="stable")]
    iou_truth = box_iou(result.detections, result.truth)
    iou_ignore = box_iou(result.detections, result.ignore)
    for d in order:
        if len(result.truth):
            free = np.where(found_by < 0, iou_truth[d], -1.0)
            best = int(np.argmax(free))
            if free[best] >= iou_threshold:
                found_by[best] = d
                outcome[d] = 1
                continue
        if len(result.ignore) and iou_ignore[d].max() >= iou_threshold:
            continue
        # A second detection on an already found face is a duplicate, hence wrong.
        outcome[d] = -1
    return outcome, found_by


def average_precision(results: list[ImageResult], iou_threshold: float = IOU_THRESHOLD) -> float:
    """Area under the precision-recall curve (all points, precision made monotone)."""
    n_truth = sum(len(r.truth) for r in results)
    if n_truth == 0:
        return float("nan")
    scores, outcomes = [], []
    for r in results:
        outcome, _ = match(r, 0.0, iou_threshold)
        keep = outcome != 0
        scores.append(r.scores[keep])
        outcomes.append(outcome[keep])
    score = np.concatenate(scores) if scores else np.zeros(0)
    outcome = np.concatenate(outcomes) if outcomes else np.zeros(0)
    order = np.argsort(-score, kind="stable")
    tp = np.cumsum(outcome[order] == 1)
    fp = np.cumsum(outcome[order] == -1)
    recall = np.concatenate([[0.0], tp / n_truth, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def false_boxes(
    result: ImageResult, min_score: float = 0.0, iou_threshold: float = FALSE_BOX_IOU
) -> int:
    """Detections scoring at least min_score that overlap no labelled box, counted or
    ignored, by iou_threshold: what a setting hides where there is no face."""
    boxes = result.detections[result.scores >= min_score]
    labelled = np.concatenate([result.truth, result.ignore])
    if not len(labelled):
        return len(boxes)
    return int(np.sum(max_iou(boxes, labelled) < iou_threshold))


def covered_fraction(
    result: ImageResult, min_score: float, shape: str, mask_scale: float
) -> np.ndarray:
    """Per labelled face, the share of its box pixels the anonymization mask hides."""
    return _covered(result, min_score, shape, mask_scale)[0]


def _covered(
    result: ImageResult, min_score: float, shape: str, mask_scale: float
) -> tuple[np.ndarray, float]:
    """covered_fraction, and the share of all frame pixels the mask hides."""
    boxes = result.detections[result.scores >= min_score]
    mask = coverage(result.shape, boxes, shape, mask_scale)
    h, w = result.shape
    out = np.ones(len(result.truth), np.float64)
    for i, (x1, y1, x2, y2) in enumerate(result.truth):
        xa, ya = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
        xb, yb = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
        if xb > xa and yb > ya:
            out[i] = float(mask[ya:yb, xa:xb].mean())
    return out, float(mask.mean()) if mask.size else 0.0


def bucket_of(heights: np.ndarray) -> np.ndarray:
    names = np.array(list(BUCKETS), dtype=object)
    edges = np.array([low for low, _ in BUCKETS.values()][1:])
    return names[np.searchsorted(edges, heights, side="right")]


def summarize(
    results: list[ImageResult],
    threshold: float,
    shape: str,
    mask_scale: float,
    complete_labels: bool = True,
    iou_threshold: float = IOU_THRESHOLD,
) -> dict:
    """All figures for one detector on one dataset.

    threshold is the operating point: detections below it are not anonymized,
    so recall, precision, false boxes and leaks count only those at or above it.
    AP uses all detections. With complete_labels False (only some faces labelled,
    as in videos of one subject) AP, precision and false boxes are not meaningful
    and are None.
    """
    found, heights, covered, hidden = [], [], [], []
    tp = fp = wrong = 0
    for r in results:
        outcome, found_by = match(r, threshold, iou_threshold)
        tp += int(np.sum(outcome == 1))
        fp += int(np.sum(outcome == -1))
        wrong += false_boxes(r, threshold)
        found.append(found_by >= 0)
        heights.append(r.truth[:, 3] - r.truth[:, 1])
        faces, share = _covered(r, threshold, shape, mask_scale)
        covered.append(faces)
        hidden.append(share)
    found_all = np.concatenate(found) if found else np.zeros(0, bool)
    height_all = np.concatenate(heights) if heights else np.zeros(0)
    covered_all = np.concatenate(covered) if covered else np.zeros(0)
    leaked = covered_all < COVERED_FRACTION
    buckets = bucket_of(height_all)
    per_bucket = {}
    for name in BUCKETS:
        sel = buckets == name
        per_bucket[name] = {
            "faces": int(sel.sum()),
            "recall": float(found_all[sel].mean()) if sel.any() else None,
            "leak_rate": float(leaked[sel].mean()) if sel.any() else None,
        }
    n = len(found_all)
    return {
        "images": len(results),
        "faces": n,
        "ignored_boxes": int(sum(len(r.ignore) for r in results)),
        "ap50": average_precision(results, iou_threshold) if complete_labels else None,
        "threshold": threshold,
        "recall": float(found_all.mean()) if n else None,
        "precision": (tp / (tp + fp) if tp + fp else None) if complete_labels else None,
        "false_positives": fp if complete_labels else None,
        "false_boxes_per_image": wrong / len(results) if complete_labels and results else None,
        "hidden_share": float(np.mean(hidden)) if hidden else None,
        "leak_rate": float(leaked.mean()) if n else None,
        "buckets": per_bucket,
    }


def agreement(expected, found, *, sure: float = 0.5) -> tuple[int, float, float]:
    """How closely two runs of a detector agree on one image (runtimes, precisions): the
    faces scored at least `sure` on either side that the other side does not find at IoU
    0.5, the worst box shift among the faces both find (as a share of the face's height,
    coordinate by coordinate) and their worst score difference. expected, found: Detections."""
    missed, shift, score = 0, 0.0, 0.0
    for a, b in ((expected, found), (found, expected)):
        clear = a[a.score >= sure]
        if not len(clear):
            continue
        iou = box_iou(clear.xyxy, b.xyxy) if len(b) else np.zeros((len(clear), 1))
        hit = iou.max(axis=1) >= IOU_THRESHOLD
        missed += int((~hit).sum())
        if hit.any():
            match = iou.argmax(axis=1)[hit]
            height = clear.xyxy[hit, 3] - clear.xyxy[hit, 1]
            moved = np.abs(clear.xyxy[hit] - b.xyxy[match]).max(axis=1) / height
            shift = max(shift, float(moved.max()))
            score = max(score, float(np.abs(clear.score[hit] - b.score[match]).max()))
    return missed, shift, score
