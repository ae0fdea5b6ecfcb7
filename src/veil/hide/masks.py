"""Where to hide: per-box regions and soft masks.

Masks are computed per box on the box's own padded crop, never on the whole
frame, so cost grows with face area rather than frame size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..boxes import scale_box

SHAPES = ("ellipse", "rect")


@dataclass(frozen=True)
class Region:
    """Integer crop [y1:y2, x1:x2] of the frame plus the mask box inside it."""

    x1: int
    y1: int
    x2: int
    y2: int
    box: tuple[float, float, float, float]  # scaled box in frame pixels

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1


def region_for(box: np.ndarray, frame_w: int, frame_h: int, feather: int = 0) -> Region | None:
    """The crop holding a box (plus feather margin), clipped to the frame; None if outside."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1i = max(0, int(np.floor(x1)) - feather)
    y1i = max(0, int(np.floor(y1)) - feather)
    x2i = min(frame_w, int(np.ceil(x2)) + feather)
    y2i = min(frame_h, int(np.ceil(y2)) + feather)
    if x2i <= x1i or y2i <= y1i:
        return None
    return Region(x1i, y1i, x2i, y2i, (x1, y1, x2, y2))


def region_mask(region: Region, shape: str = "ellipse", feather: int = 0) -> np.ndarray:
    """float32 [h, w] in 0..1: 1 inside the (scaled) box shape, optional soft edge outside it.

    The feather only ever extends outward, so the whole box area stays fully hidden.
    """
    h, w = region.height, region.width
    mask = np.zeros((h, w), np.uint8)
    bx1, by1, bx2, by2 = region.box
    ox, oy = bx1 - region.x1, by1 - region.y1
    bw, bh = bx2 - bx1, by2 - by1
    if shape == "rect":
        cv2.rectangle(
            mask,
            (int(np.floor(ox)), int(np.floor(oy))),
            (int(np.ceil(ox + bw)) - 1, int(np.ceil(oy + bh)) - 1),
            255,
            -1,
        )
    elif shape == "ellipse":
        # Drawn with 4 bits of sub-pixel precision so small faces get a true ellipse.
        shift = 4
        center = (int(round((ox + bw / 2) * 16)), int(round((oy + bh / 2) * 16)))
        axes = (max(1, int(round(bw / 2 * 16))), max(1, int(round(bh / 2 * 16))))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 255, -1, lineType=cv2.LINE_AA, shift=shift)
        # Anti-aliasing makes the rim partial; a hidden face must be fully hidden, so harden it.
        mask = np.where(mask > 0, 255, 0).astype(np.uint8)
    else:
        raise ValueError(f"unknown mask shape {shape!r}")
    if feather > 0:
        grown = cv2.GaussianBlur(mask, (0, 0), feather / 2)
        mask = np.maximum(mask, grown)
    return mask.astype(np.float32) / 255.0


def outline_mask(
    outline: np.ndarray, grow: float, feather: int = 0
) -> tuple[Region | None, np.ndarray]:
    """Region and float mask for a frame-sized bool outline, dilated by `grow` pixels.

    Segmentation edges are soft and lag motion, so the outline is grown like a
    box is scaled: the hidden area errs on the side of covering too much.
    """
    h, w = outline.shape
    ys, xs = np.nonzero(outline)
    margin = int(np.ceil(max(grow, 0.0))) + feather
    x1, y1 = max(0, int(xs.min()) - margin), max(0, int(ys.min()) - margin)
    x2, y2 = min(w, int(xs.max()) + 1 + margin), min(h, int(ys.max()) + 1 + margin)
    region = Region(x1, y1, x2, y2, (float(x1), float(y1), float(x2), float(y2)))
    mask = outline[y1:y2, x1:x2].astype(np.uint8) * 255
    if grow >= 1:
        k = 2 * int(round(grow)) + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    if feather > 0:
        mask = np.maximum(mask, cv2.GaussianBlur(mask, (0, 0), feather / 2))
    return region, mask.astype(np.float32) / 255.0


def coverage(
    frame_shape: tuple[int, int], boxes: np.ndarray, shape: str, mask_scale: float
) -> np.ndarray:
    """bool [H, W]: every pixel the anonymizer will hide for these boxes (for evaluation)."""
    h, w = frame_shape
    out = np.zeros((h, w), bool)
    for box in scale_box(boxes, mask_scale):
        region = region_for(box, w, h)
        if region is None:
            continue
        out[region.y1 : region.y2, region.x1 : region.x2] |= region_mask(region, shape) > 0.5
    return out
