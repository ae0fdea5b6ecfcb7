"""What every layout shares: the graph as veil sees it, the input convention, candidate selection.

A layout is recognised from a `Graph` (names, shapes of one probe run, ultralytics
metadata) and then turns one image's raw outputs into `Detections` in network
input pixels; `OnnxModel` maps them back to the frame.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...boxes import nms
from ...detections import Detections
from ...errors import DetectorError

# Sigmoid and softmax outputs are in 0..1; a little float noise is tolerated.
SCORE_SLACK = 1e-3


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int | str, ...]

    def __str__(self) -> str:
        return f"{self.name}[{', '.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class Graph:
    """The model's interface: its image input as declared, and its outputs as one run gave them.

    Output shapes come from a probe run rather than the declaration because many
    exports leave output dimensions symbolic or undeclared; `probe` holds that
    run's arrays for the rare choice that shapes alone cannot settle.
    """

    input: Tensor
    outputs: tuple[Tensor, ...]
    metadata: dict[str, str]
    probe: tuple[np.ndarray, ...] = ()

    def describe(self) -> str:
        return f"input {self.input}; outputs {', '.join(map(str, self.outputs))}"

    def meta(self, key: str) -> Any:
        """A metadata value as the Python literal ultralytics wrote (None: absent or no literal)."""
        text = self.metadata.get(key)
        if text is None:
            return None
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None


@dataclass(frozen=True)
class Convention:
    """How a family wants its image: channel order, normalisation, size and placement.

    The network sees (pixel - mean) / std in `rgb` or BGR order. `side` is the
    longer side a dynamic input runs at (None: the frame's own size); a fixed
    input runs at its declared size. The resized frame sits centred (YOLO
    letterbox) or in the top-left corner (insightface, OpenCV) on a `pad` colour.
    """

    rgb: bool
    mean: float | tuple[float, float, float] = 0.0
    std: float = 1.0
    side: int | None = 640
    centred: bool = False
    pad: int = 0
    align: int = 32


class Layout(Protocol):
    """One output layout: its name, input convention, classes, and decoder."""

    name: str
    convention: Convention
    classes: int | None  # None: the model does not say

    def decode(
        self, outputs: Sequence[np.ndarray], height: int, width: int, threshold: float
    ) -> Detections:
        """One image's outputs (input height x width) -> Detections in input pixels."""
        ...


def table(output: np.ndarray, width: int) -> np.ndarray:
    """[1, N, width] or [N, width] (a batch of one) -> [N, width]."""
    return np.asarray(output, np.float32).reshape(-1, width)


def check_scores(scores: np.ndarray, layout: str) -> None:
    """Scores outside 0..1 mean the outputs are not what the layout says (raw logits,
    another model): finding nothing there would be silent, so it is an error."""
    if scores.size and (scores.min() < -SCORE_SLACK or scores.max() > 1 + SCORE_SLACK):
        raise DetectorError(
            f"{layout}: scores run from {scores.min():.3g} to {scores.max():.3g}, not 0..1; "
            "the model's outputs are not in the layout its shapes suggest"
        )


def select(
    xyxy: np.ndarray,
    score: np.ndarray,
    threshold: float,
    iou: float,
    landmarks: np.ndarray | None = None,
    class_id: np.ndarray | None = None,
) -> Detections:
    """Candidates scoring at least `threshold`, non-maximum suppression within each class."""
    keep = score >= threshold
    cls = np.zeros(len(score), np.int32) if class_id is None else class_id.astype(np.int32)
    xyxy, score, cls = xyxy[keep], score[keep], cls[keep]
    points = None if landmarks is None else landmarks[keep]
    kept = [
        idx[nms(xyxy[idx], score[idx], iou)]
        for c in np.unique(cls)
        for idx in [np.flatnonzero(cls == c)]
    ]
    order = np.concatenate(kept) if kept else np.zeros(0, int)
    return Detections(
        xyxy[order].reshape(-1, 4),
        score=score[order],
        class_id=cls[order],
        landmarks=None if points is None else points[order],
    )


def centre_box(cxcywh: np.ndarray) -> np.ndarray:
    """[N, 4] centre x, centre y, width, height -> x1, y1, x2, y2."""
    half = cxcywh[:, 2:4] / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def grid(rows: int, cols: int, repeat: int = 1) -> np.ndarray:
    """[rows * cols * repeat, 2] cells (column, row) in row-major order, each `repeat` times."""
    cs, rs = np.meshgrid(np.arange(cols, dtype=np.float32), np.arange(rows, dtype=np.float32))
    return np.repeat(np.stack([cs.ravel(), rs.ravel()], axis=1), repeat, axis=0)


def rows_of(tensor: Tensor) -> int:
    """Candidates in a [1, N, k] or [N, k] output."""
    return int(np.prod(tensor.shape[:-1]))  # type: ignore[arg-type]


def last_dim(tensor: Tensor) -> int | None:
    """The trailing dimension of a rank 2 or 3 output (with a batch of one), else None."""
    shape = tensor.shape
    if len(shape) == 3 and shape[0] == 1 or len(shape) == 2:
        return int(shape[-1])  # type: ignore[arg-type]
    return None
