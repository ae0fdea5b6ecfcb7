"""Small real inputs for the batch tests: scikit-image photos and short clips made from them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

from media import panning_frames, read_video, write_video


def small_astronaut() -> np.ndarray:
    image = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    return cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)


def small_camera() -> np.ndarray:
    gray = cv2.resize(skimage.data.camera(), (256, 256), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def make_tree(root: Path, images: int = 3, video: bool = True, bad: bool = True) -> dict[str, Path]:
    """A folder with subfolders: photos, a 1.5 s clip with audio, and optionally a broken file."""
    files: dict[str, Path] = {}
    photos = [small_astronaut(), small_camera()]
    for i in range(images):
        rel = f"day{i % 2}/photo{i}.{'jpg' if i % 2 == 0 else 'png'}"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # each photo differs a little, so outputs cannot be confused with each other
        cv2.imwrite(str(path), np.roll(photos[i % 2], i * 7, axis=1))
        files[rel] = path
    if video:
        path = root / "clips" / "walk.mov"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, panning_frames(small_astronaut(), 15, step=2), fps=10, audio_seconds=1.5)
        files["clips/walk.mov"] = path
    if bad:
        path = root / "day0" / "broken.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff this is not really a jpeg")
        files["day0/broken.jpg"] = path
    return files


def journal_rows(path: Path) -> dict[str, dict]:
    """Rows of a batch journal (empty while the run has not created its table yet)."""
    db = sqlite3.connect(str(path), timeout=30)
    try:
        db.row_factory = sqlite3.Row
        return {row["key"]: dict(row) for row in db.execute("SELECT * FROM items")}
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        db.close()


def audio_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0
        return sum(1 for p in container.demux(container.streams.audio[0]) if p.size)


def face_hidden(original: np.ndarray, output: np.ndarray, shift: int = 0) -> bool:
    """The astronaut's face (at 256 px, moved `shift` px right) no longer looks like the input."""
    x1, y1, x2, y2 = 100 + shift, 40, 125 + shift, 80
    diff = np.abs(original[y1:y2, x1:x2].astype(int) - output[y1:y2, x1:x2].astype(int)).mean()
    return diff > 8


def video_frames(path: Path) -> list[np.ndarray]:
    return read_video(path)[0]


def worker_pids(driver: int) -> list[int]:
    """The pool's worker processes: children of the driver started by multiprocessing's spawn."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == driver and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def photo_folder(root: Path, count: int) -> Path:
    """`count` astronaut photos, each shifted so that no two are the same."""
    photo = small_astronaut()
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(root / f"img{i}.png"), np.roll(photo, i * 9, axis=1))
    return root
