"""Labelled data on disk: image folders and video folders.

Image folder: `annotations.json` maps an image path (relative to the folder)
to face boxes [x1, y1, x2, y2]. Optional `annotations_full.json` gives every
box with flags (`invalid`, `ignore`, WIDER's `easy/medium/hard`), and optional
`annotations_hard_subset.json` lists the boxes of WIDER's official hard set:
when present, only those count and every other box is ignored, as WIDER does.

Video folder: `video_annotations.json` maps a video path to
{fps, width, height, n_frames, frames: [{index, boxes}]}.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

IMAGE_LABELS = "annotations.json"
FULL_LABELS = "annotations_full.json"
HARD_LABELS = "annotations_hard_subset.json"
VIDEO_LABELS = "video_annotations.json"
DATA_ROOT_ENV = "VEIL_EVAL_DATA"


def _boxes(value) -> np.ndarray:
    return np.asarray(value, np.float32).reshape(-1, 4)


@dataclass
class LabelledImage:
    path: Path
    truth: np.ndarray
    ignore: np.ndarray


@dataclass
class LabelledVideo:
    path: Path
    fps: float
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> boxes


@dataclass
class Dataset:
    """A folder of labelled images or videos (one kind per folder)."""

    name: str
    root: Path
    images: list[LabelledImage] = field(default_factory=list)
    videos: list[LabelledVideo] = field(default_factory=list)
    subset: str = "all"

    @property
    def kind(self) -> str:
        return "video" if self.videos else "image"


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV, Path.cwd().parent / "shared" / "data"))


def resolve(name_or_path: str, data_root: Path | None = None) -> Path:
    """A dataset folder given as a path, or as a name inside the data root."""
    direct = Path(name_or_path).expanduser()
    if direct.is_dir():
        return direct
    root = data_root or default_data_root()
    named = root / name_or_path
    if named.is_dir():
        return named
    raise InputError(
        f"no dataset folder '{name_or_path}' (looked in . and {root}; "
        f"set --data-root or {DATA_ROOT_ENV})"
    )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read labels {path}: {exc}") from exc


def _box_set(boxes: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(float(v) for v in b) for b in boxes}


def _ignored_boxes(
    full: dict | None, key: str, counted: np.ndarray, all_valid: np.ndarray
) -> np.ndarray:
    """Every labelled box of an image that exists but does not count."""
    if full is not None and key in full:
        every = _boxes([f["box"] for f in full[key].get("faces", [])])
    else:
        every = all_valid
    keep = _box_set(counted)
    rest = [b for b in every if tuple(float(v) for v in b) not in keep]
    return _boxes(rest)


def load_images(root: Path, subset: str = "auto") -> Dataset:
    """subset: 'hard' (WIDER hard list, the rest ignored), 'all' (every valid box), 'auto'
    (hard when listed)."""
    labels = _read_json(root / IMAGE_LABELS)
    full = _read_json(root / FULL_LABELS) if (root / FULL_LABELS).is_file() else None
    hard = _read_json(root / HARD_LABELS) if (root / HARD_LABELS).is_file() else None
    if subset == "auto":
        subset = "hard" if hard is not None else "all"
    if subset == "hard" and hard is None:
        raise InputError(f"{root} has no {HARD_LABELS}; use --subset all")
    images = []
    for key in sorted(labels):
        valid = _boxes(labels[key])
        truth = _boxes(hard.get(key, [])) if subset == "hard" else valid
        if subset == "hard":
            ignore = _ignored_boxes(full, key, truth, valid)
        elif full is not None and key in full:
            flagged = [
                f["box"] for f in full[key].get("faces", []) if f.get("ignore") or f.get("invalid")
            ]
            ignore = _boxes(flagged)
        else:
            ignore = _boxes([])
        path = root / key
        if not path.is_file():
            raise InputError(f"labelled image missing: {path}")
        images.append(LabelledImage(path, truth, ignore))
    return Dataset(root.name, root, images=images, subset=subset)


def load_videos(root: Path) -> Dataset:
    labels = _read_json(root / VIDEO_LABELS)
    videos = []
    for key in sorted(labels):
        entry = labels[key]
        path = root / key
        if not path.is_file():
            raise InputError(f"labelled video missing: {path}")
        frames = {int(f["index"]): _boxes(f["boxes"]) for f in entry.get("frames", [])}
        videos.append(LabelledVideo(path, float(entry.get("fps") or 0.0), frames))
    return Dataset(root.name, root, videos=videos)


def load(root: Path, subset: str = "auto") -> Dataset:
    if (root / VIDEO_LABELS).is_file():
        return load_videos(root)
    if (root / IMAGE_LABELS).is_file():
        return load_images(root, subset)
    raise InputError(f"{root} has neither {IMAGE_LABELS} nor {VIDEO_LABELS}")
