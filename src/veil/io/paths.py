"""Finding inputs, naming outputs and writing them atomically.

Rules: an input is never overwritten; an existing output is never replaced
unless asked (a free name is picked instead); every output stays inside its
output root; every output is written under a temporary name in its target
folder and renamed only once complete, so a crash never leaves a half-written
file under a real name.

Names are reserved atomically, within a run and across processes: the
temporary file of output `x.jpg` is always `.veil-partial-x.jpg`, and the
process writing it holds an exclusive lock (flock) on it until the rename.
Another veil process that finds the temporary file locked takes the next free
name (`x (2).jpg`); one that finds it unlocked knows its writer died and
removes it. The lock belongs to the open file, so the kernel releases it when a
process dies however it dies, and a live process's file is never taken for a
stale one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import InputError, OptionError, OutputError

log = logging.getLogger("veil")

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
# What veil writes: images by Pillow format name, videos in containers its codecs fit.
IMAGE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
VIDEO_OUTPUT_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".m4v"}
DEFAULT_SUFFIX = "_anonymized"
TEMP_PREFIX = ".veil-partial-"
NAME_MAX = 255  # bytes in one file name on every common file system
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
_SWEPT: set[Path] = set()  # folders whose stale temporary files this process removed


def media_kind(path: Path) -> str:
    """'image' or 'video' from the name; the content is checked when the file is opened."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    raise InputError(f"{path}: not a supported image or video (extension '{ext or 'none'}')")


def output_extension(source: Path) -> str:
    """The output's extension: the input's, except videos in containers veil cannot write (.mp4)."""
    ext = source.suffix.lower()
    if media_kind(source) == "image" or ext in VIDEO_OUTPUT_EXTS:
        return source.suffix
    return ".mp4"


def check_output_name(source: Path, target: Path) -> None:
    """A one-line error unless `target`'s extension can hold what `source` is."""
    kind = media_kind(source)
    ext = target.suffix.lower()
    allowed = IMAGE_FORMATS if kind == "image" else VIDEO_OUTPUT_EXTS
    if ext in allowed:
        return
    choices = ", ".join(sorted(allowed))
    if not ext:
        raise OptionError(
            f"{target}: no file extension; name the output file with one ({choices}) "
            "or end a folder name with '/'"
        )
    raise OptionError(f"{target}: cannot write {kind}s as '{ext}'; use one of {choices}")


def check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        if not os.access(path, os.R_OK):
            raise InputError(f"{path}: permission denied")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: file is empty")


def own_output_pattern(suffix: str) -> re.Pattern[str] | None:
    """File stems veil gives its outputs with this suffix: `x_anonymized`, `x_anonymized (2)`."""
    if not suffix:
        return None
    return re.compile(rf".+{re.escape(suffix)}( \(\d+\))?")


def collect_inputs(
    paths: Sequence[str | os.PathLike],
    recursive: bool = False,
    *,
    suffix: str = DEFAULT_SUFFIX,
    exclude: Path | None = None,
) -> list[tuple[Path, Path]]:
    """(file, root) pairs; root is the folder given (to mirror structure) or the file's parent.

    Inside folders, veil's own outputs are left out, so running twice never
    anonymizes the first run's results: files named with the output suffix
    (`x_anonymized.jpg`, `x_anonymized (2).jpg`) and, when the output folder
    `exclude` lies inside an input folder, everything in it. A file named on
    the command line is always taken. One line says how many were left out.
    """
    found: list[tuple[Path, Path]] = []
    ours = own_output_pattern(suffix)
    skip = exclude.resolve() if exclude is not None else None
    for raw in paths:
        path = Path(raw)
        check_readable(path)
        if not path.is_dir():
            media_kind(path)
            found.append((path, path.parent))
            continue
        files, skipped = [], 0
        inner = skip if skip is not None and skip != path.resolve() else None
        for p in sorted(path.glob("**/*" if recursive else "*")):
            if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS | VIDEO_EXTS:
                continue
            if p.name.startswith(TEMP_PREFIX):
                continue
            if (ours and ours.fullmatch(p.stem)) or (inner and p.resolve().is_relative_to(inner)):
                skipped += 1
                continue
            files.append(p)
        if skipped:
            log.warning(
                "veil: %s: left out %d file(s) that are veil outputs (named *%s or inside the "
                "output folder); name them one by one to anonymize them again",
                path,
                skipped,
                suffix,
            )
        if not files:
            hint = "" if recursive or skipped else " (use --recursive for subfolders)"
            raise InputError(f"{path}: no images or videos found{hint}")
        found.extend((f, path) for f in files)
    return found


def numbered(path: Path) -> Iterator[Path]:
    """path, then path with ' (2)', ' (3)'... before the extension."""
    yield path
    n = 2
    while True:
        yield path.with_name(f"{path.stem} ({n}){path.suffix}")
        n += 1


def free_name(path: Path, taken: Callable[[Path], bool] = Path.exists) -> Path:
    """The first of numbered(path) that is not taken."""
    return next(p for p in numbered(path) if not taken(p))


def inside(root: Path, target: Path) -> Path:
    """`target`, after checking that it stays inside `root` (also through symbolic links)."""
    lexical = Path(os.path.normpath(target))
    if not lexical.is_relative_to(os.path.normpath(root)) or not (
        lexical.parent.resolve().is_relative_to(root.resolve())
    ):
        raise OutputError(f"{target}: would be written outside the output folder {root}")
    return lexical


class RunNames:
    """Names one run may not give an output: its inputs and the outputs it already planned."""

    def __init__(self, inputs: Sequence[Path]) -> None:
        self._used = {p.resolve() for p in inputs}

    def in_run(self, path: Path) -> bool:
        return path.resolve() in self._used

    def __call__(self, path: Path) -> bool:
        """Taken: in the run, or an existing file."""
        return self.in_run(path) or path.exists()

    def add(self, path: Path) -> Path:
        self._used.add(path.resolve())
        return path


def plan_output(
    source: Path,
    root: Path,
    output: str | os.PathLike | None,
    *,
    many: bool,
    suffix: str = DEFAULT_SUFFIX,
    overwrite: bool = False,
    extension: str | None = None,
    names: RunNames | None = None,
) -> Path:
    """Where the anonymized copy of `source` goes.

    No -o: next to the input with a suffix. -o is a folder (exists, ends with a
    separator, or several inputs): the input's path below `root` is mirrored
    there, and must stay below it. Otherwise -o is the file itself. A name that
    is taken gets ' (2)', ' (3)'...: an existing file unless `overwrite`, and
    always an input or another output of the same run (`names`).
    """
    ext = extension or source.suffix
    if output is None:
        target = source.with_name(f"{source.stem}{suffix}{ext}")
    else:
        out = Path(output)
        as_dir = many or out.is_dir() or str(output).endswith(("/", os.sep))
        if as_dir:
            rel = source.relative_to(root) if source.is_relative_to(root) else Path(source.name)
            target = inside(out, out / rel.with_suffix(ext))
        else:
            target = out
    check_output_name(source, target)
    if target.resolve() == source.resolve():
        raise OutputError(f"{target}: refusing to overwrite the input")
    names = names or RunNames([source])
    return free_name(target, names.in_run if overwrite else names)


def plan_outputs(
    items: Sequence[tuple[Path, Path]],
    output: str | os.PathLike | None,
    *,
    many: bool,
    suffix: str = DEFAULT_SUFFIX,
    overwrite: bool = False,
) -> list[tuple[Path, Path]]:
    """(source, target) for every collected input; no two targets of a run share a name."""
    names = RunNames([source for source, _ in items])
    planned = []
    for source, root in items:
        target = plan_output(
            source,
            root,
            output,
            many=many,
            suffix=suffix,
            overwrite=overwrite,
            extension=output_extension(source),
            names=names,
        )
        planned.append((source, names.add(target)))
    return planned


# -- reserving names and writing atomically -------------------------------------------------


def temp_path(target: Path) -> Path:
    """The temporary file of `target`: the same for every process, so it is the name's lock."""
    name = TEMP_PREFIX + target.name
    if len(os.fsencode(name)) > NAME_MAX:
        digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32]
        name = f"{TEMP_PREFIX}{digest}{target.suffix[:16]}"
    return target.with_name(name)


def _hold(path: Path, create: bool) -> int | None:
    """An open descriptor of `path` under an exclusive lock, or None if a live process holds it.

    create: make the file (None if it exists); otherwise open the existing one
    (None if it is gone). The lock counts only if the file is still the one at
    `path` once locked: a file renamed into place or removed meanwhile belongs
    to no one.
    """
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
    try:
        fd = os.open(path, flags, 0o666)  # the umask applies, as to any file the user creates
    except (FileExistsError, FileNotFoundError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    except OSError as exc:
        if create and exc.errno in _NO_LOCKS:
            return fd  # a file system without locks: O_EXCL alone reserves the name
        os.close(fd)
        raise
    os.close(fd)
    return None


def remove_if_stale(path: Path) -> bool:
    """Delete a temporary file whose writer is gone; False while a live process holds it."""
    fd = _hold(path, create=False)
    if fd is None:
        return not path.exists()
    try:
        path.unlink()
    finally:
        os.close(fd)
    return True


def remove_stale_partials(folder: Path) -> int:
    """Delete the temporary files that killed runs left in `folder`; returns how many."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        with contextlib.suppress(OSError):  # not removable here: it is never taken for an output
            removed += remove_if_stale(folder / name)
    return removed


class Slot:
    """An output name this process holds: write `tmp`, then `commit` renames it to `target`.

    The temporary file was created with mode 0666 less the umask, so the
    output gets the permissions any file the user creates gets.
    """

    def __init__(self, target: Path, tmp: Path, fd: int) -> None:
        self.target = target
        self.tmp = tmp
        self._fd: int | None = fd

    def commit(self) -> Path:
        """Move the finished file into place and give the lock up."""
        try:
            os.replace(self.tmp, self.target)
        except OSError as exc:
            self.abort()
            raise write_error(self.target, exc) from None
        self._release()
        return self.target

    def abort(self) -> None:
        """Remove the partial file and give the name back."""
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
            self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def reserve(target: Path, *, overwrite: bool = False) -> Slot:
    """Hold `target`'s name for this process, or unless `overwrite` the next free one.

    The first time this process writes in a folder, the temporary files that
    killed runs left there are removed.
    """
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create folder ({exc.strerror})") from None
    if folder.resolve() not in _SWEPT:
        remove_stale_partials(folder)
        _SWEPT.add(folder.resolve())
    for candidate in numbered(target):
        fd = _claim(temp_path(candidate))
        if fd is None and overwrite:
            raise OutputError(f"{candidate}: another veil process is writing this file")
        if fd is None:
            continue
        slot = Slot(candidate, temp_path(candidate), fd)
        if overwrite or not candidate.exists():
            return slot
        slot.abort()
    raise AssertionError("numbered() never ends")


def _claim(tmp: Path) -> int | None:
    """Create and lock `tmp`, clearing a dead run's leftover; None if a live process has it."""
    try:
        for _ in range(100):
            fd = _hold(tmp, create=True)
            if fd is not None:
                return fd
            if not remove_if_stale(tmp):
                return None
    except OSError as exc:
        raise write_error(tmp.parent, exc) from None
    raise OutputError(f"{tmp}: cannot reserve this name (another process keeps replacing it)")


@contextlib.contextmanager
def atomic_output(target: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path beside `target` (same extension), renamed onto it on success.

    Use reserve() where the name may change (overwrite=False: the next free one).
    """
    with reserve(target, overwrite=overwrite) as slot:
        yield slot.tmp


def write_error(target: Path, exc: BaseException) -> OutputError:
    """The one-line error for a failed write: disk full, file too large, read-only, ..."""
    code = getattr(exc, "errno", None)
    reason = os.strerror(code) if code else (getattr(exc, "strerror", None) or str(exc))
    hint = {
        errno.ENOSPC: "; free some space",
        errno.EDQUOT: "; free some space",
        errno.EFBIG: "; the file system or a file size limit does not allow it",
    }.get(code or 0, "")
    return OutputError(f"{target}: cannot write ({reason}){hint}")
