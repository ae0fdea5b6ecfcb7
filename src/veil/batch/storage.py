"""Where batch inputs come from and outputs go: local folders, manifests, object storage.

Local paths (and file:// URLs) are handled with pathlib, so a local batch needs
no extra package. Any other URL (s3://, gs://, az://...) goes through fsspec,
imported only then. Object storage has no rename, so a remote output is
written to a local temporary file and uploaded whole: an object appears only
once its upload completes, which is what makes remote outputs atomic.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import InputError, OptionError, OutputError
from ..io.paths import IMAGE_EXTS, TEMP_PREFIX, VIDEO_EXTS, output_extension, remove_if_stale
from .segments import PART_PREFIX

MEDIA_EXTS = IMAGE_EXTS | VIDEO_EXTS
MANIFEST_EXTS = {".txt", ".csv", ".lst", ".list"}
MANIFEST_COLUMNS = ("path", "url", "file", "filename", "source")


class MissingExtra(OptionError):
    """An optional package needed for this batch is not installed."""


def is_remote(location: str) -> bool:
    """True for URLs that need fsspec (anything with a scheme except file://)."""
    scheme = urlparse(str(location)).scheme
    return len(scheme) > 1 and scheme != "file"


def local_path(location: str | os.PathLike) -> Path:
    text = str(location)
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    return Path(text)


def open_filesystem(url: str, storage_options: dict[str, Any]):
    """(filesystem, path inside it) for a remote URL."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise MissingExtra(
            f"{url}: object storage needs fsspec: pip install 'veil[batch]'"
        ) from None
    try:
        return url_to_fs(url, **storage_options)
    except ImportError as exc:
        raise MissingExtra(
            f"{url}: no driver for this storage ({exc}); pip install 'veil[batch]'"
        ) from None
    except ValueError as exc:
        raise OptionError(f"{url}: {exc}") from None


def _join(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel


def media_ext(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


@dataclass(frozen=True)
class Source:
    """One input file: key is its path below the input root (posix), mirrored in the output."""

    key: str
    location: str
    fingerprint: str


@dataclass
class InputSet:
    """Everything the input names, in a stable order."""

    sources: list[Source]
    storage_options: dict[str, Any] = field(default_factory=dict)


def _fingerprint(size: Any, modified: Any) -> str:
    return f"{size}:{modified}"


def _remote_fingerprint(info: dict[str, Any]) -> str:
    modified = (
        info.get("ETag")
        or info.get("etag")
        or info.get("LastModified")
        or info.get("mtime")
        or info.get("updated")
        or info.get("md5Hash")
        or ""
    )
    return _fingerprint(info.get("size"), str(modified).strip('"'))


def _is_media(name: str) -> bool:
    return media_ext(name) in MEDIA_EXTS and not PurePosixPath(name).name.startswith(
        (TEMP_PREFIX, PART_PREFIX)
    )


def list_inputs(
    location: str, storage_options: dict[str, Any] | None = None, exclude: Path | None = None
) -> InputSet:
    """Every media file below a folder or prefix, the entries of a manifest, or one file.

    exclude: a local folder to leave out (the output, when it lies inside the input).
    """
    options = dict(storage_options or {})
    if is_remote(location):
        sources = _list_remote(location, options)
    else:
        sources = _list_local(local_path(location), exclude, options)
    if not sources:
        raise InputError(f"{location}: no images or videos found")
    return InputSet(sources, options)


def _list_local(path: Path, exclude: Path | None, options: dict[str, Any]) -> list[Source]:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        skip = exclude.resolve() if exclude is not None else None
        found = []
        for dirpath, dirnames, filenames in os.walk(path):
            here = Path(dirpath)
            if skip is not None:
                dirnames[:] = [d for d in dirnames if (here / d).resolve() != skip]
            for name in filenames:
                if _is_media(name):
                    file = here / name
                    st = file.stat()
                    found.append(
                        Source(
                            file.relative_to(path).as_posix(),
                            str(file),
                            _fingerprint(st.st_size, st.st_mtime_ns),
                        )
                    )
        return sorted(found, key=lambda s: s.key)
    if _is_media(path.name):
        st = path.stat()
        return [Source(path.name, str(path), _fingerprint(st.st_size, st.st_mtime_ns))]
    if path.suffix.lower() in MANIFEST_EXTS:
        return _from_manifest(path.read_text(encoding="utf-8-sig"), str(path.parent), options)
    raise InputError(f"{path}: not a folder, a manifest (.txt, .csv) or an image or video")


def _list_remote(url: str, options: dict[str, Any]) -> list[Source]:
    fs, root = open_filesystem(url, options)
    protocol = url.split("://", 1)[0]
    try:
        if fs.isdir(root):
            listing = fs.find(root, detail=True)
            found = []
            for path, info in listing.items():
                if info.get("type", "file") == "file" and _is_media(path):
                    rel = posixpath.relpath(path, root.rstrip("/"))
                    found.append(Source(rel, f"{protocol}://{path}", _remote_fingerprint(info)))
            return sorted(found, key=lambda s: s.key)
        if not fs.exists(root):
            raise InputError(f"{url}: no such object or prefix")
        name = PurePosixPath(root).name
        if _is_media(name):
            return [Source(name, url, _remote_fingerprint(fs.info(root)))]
        if media_ext(name) in MANIFEST_EXTS:
            with fs.open(root, "rb") as fh:
                text = fh.read().decode("utf-8-sig")
            return _from_manifest(text, url.rsplit("/", 1)[0], options)
    except (OSError, PermissionError) as exc:
        raise InputError(f"{url}: cannot read ({exc})") from None
    raise InputError(f"{url}: not a prefix, a manifest (.txt, .csv) or an image or video")


def _manifest_entries(text: str) -> list[str]:
    """Paths from a text manifest (one per line, # comments) or a CSV with a path column."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        return []
    first = next(csv.reader([lines[0]]))
    if len(first) == 1 and not any(c.lower() in MANIFEST_COLUMNS for c in first):
        return lines
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header = [c.strip().lower() for c in rows[0]]
    column = next((header.index(name) for name in MANIFEST_COLUMNS if name in header), None)
    if column is None:
        return [row[0].strip() for row in rows if row and row[0].strip()]
    return [row[column].strip() for row in rows[1:] if len(row) > column and row[column].strip()]


def _from_manifest(text: str, base: str, options: dict[str, Any]) -> list[Source]:
    """Manifest entries resolved against the manifest's folder, keyed below their common folder."""
    located = []
    for entry in _manifest_entries(text):
        if is_remote(entry) or entry.startswith("file://"):
            located.append(entry)
        elif is_remote(base):
            located.append(entry if entry.startswith("/") else _join(base, entry))
        else:  # '..' resolved here, so that keys below the common folder never climb out of it
            located.append(os.path.normpath((Path(base) / local_path(entry)).absolute()))
    for entry in located:
        if not _is_media(entry):
            raise InputError(
                f"manifest entry {entry}: not a supported image or video "
                f"(extension '{media_ext(entry)}')"
            )
    if not located:
        return []
    bare = [
        posixpath.normpath(urlparse(e).netloc + urlparse(e).path)
        if is_remote(e)
        else os.path.normpath(local_path(e))
        for e in located
    ]
    common = (
        posixpath.commonpath([posixpath.dirname(b) for b in bare])
        if len(bare) > 1
        else posixpath.dirname(bare[0])
    )
    sources = []
    for entry, plain in zip(located, bare):
        key = posixpath.relpath(plain, common) if common else plain.lstrip("/")
        sources.append(Source(key, entry, _entry_fingerprint(entry, options)))
    keys = [s.key for s in sources]
    if len(set(keys)) != len(keys):
        raise InputError("the manifest names the same file twice")
    return sources


def _entry_fingerprint(entry: str, options: dict[str, Any]) -> str:
    if is_remote(entry):
        fs, path = open_filesystem(entry, options)
        try:
            return _remote_fingerprint(fs.info(path))
        except FileNotFoundError:
            return "missing"
    try:
        st = local_path(entry).stat()
    except OSError:
        return "missing"  # reported as a failed item when processed
    return _fingerprint(st.st_size, st.st_mtime_ns)


def output_key(key: str) -> str:
    """The output's path below the output root: same as the input's, videos as .mp4 when needed."""
    if media_ext(key) in VIDEO_EXTS:
        return str(PurePosixPath(key).with_suffix(output_extension(Path(key))))
    return key


def output_location(root: str, key: str) -> str:
    """Where the output of the input `key` goes: always below `root`, also through symlinks."""
    rel = output_key(key)
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise OutputError(f"{key}: its output would be written outside the output folder {root}")
    if is_remote(root):
        return _join(root, rel)
    base = local_path(root)
    target = base / rel
    if not target.parent.resolve().is_relative_to(base.resolve()):
        raise OutputError(f"{key}: its output would be written outside the output folder {root}")
    return str(target)


def existing_outputs(root: str, storage_options: dict[str, Any]) -> set[str]:
    """Locations already present below the output root (one listing, not one request per file)."""
    if is_remote(root):
        fs, base = open_filesystem(root, storage_options)
        protocol = root.split("://", 1)[0]
        try:
            return {f"{protocol}://{p}" for p in fs.find(base)}
        except FileNotFoundError:
            return set()
    base = local_path(root)
    if not base.is_dir():
        return set()
    return {str(Path(dirpath) / name) for dirpath, _, names in os.walk(base) for name in names}


def remove_partials(root: str, prefixes: tuple[str, ...] = (TEMP_PREFIX,)) -> int:
    """Delete temporary files that killed workers left in a local output folder; returns how many.

    A `.veil-partial-` file is removed only once its writer is gone (a live
    process holds a lock on it); other prefixes (segment parts) always.
    """
    if is_remote(root):
        return 0  # remote outputs are uploaded whole; nothing partial is ever visible there
    base = local_path(root)
    removed = 0
    if base.is_dir():
        for dirpath, _, names in os.walk(base):
            for name in names:
                path = Path(dirpath) / name
                if name.startswith(TEMP_PREFIX) and TEMP_PREFIX in prefixes:
                    removed += remove_if_stale(path)
                elif name.startswith(prefixes):
                    path.unlink(missing_ok=True)
                    removed += 1
    return removed
