"""Geometry of detection windows on plain arrays: crops around faces, tiles over a frame.

A window is (x1, y1, x2, y2) in integer frame pixels. Detectors read a frame
through windows for three reasons: to look at small faces at full resolution
between keyframes (scan.py), to look at them upscaled (smallfaces.py), and to
keep the network's input bounded on large images (tiles). Corners snap to the
network's coarsest stride so a window is read on the same feature grid as the
whole frame.
"""

from __future__ import annotations

import numpy as np

from ..boxes import box_centre, longer_side, overlapping_pairs
from ..graphs import components

Window = tuple[int, int, int, int]

# Pixels from a window's edge within which a detection is taken to be cut off by the window.
EDGE = 2


def crop_windows(
    boxes: np.ndarray, width: int, height: int, context: float, min_side: int, align: int = 1
) -> list[Window]:
    """Square windows around boxes, clipped to the frame (none for a box off it), merged
    while any two overlap.

    With `align`, window corners snap outwards to multiples of it. A crop aligned to
    the network's coarsest stride is seen on the same feature grid as the whole
    frame, so it finds what a full pass finds there instead of a shifted variant.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    half = np.maximum(min_side, context * longer_side(boxes)) / 2
    centre = box_centre(boxes)
    corners = np.concatenate([centre - half[:, None], centre + half[:, None]], axis=1)
    low = np.maximum(0, np.floor(corners[:, :2] / align) * align)
    high = np.minimum([width, height], np.ceil(corners[:, 2:] / align) * align)
    inside = (low < high).all(axis=1)  # a box off the frame has nothing to read
    windows = merge_overlapping(np.hstack([low, high])[inside])
    return [tuple(int(v) for v in w) for w in windows]


def merge_overlapping(windows: np.ndarray) -> np.ndarray:
    """Windows [N, 4] merged into their bounding boxes while any two overlap, in the order of
    each group's first window (identical windows count once).

    Each round merges every group of windows linked by overlaps at once (merging one pair at
    a time and starting over took a second per 24 frames of a 196-face crowd); merged boxes
    can overlap again, so rounds repeat until none do. Overlaps are found by a sweep
    (overlapping_pairs), not a matrix of every pair.
    """
    windows = np.asarray(windows, np.float64).reshape(-1, 4)
    # A crowd's windows repeat (the same face at both keyframes, snapped to the same grid):
    # 1842 windows of one frame were 390 distinct ones, overlapping in a twentieth the pairs.
    first = np.sort(np.unique(windows, axis=0, return_index=True)[1])
    windows = windows[first]
    while len(windows) > 1:
        linked = overlapping_pairs(windows)
        if not len(linked[0]):
            break
        group = components(len(windows), *linked)
        labels, inverse = np.unique(group, return_inverse=True)
        merged = np.empty((len(labels), 4))
        merged[:, :2] = np.inf
        merged[:, 2:] = -np.inf
        np.minimum.at(merged[:, :2], inverse, windows[:, :2])
        np.maximum.at(merged[:, 2:], inverse, windows[:, 2:])
        earliest = np.full(len(labels), len(first))
        np.minimum.at(earliest, inverse, first)
        order = np.argsort(earliest, kind="stable")
        windows, first = merged[order], earliest[order]
    return windows


def _spans(start: int, length: int, side: int, overlap: int, align: int) -> list[tuple[int, int]]:
    """The fewest near-equal spans of at most `side` covering [start, start + length),
    neighbours sharing at least `overlap`, each starting `align`-aligned past `start`.

    With n spans of length s spread evenly, rounding a start down to the alignment
    costs at most `align` of overlap, so s must be at least
    ((n - 1) * (overlap + align) + length) / n, and s + align at most `side`.
    """
    if length <= side:
        return [(start, start + length)]
    n = 2
    while ((n - 1) * (overlap + align) + length + n - 1) // n + align > side:
        n += 1
    span = ((n - 1) * (overlap + align) + length + n - 1) // n
    starts = [i * (length - span) // (n - 1) // align * align for i in range(n)]
    ends = [a + span for a in starts[:-1]] + [length]
    return [(start + a, start + b) for a, b in zip(starts, ends)]


def split(window: Window, side: int, overlap: int, align: int = 1) -> list[Window]:
    """Tiles of at most side x side covering a window, neighbours overlapping by at least
    `overlap`: any box no larger than `overlap` lies whole inside one tile.

    Tiles are as equal as the alignment allows, so a window a little over `side`
    becomes two tiles of about half its size, not one full tile and a sliver.
    """
    if side < 2 * overlap + 4 * align:
        raise ValueError(f"tiles of {side} px cannot overlap by {overlap} px in steps of {align}")
    x1, y1, x2, y2 = window
    xs = _spans(x1, x2 - x1, side, overlap, align)
    ys = _spans(y1, y2 - y1, side, overlap, align)
    return [(a, b, c, d) for b, d in ys for a, c in xs]


def cut_by_edge(xyxy: np.ndarray, window: Window, width: int, height: int) -> np.ndarray:
    """Per box (frame pixels), whether it touches an edge of the window that lies inside
    the frame: such a box may show only the part of a face the window contains."""
    x1, y1, x2, y2 = window
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return (
        ((b[:, 0] <= x1 + EDGE) & (x1 > 0))
        | ((b[:, 1] <= y1 + EDGE) & (y1 > 0))
        | ((b[:, 2] >= x2 - EDGE) & (x2 < width))
        | ((b[:, 3] >= y2 - EDGE) & (y2 < height))
    )
