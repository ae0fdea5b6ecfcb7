"""Geometry of detection windows on plain arrays: crops around faces, tiles over a frame.

A window is (x1, y1, x2, y2) in integer frame pixels. Detectors read a frame
through windows for three reasons: to look at small faces at full resolution
between keyframes (scan.py), to look at them upscaled (smallfaces.py), and to
keep the network's input bounded on large images (tiles). Corners snap to the
network's coarsest stride so a window is read on the same feature grid as the
whole frame.
"""

from __future__ import annotations

import math

import numpy as np

from ..boxes import box_centre, longer_side

Window = tuple[int, int, int, int]

# Pixels from a window's edge within which a detection is taken to be cut off by the window.
EDGE = 2


def snapped(
    x1: float, y1: float, x2: float, y2: float, align: int, width: int, height: int
) -> list[int]:
    """Corners moved outwards to multiples of align, then clipped to the frame."""
    return [
        max(0, math.floor(x1 / align) * align),
        max(0, math.floor(y1 / align) * align),
        min(width, math.ceil(x2 / align) * align),
        min(height, math.ceil(y2 / align) * align),
    ]


def crop_windows(
    boxes: np.ndarray, width: int, height: int, context: float, min_side: int, align: int = 1
) -> list[Window]:
    """Square windows around boxes, clipped to the frame, merged while any two overlap.

    With `align`, window corners snap outwards to multiples of it. A crop aligned to
    the network's coarsest stride is seen on the same feature grid as the whole
    frame, so it finds what a full pass finds there instead of a shifted variant.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    windows = []
    for (cx, cy), side in zip(box_centre(boxes), longer_side(boxes)):
        half = max(min_side, context * side) / 2
        windows.append(snapped(cx - half, cy - half, cx + half, cy + half, align, width, height))
    merged = True
    while merged:
        merged = False
        for a in range(len(windows)):
            for b in range(a + 1, len(windows)):
                wa, wb = windows[a], windows[b]
                if wa[0] < wb[2] and wb[0] < wa[2] and wa[1] < wb[3] and wb[1] < wa[3]:
                    windows[a] = [
                        min(wa[0], wb[0]),
                        min(wa[1], wb[1]),
                        max(wa[2], wb[2]),
                        max(wa[3], wb[3]),
                    ]
                    del windows[b]
                    merged = True
                    break
            if merged:
                break
    return [(x1, y1, x2, y2) for x1, y1, x2, y2 in windows]


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
