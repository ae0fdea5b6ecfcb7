"""What happens between detection and hiding: dropping detections the user does not want hidden.

Every filter here can only remove detections, so each one is a deliberate
choice to leave something visible: a face size range (to reject false
positives), a score floor per target, regions to process only or to leave
alone, and one known face to keep (keep_face.py). Filters run right after the
detector, before tracking, so a dropped box is never carried across frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial

import cv2
import numpy as np

from .boxes import longer_side
from .detections import CLASS_NAMES, FACE, Detections
from .errors import OptionError
from .options import FILTER, check, option

TARGET_IDS = {name: cid for cid, name in CLASS_NAMES.items()}
# A box is sampled on this grid to measure how much of it lies in a region.
GRID = 5


def parse_region(text: str) -> tuple[tuple[float, float], ...]:
    """'x1,y1,x2,y2' (a rectangle) or 'x,y;x,y;x,y...' (a polygon).

    Values all between 0 and 1 are fractions of the frame size, so one region
    fits every resolution; otherwise they are pixels.
    """
    try:
        if ";" in text:
            points = tuple(
                tuple(float(v) for v in p.split(",")) for p in text.split(";") if p.strip()
            )
            if len(points) < 3 or any(len(p) != 2 for p in points):
                raise ValueError
        else:
            x1, y1, x2, y2 = (float(v) for v in text.split(","))
            if x2 <= x1 or y2 <= y1:
                raise ValueError
            points = ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
    except ValueError:
        raise OptionError(
            f"bad region {text!r}; use x1,y1,x2,y2 or x,y;x,y;x,y (pixels, or fractions 0..1)"
        ) from None
    return points  # type: ignore[return-value]


def parse_min_score(item: str) -> tuple[str, float]:
    """'person=0.5' -> ("person", 0.5)."""
    name, _, value = item.strip().partition("=")
    try:
        score = float(value)
    except ValueError:
        score = -1.0
    if name not in TARGET_IDS or not 0 <= score <= 1:
        raise OptionError(
            f"bad --min-score {item!r}; use TARGET=SCORE with targets "
            f"{', '.join(TARGET_IDS)} and scores 0..1"
        )
    return name, score


def parse_min_scores(text: str | Sequence[str] | None) -> tuple[tuple[str, float], ...]:
    """'person=0.5,text=0.6' -> (("person", 0.5), ("text", 0.6))."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return tuple(map(parse_min_score, items))


def _number_text(value: float) -> str:
    return f"{value:.12g}"


def region_text(points: Sequence[Sequence[float]]) -> str:
    """A region as parse_region reads it back (always the polygon form)."""
    return ";".join(",".join(map(_number_text, p)) for p in points)


def min_score_text(item: tuple[str, float]) -> str:
    return f"{item[0]}={_number_text(item[1])}"


filtering = partial(option, group="targets and filters", commands=FILTER)
region = partial(filtering, repeat=True, type=parse_region, show=region_text, metavar="REGION")


@dataclass(frozen=True)
class FilterOptions:
    """Which detections are left visible.

    min_face / max_face: face size range in pixels (the box's longer side);
    faces outside it are taken for false positives. min_score: per-target
    score floors. include: if any, only detections overlapping one of these
    polygons are hidden. exclude: detections with at least half their box in
    one of these are left untouched. keep_face: a photo of the one person to
    leave visible; keep_tolerance: the largest embedding distance that still
    counts as that person (lower is stricter).
    """

    min_face: float = filtering(
        0.0,
        "--min-face-size",
        ge=0,
        metavar="PX",
        help="leave faces smaller than this visible (longer box side; rejects tiny false "
        "positives)",
    )
    max_face: float | None = filtering(
        None,
        "--max-face-size",
        type=float,
        ge=0,
        metavar="PX",
        help="leave faces larger than this visible",
    )
    min_score: tuple[tuple[str, float], ...] = filtering(
        (),
        "--min-score",
        repeat=True,
        type=parse_min_score,
        show=min_score_text,
        metavar="TARGET=S",
        help="score floor per target, e.g. person=0.5 (repeatable)",
    )
    include: tuple[tuple[tuple[float, float], ...], ...] = region(
        (),
        "--include-region",
        help="hide only detections overlapping this region: x1,y1,x2,y2 or x,y;x,y;x,y "
        "(pixels, or fractions 0..1; repeatable)",
    )
    exclude: tuple[tuple[tuple[float, float], ...], ...] = region(
        (),
        "--exclude-region",
        help="leave detections mostly inside this region untouched (same forms; repeatable)",
    )
    keep_face: str | None = filtering(
        None,
        "--keep-face",
        metavar="PHOTO",
        help="leave the person in this photo visible; every other face stays hidden (extra reid)",
    )
    keep_tolerance: float = filtering(
        0.5,
        "--keep-tolerance",
        gt=0,
        lt=1.5,
        metavar="D",
        help="--keep-face match distance, lower is stricter (default %(default)s)",
    )

    def __post_init__(self) -> None:
        check(self)
        if self.max_face is not None and self.max_face < self.min_face:
            raise OptionError(
                "face size range must satisfy 0 <= --min-face-size <= --max-face-size"
            )

    @property
    def active(self) -> bool:
        return bool(
            self.min_face
            or self.max_face is not None
            or self.min_score
            or self.include
            or self.exclude
            or self.keep_face
        )


def _pixels(polygon: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    pts = np.asarray(polygon, np.float32)
    if pts.max() <= 1.0:
        pts = pts * np.array([width, height], np.float32)
    return pts.reshape(-1, 1, 2)


def share_inside(xyxy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """For each box, the share of a GRID x GRID sample of its points inside the polygon."""
    t = (np.arange(GRID) + 0.5) / GRID
    out = np.zeros(len(xyxy), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(xyxy):
        xs, ys = np.meshgrid(x1 + t * (x2 - x1), y1 + t * (y2 - y1))
        inside = [
            cv2.pointPolygonTest(polygon, (float(x), float(y)), False) >= 0
            for x, y in zip(xs.ravel(), ys.ravel())
        ]
        out[i] = np.mean(inside)
    return out


class DetectionFilter:
    """Applies FilterOptions to one frame's detections (the frame is needed only for keep_face)."""

    def __init__(self, options: FilterOptions) -> None:
        self.options = options

    @cached_property
    def matcher(self):
        from .keep_face import KnownFace

        return KnownFace(self.options.keep_face, self.options.keep_tolerance)

    def __call__(self, frames: Sequence[np.ndarray], found: list[Detections]) -> list[Detections]:
        """Each frame's detections filtered. A frame is read only when it holds detections
        and a filter is set: the video scan's frames are converted to BGR when first read,
        and a frame between two keyframes may never need to be."""
        if not self.options.active:
            return found
        return [self._one(frames[i], dets) if len(dets) else dets for i, dets in enumerate(found)]

    def _one(self, frame: np.ndarray, dets: Detections) -> Detections:
        opts = self.options
        h, w = frame.shape[:2]
        keep = np.ones(len(dets), bool)
        face = dets.class_id == FACE
        side = longer_side(dets.xyxy)
        keep &= ~face | (side >= opts.min_face)
        if opts.max_face is not None:
            keep &= ~face | (side <= opts.max_face)
        for name, floor in opts.min_score:
            keep &= (dets.class_id != TARGET_IDS[name]) | (dets.score >= floor)
        if opts.include:
            shares = [share_inside(dets.xyxy, _pixels(p, w, h)) for p in opts.include]
            keep &= np.max(shares, axis=0) > 0
        for polygon in opts.exclude:
            keep &= share_inside(dets.xyxy, _pixels(polygon, w, h)) < 0.5
        if opts.keep_face and (keep & face).any():
            candidates = np.nonzero(keep & face)[0]
            known = self.matcher.find(frame, dets.xyxy[candidates])
            if known is not None:
                keep[candidates[known]] = False
        return dets[keep]
