"""Recognising the one person the user wants left visible (extra: reid, dlib's face embedder).

dlib's ResNet maps a face to a 128-d vector where the same person lies within
about 0.6 of themself. Leaving a face visible is the risky direction, so the
match is strict: the face nearest the reference must be under the tolerance
(0.5 by default) and clearly nearer than any other face in the frame;
otherwise every face stays hidden.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import DetectorError, InputError

# The nearest face must beat the second nearest by this much to count as a match.
MARGIN = 0.1


def _model_file(name: str) -> str:
    """A weights file of the face-recognition-models package, found without importing it: its
    __init__ imports pkg_resources, which setuptools 81 dropped (and installing PyTorch, which
    asks for setuptools, brings a newer one), only to name these same files."""
    spec = importlib.util.find_spec("face_recognition_models")
    folder = Path(spec.origin).parent if spec and spec.origin else None
    if folder is None or not (folder / "models" / name).is_file():
        raise ImportError(f"face_recognition_models with models/{name}")
    return str(folder / "models" / name)


@lru_cache(maxsize=1)
def dlib_models():
    """dlib and its face aligner (5 landmarks) and face-recognition ResNet; ImportError
    where the reid extra is not installed."""
    import dlib

    return (
        dlib,
        dlib.shape_predictor(_model_file("shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(_model_file("dlib_face_recognition_resnet_model_v1.dat")),
    )


def _models():
    try:
        return dlib_models()
    except ImportError as exc:
        raise DetectorError(
            "--keep-face needs dlib's face embedder: pip install 'veil[reid]'"
        ) from exc


def embed(image_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """[N, 128] face descriptors for face boxes in a BGR image."""
    dlib, predictor, net = _models()
    rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    out = []
    for x1, y1, x2, y2 in np.round(np.asarray(xyxy).reshape(-1, 4)).astype(int):
        shape = predictor(rgb, dlib.rectangle(int(x1), int(y1), int(x2), int(y2)))
        out.append(np.asarray(net.compute_face_descriptor(rgb, shape), np.float32))
    return np.asarray(out, np.float32).reshape(-1, 128)


class KnownFace:
    """The reference person's descriptor and the strict rule for matching it."""

    def __init__(self, reference: str | Path, tolerance: float = 0.5) -> None:
        from .detectors import detector_for
        from .io.images import read_image

        self.tolerance = tolerance
        image = read_image(Path(reference)).image
        faces = detector_for().detect([image])[0]
        if len(faces) == 0:
            raise InputError(f"no face found in the --keep-face photo {reference}")
        largest = faces[int(np.argmax(faces.area))]
        self.descriptor = embed(image, largest.xyxy)[0]

    def distances(self, frame: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        return np.linalg.norm(embed(frame, xyxy) - self.descriptor, axis=1)

    def find(self, frame: np.ndarray, xyxy: np.ndarray) -> int | None:
        """Index of the box showing the reference person, or None when unsure."""
        if len(xyxy) == 0:
            return None
        dist = self.distances(frame, xyxy)
        order = np.argsort(dist)
        best = int(order[0])
        if dist[best] >= self.tolerance:
            return None
        if len(dist) > 1 and dist[order[1]] - dist[best] < MARGIN:
            return None
        return best
