"""Matching predicted track boxes to detections.

IoU is the first choice. Faces are small and move fast relative to their size,
so a predicted box can miss its detection entirely (IoU 0) after a quick pan or
a few lost frames; pairs without enough overlap may still match on centre
distance measured in box sizes, inside a gate that widens the longer a track
has been lost. Any IoU match is preferred to any distance match.
"""

from __future__ import annotations

import numpy as np

from ..boxes import box_area, box_centre, longer_side, overlapping_pairs, pair_iou
from ..graphs import components

UNMATCHABLE = 1e6


def cost_matrix(
    tracks: np.ndarray,
    dets: np.ndarray,
    *,
    min_iou: float,
    distance_gate: np.ndarray | None,
    max_size_ratio: float = 2.0,
) -> np.ndarray:
    """[T, D] cost: 1 - IoU for overlapping pairs, 1 + distance for gated distance pairs,
    UNMATCHABLE otherwise. distance_gate [T] (box sizes) or None to allow IoU matches only.

    The distance is between centres, in units of the track box's longer side; a
    distance pair's boxes differ in side (the root of the area) by at most
    max_size_ratio. Only pairs that can match are measured: those overlapping
    (overlapping_pairs) and those whose detection's centre lies within the gate's
    square around the track's; a crowd's hundreds of tracks and detections made
    the whole matrices a tenth of a 1080p frame's tracking time.
    """
    tracks = np.asarray(tracks, np.float32).reshape(-1, 4)
    dets = np.asarray(dets, np.float32).reshape(-1, 4)
    cost = np.full((len(tracks), len(dets)), UNMATCHABLE, np.float32)
    i, j = overlapping_pairs(tracks, dets)
    iou = pair_iou(tracks, dets, i, j)
    close = iou >= min_iou
    cost[i[close], j[close]] = 1.0 - iou[close]
    if distance_gate is None or not len(tracks) or not len(dets):
        return cost
    scale = np.maximum(longer_side(tracks), 1.0)
    reach = np.asarray(distance_gate, np.float32) * scale + 1  # a pixel of slack: gates are <=
    centre_t, centre_d = box_centre(tracks), box_centre(dets)
    i, j = overlapping_pairs(
        np.hstack([centre_t - reach[:, None], centre_t + reach[:, None]]),
        np.hstack([centre_d, centre_d]),
    )
    free = cost[i, j] >= UNMATCHABLE  # no IoU match already
    i, j = i[free], j[free]
    dist = np.linalg.norm(centre_t[i] - centre_d[j], axis=1) / scale[i]
    side_t = np.sqrt(np.maximum(box_area(tracks), 1.0))[i]
    side_d = np.sqrt(np.maximum(box_area(dets), 1.0))[j]
    ok = (dist <= np.asarray(distance_gate)[i]) & (
        np.maximum(side_t / side_d, side_d / side_t) <= max_size_ratio
    )
    cost[i[ok], j[ok]] = 1.0 + dist[ok]
    return cost


# Groups up to this many rows (or columns, whichever are fewer) are solved here; larger ones
# by scipy, whose import takes a second but whose solver is compiled.
SMALL_GROUP = 16


def assign(cost: np.ndarray) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost one-to-one matching; pairs at UNMATCHABLE are never matched.

    Returns (matches as (row, col), unmatched rows, unmatched cols).

    Rows and columns joined by no matchable pair cannot affect each other, so the
    matching is solved per connected group of them: a group with one track or one
    detection (every group, unless faces overlap) takes its cheapest pair, a small one
    is solved by `min_cost_matching`, and only a large one calls scipy's solver, whose
    import alone takes a second. A crowd's groups held at most 10 tracks (a 196-face
    WIDER photo panning in 1080p), so scipy is rarely imported at all.
    """
    rows_n, cols_n = cost.shape
    matches: list[tuple[int, int]] = []
    for rows, cols in _groups(cost < UNMATCHABLE):
        sub = cost[np.ix_(rows, cols)]
        if len(rows) == 1 or len(cols) == 1:
            r, c = np.unravel_index(int(np.argmin(sub)), sub.shape)
            pairs = [(int(r), int(c))]
        elif min(sub.shape) <= SMALL_GROUP:
            pairs = min_cost_matching(sub)
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


def min_cost_matching(cost: np.ndarray) -> list[tuple[int, int]]:
    """A minimum-cost matching of every row or every column of a small matrix, whichever
    are fewer (what scipy's linear_sum_assignment returns), as (row, column) pairs.

    The Hungarian method with potentials: each row in turn is matched along the
    shortest augmenting path, found one column at a time with every column's
    distance updated in one array operation.
    """
    if cost.shape[0] > cost.shape[1]:
        return sorted((r, c) for c, r in min_cost_matching(cost.T))
    n, m = cost.shape
    a = np.asarray(cost, np.float64)
    u, v = np.zeros(n), np.zeros(m + 1)  # potentials; column m is the path's root
    row_of = np.full(m + 1, -1)  # the row matched to each column
    for row in range(n):
        row_of[m] = row
        column = m
        distance = np.full(m + 1, np.inf)
        via = np.full(m + 1, m)
        done = np.zeros(m + 1, bool)
        while row_of[column] != -1:
            done[column] = True
            i = row_of[column]
            reduced = a[i] - u[i] - v[:m]
            better = ~done[:m] & (reduced < distance[:m])
            distance[:m][better] = reduced[better]
            via[:m][better] = column
            open_ = np.flatnonzero(~done[:m])
            step = open_[np.argmin(distance[open_])]
            delta = distance[step]
            u[row_of[done]] += delta
            v[done] -= delta
            distance[~done] -= delta
            column = step
        while column != m:  # flip the path back to the root
            previous = via[column]
            row_of[column] = row_of[previous]
            column = previous
    return sorted((int(r), int(c)) for c, r in enumerate(row_of[:m]) if r != -1)


def _groups(matchable: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Connected groups of rows and columns, linked by matchable pairs (lone ones left out)."""
    rows_n, cols_n = matchable.shape
    r, c = np.nonzero(matchable)
    group = components(rows_n + cols_n, r, rows_n + c)
    # Members of each group in index order, from one stable sort of the labels.
    order = np.argsort(group, kind="stable")
    labels = group[order]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    out = []
    for members in np.split(order, starts[1:]):
        rows = members[members < rows_n]
        if len(rows) and len(members) > len(rows):
            out.append((rows.tolist(), (members[len(rows) :] - rows_n).tolist()))
    return out
