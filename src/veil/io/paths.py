"""Finding inputs, naming outputs and writing them atomically.

Rules: an input is never overwritten; an existing output is never replaced
unless asked (a free name is picked instead); every output is written under a
temporary name in its target folder and renamed only once complete, so a crash
never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import InputError, OutputError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jfif"}
VIDEO_EXTS = {
    ".mp4",
    ".mov",
    ".mkv",
    ".avi",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".wmv",
    ".flv",
    ".3gp",
    ".ogv",
    ".gif",
}
DEFAULT_SUFFIX = "_anonymized"
TEMP_PREFIX = ".veil-partial-"


def media_kind(path: Path) -> str:
    """'image' or 'video' from the name; the content is checked when the file is opened."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    raise InputError(f"{path}: not a supported image or video (extension '{ext or 'none'}')")


def check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        if not os.access(path, os.R_OK):
            raise InputError(f"{path}: permission denied")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: file is empty")


def collect_inputs(
    paths: Sequence[str | os.PathLike], recursive: bool = False
) -> list[tuple[Path, Path]]:
    """(file, root) pairs; root is the folder given (to mirror structure) or the file's parent."""
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        path = Path(raw)
        check_readable(path)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                p
                for p in path.glob(pattern)
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS
                and not p.name.startswith(TEMP_PREFIX)
            )
            if not files:
                hint = "" if recursive else " (use --recursive for subfolders)"
                raise InputError(f"{path}: no images or videos found{hint}")
            found.extend((f, path) for f in files)
        else:
            media_kind(path)
            found.append((path, path.parent))
    return found


def free_name(path: Path) -> Path:
    """path, or path with ' (2)', ' (3)'... before the extension if taken."""
    if not path.exists():
        return path
    n = 2
    while True:
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def plan_output(
    source: Path,
    root: Path,
    output: str | os.PathLike | None,
    *,
    many: bool,
    suffix: str = DEFAULT_SUFFIX,
    overwrite: bool = False,
    extension: str | None = None,
) -> Path:
    """Where the anonymized copy of `source` goes.

    No -o: next to the input with a suffix. -o is a folder (exists, ends with a
    separator, or several inputs): the input's path below `root` is mirrored
    there. Otherwise -o is the file itself.
    """
    ext = extension or source.suffix
    if output is None:
        target = source.with_name(f"{source.stem}{suffix}{ext}")
    else:
        out = Path(output)
        as_dir = many or out.is_dir() or str(output).endswith(("/", os.sep))
        if as_dir:
            rel = source.relative_to(root) if source.is_relative_to(root) else Path(source.name)
            target = out / rel.with_suffix(ext)
        else:
            target = out
    if target.resolve() == source.resolve():
        raise OutputError(f"{target}: refusing to overwrite the input")
    if target.exists() and not overwrite:
        target = free_name(target)
    return target


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` (same extension), renamed onto it on success."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create folder ({exc.strerror})") from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=target.suffix, dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
