"""SCRFD (insightface): per stride a score, a box and optionally a keypoint output.

Outputs come in groups of equal trailing width: scores [.., 1], boxes [.., 4]
and keypoints [.., 10], one per stride (8, 16, 32; or 8 to 128 in the
five-level models), with or without a leading batch axis of one. The stride of
each is read from its number of rows, largest first, so the order of the
outputs in the file does not matter. Each location of a stride's grid has the
same number of anchors (2 in the released models), centred on the location's
corner (x * stride, y * stride). Boxes are distances to the left, top, right
and bottom edges and keypoints offsets from the centre, both in strides.

Input: RGB, (pixel - 127.5) / 128, resized keeping the aspect ratio into the
top-left corner of a black 640 x 640 canvas (insightface's det_size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...detections import Detections
from ...errors import DetectorError
from .common import Convention, Graph, Layout, check_scores, grid, last_dim, rows_of, select, table

NMS_IOU = 0.4  # insightface's default
CONVENTION = Convention(rgb=True, mean=127.5, std=128.0)
WIDTHS = (1, 4, 10)  # score, box, keypoints


@dataclass(frozen=True)
class Scrfd:
    """Output indices per stride: (score, box, keypoints or None)."""

    heads: tuple[tuple[int, int, int | None], ...]
    convention: Convention = CONVENTION
    classes: int = 1

    @property
    def name(self) -> str:
        kps = " with keypoints" if self.heads[0][2] is not None else ""
        return f"SCRFD ({len(self.heads)} strides{kps})"

    def decode(
        self, outputs: Sequence[np.ndarray], height: int, width: int, threshold: float
    ) -> Detections:
        boxes, scores, points = [], [], []
        for level, (si, bi, ki) in enumerate(self.heads):
            stride = 8 << level
            score = table(outputs[si], 1)[:, 0]
            check_scores(score, self.name)
            cells = (height // stride) * (width // stride)
            anchors = len(score) // max(cells, 1)
            if anchors < 1 or anchors * cells != len(score):
                raise DetectorError(
                    f"{self.name}: {len(score)} scores at stride {stride} do not fit a "
                    f"{height}x{width} input"
                )
            keep = np.flatnonzero(score >= threshold)
            centres = (grid(height // stride, width // stride, anchors)[keep]) * stride
            dist = table(outputs[bi], 4)[keep] * stride
            boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
            scores.append(score[keep])
            if ki is not None:
                offsets = table(outputs[ki], 10)[keep].reshape(-1, 5, 2) * stride
                points.append(centres[:, None, :] + offsets)
        return select(
            np.concatenate(boxes),
            np.concatenate(scores),
            threshold,
            NMS_IOU,
            np.concatenate(points) if points else None,
        )


def match(graph: Graph) -> Layout | None:
    """SCRFD when the outputs split into equal groups of scores, boxes (and keypoints)."""
    groups: dict[int, list[int]] = {width: [] for width in WIDTHS}
    for i, tensor in enumerate(graph.outputs):
        width = last_dim(tensor)
        if width not in groups:
            return None
        groups[width].append(i)
    levels = len(groups[1])
    if levels not in (3, 5) or len(groups[4]) != levels or len(groups[10]) not in (0, levels):
        return None
    by_rows = {
        w: sorted(idx, key=lambda i: -rows_of(graph.outputs[i])) for w, idx in groups.items()
    }
    counts = [rows_of(graph.outputs[i]) for i in by_rows[1]]
    for width in (4, 10):
        if any(rows_of(graph.outputs[i]) != n for i, n in zip(by_rows[width], counts)):
            return None
    if len(set(counts)) != levels:
        return None
    kps = by_rows[10] or [None] * levels
    return Scrfd(tuple(zip(by_rows[1], by_rows[4], kps)))
