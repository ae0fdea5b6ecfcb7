"""Matching predicted track boxes to detections.

IoU is the first choice. Faces are small and move fast relative to their size,
so a predicted box can miss its detection entirely (IoU 0) after a quick pan or
a few lost frames; pairs without enough overlap may still match on centre
distance measured in box sizes, inside a gate that widens the longer a track
has been lost. Any IoU match is preferred to any distance match.
"""

from __future__ import annotations

import numpy as np

from ..boxes import box_area, box_centre, box_iou, longer_side
from ..graphs import components

UNMATCHABLE = 1e6


def centre_distance(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """[T, D] distance between centres, in units of the track box's larger side."""
    gap = box_centre(tracks)[:, None] - box_centre(dets)[None]
    return np.linalg.norm(gap, axis=2) / np.maximum(longer_side(tracks), 1.0)[:, None]


def size_ratio(tracks: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """[T, D] ratio of the larger to the smaller box side length (>= 1)."""
    ts = np.sqrt(np.maximum(box_area(tracks), 1.0))[:, None]
    ds = np.sqrt(np.maximum(box_area(dets), 1.0))[None, :]
    return np.maximum(ts / ds, ds / ts)


def cost_matrix(
    tracks: np.ndarray,
    dets: np.ndarray,
    *,
    min_iou: float,
    distance_gate: np.ndarray | None,
    max_size_ratio: float = 2.0,
) -> np.ndarray:
    """[T, D] cost: 1 - IoU for overlapping pairs, 1 + distance for gated distance pairs,
    UNMATCHABLE otherwise. distance_gate [T] (box sizes) or None to allow IoU matches only."""
    tracks = np.asarray(tracks, np.float32).reshape(-1, 4)
    dets = np.asarray(dets, np.float32).reshape(-1, 4)
    iou = box_iou(tracks, dets)
    cost = np.where(iou >= min_iou, 1.0 - iou, UNMATCHABLE)
    if distance_gate is not None and len(tracks) and len(dets):
        dist = centre_distance(tracks, dets)
        ok = (dist <= np.asarray(distance_gate)[:, None]) & (
            size_ratio(tracks, dets) <= max_size_ratio
        )
        cost = np.where((cost >= UNMATCHABLE) & ok, 1.0 + dist, cost)
    return cost


def assign(cost: np.ndarray) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost one-to-one matching; pairs at UNMATCHABLE are never matched.

    Returns (matches as (row, col), unmatched rows, unmatched cols).

    Rows and columns joined by no matchable pair cannot affect each other, so the
    matching is solved per connected group of them: a group with one track or one
    detection (every group, unless faces overlap) takes its cheapest pair, and only a
    larger group calls scipy's solver. Its import alone takes a second, which every
    start of veil paid before any frame was read.
    """
    rows_n, cols_n = cost.shape
    matches: list[tuple[int, int]] = []
    for rows, cols in _groups(cost < UNMATCHABLE):
        sub = cost[np.ix_(rows, cols)]
        if len(rows) == 1 or len(cols) == 1:
            r, c = np.unravel_index(int(np.argmin(sub)), sub.shape)
            pairs = [(int(r), int(c))]
        else:
            from scipy.optimize import linear_sum_assignment

            pairs = list(zip(*linear_sum_assignment(sub)))
        matches += [(rows[r], cols[c]) for r, c in pairs if sub[r, c] < UNMATCHABLE]
    matches.sort()
    matched_r = {r for r, _ in matches}
    matched_c = {c for _, c in matches}
    return (
        matches,
        [r for r in range(rows_n) if r not in matched_r],
        [c for c in range(cols_n) if c not in matched_c],
    )


def _groups(matchable: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Connected groups of rows and columns, linked by matchable pairs (lone ones left out)."""
    rows_n, cols_n = matchable.shape
    r, c = np.nonzero(matchable)
    group = components(rows_n + cols_n, r, rows_n + c)
    rows, cols = group[:rows_n], group[rows_n:]
    return [
        (np.flatnonzero(rows == g).tolist(), np.flatnonzero(cols == g).tolist())
        for g in np.unique(rows[r])
    ]
