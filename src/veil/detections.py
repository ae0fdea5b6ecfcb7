"""The one value type that flows between detectors, tracking and anonymization.

Parallel numpy arrays rather than a list of objects: every stage works on whole
frames at once (vectorized IoU, masks, export), and indexing with a boolean or
integer array gives a new `Detections`, as in supervision. The geometry itself
(IoU, NMS, scaling, clipping) works on plain arrays in boxes.py; converters.py
builds `Detections` from other libraries' results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .boxes import box_area, box_centre, clip_box

FACE = 0
PERSON = 1
TEXT = 2
CLASS_NAMES = {FACE: "face", PERSON: "person", TEXT: "text"}


def _as(array: Any, dtype: Any, shape_tail: tuple[int, ...], n: int | None = None) -> np.ndarray:
    out = np.asarray(array, dtype=dtype)
    if out.size == 0:
        out = out.reshape((0, *shape_tail) if n in (None, 0) else (n, *shape_tail))
    return out


@dataclass(frozen=True)
class Detections:
    """Boxes found in one frame.

    xyxy: float32 [N, 4] in pixels of the frame; score: float32 [N];
    landmarks: float32 [N, K, 2] or None; class_id: int32 [N] (0 face, 1 person,
    2 text, or a user model's class); track_id: int64 [N], -1 when untracked.
    mask: bool [N, H, W] frame-sized outlines (a segmenting detector's body shape)
    or None; an all-False row means "no outline, hide the box".
    """

    xyxy: np.ndarray
    score: np.ndarray = field(default=None)  # type: ignore[assignment]
    class_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    track_id: np.ndarray = field(default=None)  # type: ignore[assignment]
    landmarks: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        xyxy = _as(self.xyxy, np.float32, (4,)).reshape(-1, 4)
        n = len(xyxy)
        object.__setattr__(self, "xyxy", xyxy)
        defaults = {
            "score": (np.float32, np.ones(n)),
            "class_id": (np.int32, np.zeros(n)),
            "track_id": (np.int64, np.full(n, -1)),
        }
        for name, (dtype, default) in defaults.items():
            value = getattr(self, name)
            value = np.asarray(default if value is None else value, dtype=dtype).reshape(-1)
            if len(value) != n:
                raise ValueError(f"Detections.{name} has {len(value)} rows, xyxy has {n}")
            object.__setattr__(self, name, value)
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if lm.size == 0:
                lm = lm.reshape(n, 0, 2)
            if lm.ndim != 3 or lm.shape[0] != n or lm.shape[2] != 2:
                raise ValueError(f"Detections.landmarks must be [N, K, 2], got {lm.shape}")
            object.__setattr__(self, "landmarks", lm)
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool)
            if mask.ndim != 3 or mask.shape[0] != n:
                raise ValueError(f"Detections.mask must be [N, H, W], got {mask.shape}")
            object.__setattr__(self, "mask", mask)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self):  # pragma: no cover - convenience for interactive use
        for i in range(len(self)):
            yield self[i : i + 1]

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            score=self.score[index],
            class_id=self.class_id[index],
            track_id=self.track_id[index],
            landmarks=None if self.landmarks is None else self.landmarks[index],
            mask=None if self.mask is None else self.mask[index],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        same_lm = (self.landmarks is None) == (other.landmarks is None) and (
            self.landmarks is None or np.array_equal(self.landmarks, other.landmarks)
        )
        return (
            np.array_equal(self.xyxy, other.xyxy)
            and np.array_equal(self.score, other.score)
            and np.array_equal(self.class_id, other.class_id)
            and np.array_equal(self.track_id, other.track_id)
            and same_lm
            and (self.mask is None) == (other.mask is None)
            and (self.mask is None or np.array_equal(self.mask, other.mask))
        )

    __hash__ = None  # type: ignore[assignment]

    def with_(self, **changes: Any) -> Detections:
        """A copy with some fields replaced (the type is frozen)."""
        return replace(self, **changes)

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def area(self) -> np.ndarray:
        return box_area(self.xyxy)

    @property
    def center(self) -> np.ndarray:
        return box_centre(self.xyxy)

    def scaled(self, sx: float, sy: float | None = None) -> Detections:
        """Boxes and landmarks multiplied by a resize factor (detector input -> frame)."""
        sy = sx if sy is None else sy
        factor = np.array([sx, sy, sx, sy], np.float32)
        lm = None if self.landmarks is None else self.landmarks * np.array([sx, sy], np.float32)
        return self.with_(xyxy=self.xyxy * factor, landmarks=lm)

    def clipped(self, width: int, height: int) -> Detections:
        return self.with_(xyxy=clip_box(self.xyxy, width, height))

    @staticmethod
    def merge(items: Sequence[Detections]) -> Detections:
        """Concatenate; landmarks survive only when every part has the same K.

        Masks survive when any part has them: parts without get all-False rows
        (hidden by their box), so one segmenting detector keeps its outlines.
        """
        items = [d for d in items if d is not None]
        if not items:
            return Detections.empty()
        non_empty = [d for d in items if len(d)]
        if not non_empty:
            return items[0]
        lms = [d.landmarks for d in non_empty]
        same_k = all(lm is not None for lm in lms) and len({lm.shape[1] for lm in lms}) == 1
        return Detections(
            xyxy=np.concatenate([d.xyxy for d in non_empty]),
            score=np.concatenate([d.score for d in non_empty]),
            class_id=np.concatenate([d.class_id for d in non_empty]),
            track_id=np.concatenate([d.track_id for d in non_empty]),
            landmarks=np.concatenate(lms) if same_k else None,
            mask=_merged_masks(non_empty),
        )

    @classmethod
    def from_array(cls, array: Any, class_id: int = FACE) -> Detections:
        """From an [N, 4] or [N, 5] array: x1, y1, x2, y2[, score].

        Other libraries' results (pose keypoints, supervision, ultralytics) are
        converted by veil.converters, which builds on this module, never the reverse.
        """
        arr = np.asarray(array, np.float32)
        arr = arr.reshape(0, 4) if arr.size == 0 else np.atleast_2d(arr)
        if arr.shape[1] not in (4, 5):
            raise ValueError(f"expected [N, 4] or [N, 5] boxes, got {arr.shape}")
        score = arr[:, 4] if arr.shape[1] == 5 else None
        return cls(arr[:, :4], score=score, class_id=np.full(len(arr), class_id))


def _merged_masks(items: Sequence[Detections]) -> np.ndarray | None:
    shapes = {d.mask.shape[1:] for d in items if d.mask is not None}
    if not shapes:
        return None
    if len(shapes) > 1:
        raise ValueError(f"cannot merge masks of different frame sizes: {sorted(shapes)}")
    hw = shapes.pop()
    return np.concatenate(
        [d.mask if d.mask is not None else np.zeros((len(d), *hw), bool) for d in items]
    )
