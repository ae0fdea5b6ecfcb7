"""Following a box drawn by hand through the original frames, forwards or backwards.

OpenCV's CSRT and KCF trackers are not in opencv-python 4.x any more (they moved to the
contrib build) and its MIL tracker never reports losing its target, so a box is followed
by normalized cross-correlation (cv2.matchTemplate) in a window around its last place. The
template is the patch found in the previous frame, so slow turns and lighting changes are
followed; when the best match falls under `min_match` the face has left the picture, turned
away or been covered, and following stops there: a reviewer adds another box where it
comes back. The box keeps its size (a face walking towards the camera needs a second box).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..frame import Frame


@dataclass(frozen=True)
class Followed:
    index: int
    time: float
    box: tuple[float, float, float, float]


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


def _patch(grey: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    x1, y1, x2, y2 = np.round(box).astype(int)
    h, w = grey.shape
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h or x2 - x1 < 4 or y2 - y1 < 4:
        return None
    return grey[y1:y2, x1:x2]


def follow(
    start: np.ndarray,
    box: list[float] | tuple[float, ...],
    frames: Iterable[Frame],
    *,
    min_match: float = 0.6,
    search: float = 0.5,
) -> Iterator[Followed]:
    """Where `box` (on image `start`) is in each of `frames`, in order, until it is lost.

    search: how far the face may move between two frames, in box sizes.
    Stops at the first frame where the match is under min_match or the box would leave
    the picture (the part of a face at the border is still hidden by the last box).
    """
    current = np.asarray(box, np.float64).copy()
    grey = _grey(start)
    current[[0, 2]] = np.clip(current[[0, 2]], 0, grey.shape[1])
    current[[1, 3]] = np.clip(current[[1, 3]], 0, grey.shape[0])
    template = _patch(grey, current)
    if template is None:
        return
    bw, bh = current[2] - current[0], current[3] - current[1]
    for frame in frames:
        grey = _grey(frame.image)
        h, w = grey.shape
        sx1 = int(max(current[0] - search * bw, 0))
        sy1 = int(max(current[1] - search * bh, 0))
        sx2 = int(min(current[2] + search * bw, w))
        sy2 = int(min(current[3] + search * bh, h))
        window = grey[sy1:sy2, sx1:sx2]
        th, tw = template.shape
        if window.shape[0] < th or window.shape[1] < tw:
            return
        scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        if not np.isfinite(best) or best < min_match:
            return
        current = np.array([sx1 + bx, sy1 + by, sx1 + bx + tw, sy1 + by + th], np.float64)
        template = grey[sy1 + by : sy1 + by + th, sx1 + bx : sx1 + bx + tw]
        yield Followed(frame.index, frame.time, tuple(float(v) for v in current))
