"""RetinaFace as biubug6/Pytorch_Retinaface exports it; its prior boxes serve YuNet 2022 too.

Three outputs over the same P prior boxes: loc [1, P, 4], conf [1, P, 2]
(softmax; column 1 is the face) and landms [1, P, 10]. The priors are laid
out level by level (steps 8, 16, 32; two square sizes each, 16/32, 64/128,
256/512 px), row by row, each location's sizes in turn. A box is its prior
moved by loc[:2] x 0.1 x prior size and scaled by exp(loc[2:] x 0.2);
landmarks are offsets from the prior's centre like the box centre.

Input: BGR minus the mean (104, 117, 123), unscaled; the repository's
detect.py runs at the image's own size, so a dynamic input does too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...detections import Detections
from ...errors import DetectorError
from .common import Convention, Graph, Layout, check_scores, last_dim, rows_of, select, table

NMS_IOU = 0.4
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


@lru_cache(maxsize=16)
def priors(
    feature_maps: tuple[tuple[int, int], ...],
    steps: tuple[int, ...],
    min_sizes: tuple[tuple[int, ...], ...],
) -> np.ndarray:
    """[P, 4] prior boxes (centre x, centre y, width, height) in input pixels, level by level,
    row by row, each location's sizes in turn."""
    levels = []
    for (rows, cols), step, sizes in zip(feature_maps, steps, min_sizes):
        centres = np.repeat(
            np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), -1).reshape(-1, 2),
            len(sizes),
            axis=0,
        )
        wh = np.tile(np.repeat(np.asarray(sizes, np.float32)[:, None], 2, axis=1), (rows * cols, 1))
        levels.append(np.concatenate([(centres + 0.5) * step, wh], axis=1))
    return np.concatenate(levels).astype(np.float32)


def decode_boxes(
    loc: np.ndarray, prior: np.ndarray, centre_var: float, size_var: tuple[float, float]
) -> np.ndarray:
    """Offsets from priors -> x1, y1, x2, y2."""
    centre = prior[:, :2] + loc[:, :2] * centre_var * prior[:, 2:]
    size = prior[:, 2:] * np.exp(loc[:, 2:4] * np.asarray(size_var, np.float32))
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def decode_points(offsets: np.ndarray, prior: np.ndarray, var: float) -> np.ndarray:
    """[N, 2K] offsets from the priors' centres -> [N, K, 2] points."""
    pts = offsets.reshape(len(offsets), offsets.shape[1] // 2, 2)
    return prior[:, None, :2] + pts * var * prior[:, None, 2:]


def check_count(name: str, count: int, prior: np.ndarray, height: int, width: int) -> None:
    if count != len(prior):
        raise DetectorError(
            f"{name}: {count} candidates, but a {height}x{width} input has {len(prior)} priors"
        )


@dataclass(frozen=True)
class RetinaFace:
    """Output indices of loc, conf and landms."""

    loc: int
    conf: int
    landms: int
    name: str = "RetinaFace (Pytorch_Retinaface)"
    convention: Convention = Convention(rgb=False, mean=MEAN_BGR, side=None)
    classes: int = 1

    def decode(
        self, outputs: Sequence[np.ndarray], height: int, width: int, threshold: float
    ) -> Detections:
        maps = tuple((math.ceil(height / s), math.ceil(width / s)) for s in STEPS)
        prior = priors(maps, STEPS, MIN_SIZES)
        conf = table(outputs[self.conf], 2)
        check_count(self.name, len(conf), prior, height, width)
        score = conf[:, 1]
        check_scores(score, self.name)
        keep = np.flatnonzero(score >= threshold)
        boxes = decode_boxes(
            table(outputs[self.loc], 4)[keep], prior[keep], VARIANCE[0], (VARIANCE[1],) * 2
        )
        points = decode_points(table(outputs[self.landms], 10)[keep], prior[keep], VARIANCE[0])
        return select(boxes, score[keep], threshold, NMS_IOU, points)


def match(graph: Graph) -> Layout | None:
    """Three outputs of widths 4, 2 and 10 over the same number of rows."""
    if len(graph.outputs) != 3:
        return None
    widths = [last_dim(t) for t in graph.outputs]
    if sorted(w or 0 for w in widths) != [2, 4, 10]:
        return None
    if len({rows_of(t) for t in graph.outputs}) != 1:
        return None
    return RetinaFace(widths.index(4), widths.index(2), widths.index(10))
