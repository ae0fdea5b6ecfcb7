"""YuNet (OpenCV zoo): the 2023 anchor-free layout and the 2022 prior-box layout.

face_detection_yunet_2023mar: twelve outputs named cls_S, obj_S, bbox_S and
kps_S for strides S = 8, 16, 32, one row per grid cell ([1, cells, 1|4|10]).
The score is sqrt(cls x obj) (each clamped to 0..1); the box centre is
(cell + bbox[:2]) x stride, its size exp(bbox[2:]) x stride; landmarks are
(cell + kps) x stride.

face_detection_yunet_2022mar (and libfacedetection's older exports): loc [N, 14],
conf [N, 2], iou [N, 1] over prior boxes at steps 8, 16, 32, 64 (sizes 10/16/24,
32/48, 64/96, 128/192/256 px). The score is sqrt(conf[:, 1] x iou); loc holds
the box (centre offsets x 0.1, width x 0.1 and height x 0.2 in log space, as
OpenCV decodes it) and five landmarks (offsets x 0.1).

Input: BGR, 0..255, unnormalised, at the frame's own size padded to a multiple
of 32 at the bottom and right, as OpenCV's FaceDetectorYN does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...detections import Detections
from ...errors import DetectorError
from .common import Convention, Graph, Layout, check_scores, grid, last_dim, rows_of, select, table
from .retinaface import check_count, decode_boxes, decode_points, priors

NMS_IOU = 0.3  # OpenCV's default for YuNet
CONVENTION = Convention(rgb=False, side=None)
HEAD = re.compile(r"^(cls|obj|bbox|kps)_(\d+)$")
PRIOR_STEPS = (8, 16, 32, 64)
PRIOR_SIZES = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
VARIANCE = (0.1, 0.2)


@dataclass(frozen=True)
class YuNet:
    """2023mar: output indices per stride, (cls, obj, bbox, kps)."""

    heads: tuple[tuple[int, tuple[int, int, int, int]], ...]
    name: str = "YuNet 2023"
    convention: Convention = CONVENTION
    classes: int = 1

    def decode(
        self, outputs: Sequence[np.ndarray], height: int, width: int, threshold: float
    ) -> Detections:
        boxes, scores, points = [], [], []
        for stride, (ci, oi, bi, ki) in self.heads:
            rows, cols = height // stride, width // stride
            cls = np.clip(table(outputs[ci], 1)[:, 0], 0, 1)
            obj = np.clip(table(outputs[oi], 1)[:, 0], 0, 1)
            if len(cls) != rows * cols:
                raise DetectorError(
                    f"{self.name}: {len(cls)} cells at stride {stride} do not fit a "
                    f"{height}x{width} input"
                )
            score = np.sqrt(cls * obj)
            keep = np.flatnonzero(score >= threshold)
            cells = grid(rows, cols)[keep]
            bbox = table(outputs[bi], 4)[keep]
            centre = (cells + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:4]) * stride
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            scores.append(score[keep])
            kps = table(outputs[ki], 10)[keep].reshape(-1, 5, 2)
            points.append((cells[:, None, :] + kps) * stride)
        return select(
            np.concatenate(boxes),
            np.concatenate(scores),
            threshold,
            NMS_IOU,
            np.concatenate(points),
        )


def prior_maps(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """YuNet 2022's feature map sizes: halvings of the input (rounded as OpenCV does)."""
    h, w = (height + 1) // 2 // 2, (width + 1) // 2 // 2
    maps = []
    for _ in PRIOR_STEPS:
        h, w = h // 2, w // 2
        maps.append((h, w))
    return tuple(maps)


@dataclass(frozen=True)
class YuNet2022:
    """2022mar: output indices of loc, conf and iou."""

    loc: int
    conf: int
    iou: int
    name: str = "YuNet 2022"
    convention: Convention = CONVENTION
    classes: int = 1

    def decode(
        self, outputs: Sequence[np.ndarray], height: int, width: int, threshold: float
    ) -> Detections:
        prior = priors(prior_maps(height, width), PRIOR_STEPS, PRIOR_SIZES)
        conf = table(outputs[self.conf], 2)
        check_count(self.name, len(conf), prior, height, width)
        check_scores(conf[:, 1], self.name)
        score = np.sqrt(conf[:, 1] * np.clip(table(outputs[self.iou], 1)[:, 0], 0, 1))
        keep = np.flatnonzero(score >= threshold)
        loc = table(outputs[self.loc], 14)[keep]
        boxes = decode_boxes(loc[:, :4], prior[keep], VARIANCE[0], VARIANCE)
        points = decode_points(loc[:, 4:], prior[keep], VARIANCE[0])
        return select(boxes, score[keep], threshold, NMS_IOU, points)


def _by_name(graph: Graph) -> Layout | None:
    heads: dict[int, dict[str, int]] = {}
    for i, tensor in enumerate(graph.outputs):
        found = HEAD.match(tensor.name)
        if not found:
            return None
        heads.setdefault(int(found[2]), {})[found[1]] = i
    if sorted(heads) != [8, 16, 32] or any(len(h) != 4 for h in heads.values()):
        return None
    order = ("cls", "obj", "bbox", "kps")
    return YuNet(tuple((s, tuple(heads[s][k] for k in order)) for s in sorted(heads)))  # type: ignore[misc]


def match(graph: Graph) -> Layout | None:
    """2023 by its output names; 2022 by three outputs of widths 14, 2 and 1 over the same rows."""
    if len(graph.outputs) == 12:
        return _by_name(graph)
    if len(graph.outputs) != 3:
        return None
    widths = [last_dim(t) for t in graph.outputs]
    if (
        sorted(w or 0 for w in widths) != [1, 2, 14]
        or len({rows_of(t) for t in graph.outputs}) != 1
    ):
        return None
    return YuNet2022(widths.index(14), widths.index(2), widths.index(1))
