"""Can a face-recognition model still match an anonymized face to the original?

dlib's face-recognition ResNet maps an aligned face to a 128-d embedding; two
faces closer than 0.6 are the same person by dlib's own threshold. A hiding
method is strong enough on a face when the anonymized face is either no longer
found by dlib's face detector, or lies further than 0.6 from the original.

The attacker is given every advantage: the face is aligned with the landmarks
found on the original (not on the anonymized pixels), and for blur a Wiener
deconvolution with the exact Gaussian kernel is tried at several noise levels,
keeping whichever result comes closest to the original.

Needs the `reid` extra (dlib-bin, face-recognition-models); imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..boxes import box_iou, grow_box
from ..detections import Detections
from ..errors import DetectorError
from ..hide import AnonymizeOptions, apply
from ..hide import methods as hide_methods
from ..hide.masks import region_for
from ..keep_face import dlib_models

SAME_PERSON = 0.6
WIENER_BALANCES = (0.001, 0.01, 0.1)


@dataclass(frozen=True)
class Attempt:
    """One re-identification attempt on one anonymized face."""

    distance: float  # embedding distance to the original, aligned with the original's landmarks
    detected: bool  # dlib's face detector still finds a face there

    @property
    def reidentified(self) -> bool:
        return self.detected and self.distance <= SAME_PERSON


@lru_cache(maxsize=1)
def _models():
    try:
        dlib, aligner, model = dlib_models()
    except ImportError as exc:
        raise DetectorError(
            "re-identification checks need the reid extra: pip install 'veil[reid]'"
        ) from exc
    return dlib, dlib.get_frontal_face_detector(), aligner, model


class Embedder:
    """dlib's HOG face detector, 5-point aligner and face-recognition ResNet."""

    def __init__(self) -> None:
        self.dlib, self.detector, self.aligner, self.model = _models()

    def find(self, bgr: np.ndarray, upsample: int = 1) -> np.ndarray:
        """Face boxes [N, 4] (x1, y1, x2, y2) that dlib finds."""
        rects = self.detector(np.ascontiguousarray(bgr[:, :, ::-1]), upsample)
        return np.array(
            [[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32
        ).reshape(-1, 4)

    def landmarks(self, bgr: np.ndarray, box: Sequence[float]):
        rect = self.dlib.rectangle(*(round(float(v)) for v in box))
        return self.aligner(np.ascontiguousarray(bgr[:, :, ::-1]), rect)

    def embed(self, bgr: np.ndarray, shape) -> np.ndarray:
        return np.array(
            self.model.compute_face_descriptor(np.ascontiguousarray(bgr[:, :, ::-1]), shape)
        )

    def face(self, image: np.ndarray, box: Sequence[float]) -> Face:
        shape = self.landmarks(image, box)
        return Face(image, np.asarray(box, np.float32), shape, self.embed(image, shape))

    def attempt(self, face: Face, anonymized: np.ndarray) -> Attempt:
        """Distance with the original's alignment; detection looked for near the face only."""
        distance = float(np.linalg.norm(face.embedding - self.embed(anonymized, face.shape)))
        x1, y1, x2, y2 = face.box
        mw, mh = x2 - x1, y2 - y1
        h, w = anonymized.shape[:2]
        cx1, cy1 = int(max(0, x1 - mw)), int(max(0, y1 - mh))
        cx2, cy2 = int(min(w, x2 + mw)), int(min(h, y2 + mh))
        found = self.find(anonymized[cy1:cy2, cx1:cx2]) + np.array([cx1, cy1, cx1, cy1], np.float32)
        detected = bool(len(found)) and float(box_iou(face.box, found).max()) > 0.3
        return Attempt(distance, detected)


@dataclass
class Face:
    """A real face and what the attacker knows of it: its alignment and embedding."""

    image: np.ndarray
    box: np.ndarray
    shape: object
    embedding: np.ndarray


def anonymize_face(
    image: np.ndarray, box: Sequence[float], options: AnonymizeOptions
) -> np.ndarray:
    return apply(image, Detections(np.asarray(box, np.float32).reshape(1, 4)), options)


def wiener_deconvolve(channel: np.ndarray, sigma: float, balance: float) -> np.ndarray:
    """Wiener filter for a known Gaussian blur: X = conj(H) Y / (|H|^2 + balance).

    The crop is mirror-padded first so the FFT's wrap-around does not ring at its edges.
    """
    pad = int(3 * sigma) + 1
    padded = np.pad(channel, pad, mode="symmetric")
    h, w = padded.shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    otf = np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))  # the Gaussian's Fourier transform
    restored = np.fft.irfft2(np.fft.rfft2(padded) * otf / (otf**2 + balance), s=(h, w))
    return restored[pad:-pad, pad:-pad]


def wiener_attack(
    anonymized: np.ndarray, box: Sequence[float], options: AnonymizeOptions, balance: float
) -> np.ndarray:
    """The blurred region deconvolved with the Gaussian kernel the blur used (sigma known)."""
    h, w = anonymized.shape[:2]
    scaled = grow_box(np.asarray(box, np.float32), options.mask_scale)[0]
    region = region_for(scaled, w, h)
    if region is None:
        return anonymized.copy()
    size = hide_methods.face_size(scaled[2] - scaled[0], scaled[3] - scaled[1])
    sigma = max(1.0, (options.strength or hide_methods.DEFAULT_BLUR_STRENGTH) * size)
    crop = anonymized[region.y1 : region.y2, region.x1 : region.x2].astype(np.float64) / 255.0
    restored = np.stack(
        [wiener_deconvolve(crop[:, :, c], sigma, balance) for c in range(3)], axis=2
    )
    out = anonymized.copy()
    out[region.y1 : region.y2, region.x1 : region.x2] = np.clip(restored * 255.0, 0, 255).astype(
        np.uint8
    )
    return out


def best_wiener_attempt(
    embedder: Embedder, face: Face, anonymized: np.ndarray, options: AnonymizeOptions
) -> Attempt:
    """The Wiener restoration that comes closest to the original, over several noise levels."""
    attempts = [
        embedder.attempt(face, wiener_attack(anonymized, face.box, options, b))
        for b in WIENER_BALANCES
    ]
    return min(attempts, key=lambda a: a.distance)


def method_options(overlay_path: str) -> dict[str, AnonymizeOptions]:
    """Every hiding method at its default setting."""
    return {
        "blur": AnonymizeOptions(method="blur"),
        "pixelate": AnonymizeOptions(method="pixelate"),
        "fill": AnonymizeOptions(method="fill"),
        "image": AnonymizeOptions(method="image", overlay_path=overlay_path),
    }


def labelled_faces(embedder: Embedder, folder) -> list[Face]:
    """Every labelled face of an image folder with annotations.json (dlib-style boxes)."""
    import json
    from pathlib import Path

    from ..io.images import read_image

    folder = Path(folder)
    labels = json.loads((folder / "annotations.json").read_text())
    faces = []
    for key in sorted(labels):
        image = read_image(folder / key).image
        faces.extend(embedder.face(image, box) for box in labels[key])
    return faces


def check(
    embedder: Embedder, faces: Sequence[Face], options: AnonymizeOptions, wiener: bool = False
) -> list[Attempt]:
    """One attempt per face (the best Wiener restoration when wiener is set)."""
    out = []
    for face in faces:
        anonymized = anonymize_face(face.image, face.box, options)
        out.append(
            best_wiener_attempt(embedder, face, anonymized, options)
            if wiener
            else embedder.attempt(face, anonymized)
        )
    return out
