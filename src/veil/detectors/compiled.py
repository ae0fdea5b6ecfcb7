"""OpenVINO models compiled in one run, kept on disk for the next, within a size budget.

Compiling CenterFace for one input shape takes 0.25-0.35 s, single-threaded, and a video
needs three at its start (its frame size, the keyframe scan's coarse pass, the
shape-agnostic model for crops); reading one back takes about 0.08 s (bf16, this machine's
AMX CPU; docs/speed.md). A compiled model keeps its weights, so each is about 7.5 MB: the
shapes kept are the ones a run asks for up front (see OpenVinoEngine), and the least
recently used go once all of them pass CACHE_BYTES.

veil exports and imports the compiled models itself rather than through OpenVINO's
CACHE_DIR: to name a model, OpenVINO serializes it under the "C" locale, which it sets for
the whole process and restores after, so two compilations at once (veil compiles a video's
first shapes in parallel) could leave the process in the wrong locale for good (seen: text
read back from a child process as ASCII). Each file is written under a temporary name and
renamed into place, so a concurrent run (batch workers start together) sees it whole or
not at all; one that OpenVINO cannot read back is deleted and compiled afresh.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..io.paths import TEMP_PREFIX, atomic_output

log = logging.getLogger("veil")

CACHE_BYTES = 256 * 2**20
SUFFIX = ".blob"
# Temporary files older than this were left by a run that died while writing.
STALE_SECONDS = 3600
SUPPORTED = "supported"


def model_key(parts: Iterable[bytes | str]) -> str:
    """A folder name for one model at one configuration: a digest of everything that shapes
    what OpenVINO compiles from it (the model's digest, versions, precision, CPU flags)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


class CompiledCache:
    """The compiled models of one model key under root (the user's cache folder)."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        self.folder = root / key

    def knows_supported(self) -> bool:
        """Whether OpenVINO's CPU plugin was found to run every operation of this model."""
        return (self.folder / SUPPORTED).is_file()

    def mark_supported(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / SUPPORTED).touch()
        except OSError as exc:
            log.debug("not caching OpenVINO's support check in %s: %s", self.folder, exc)

    def compile(
        self, compile_now: Callable[[], Any], read_back: Callable[[bytes], Any], tag: str
    ) -> tuple[Any, bool]:
        """The model called tag: read_back(its exported bytes) from the cache, else
        compile_now() and stored; and whether it was compiled now."""
        path = self.folder / f"{tag}{SUFFIX}"
        try:
            data = path.read_bytes()
        except OSError:
            pass
        else:
            try:
                compiled = read_back(data)
            except Exception as exc:  # OpenVINO's own error for a file it cannot read
                log.warning("veil: warning: recompiling the damaged model %s (%s)", path, exc)
                path.unlink(missing_ok=True)
            else:
                _touch(path)
                return compiled, False
        compiled = compile_now()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as partial:
                partial.write_bytes(compiled.export_model().getvalue())
        except (OSError, OutputError) as exc:  # a read-only home, a full disk
            log.debug("not caching the compiled model %s: %s", path, exc)
        else:
            prune(self.root)
        return compiled, True


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def prune(root: Path, budget: int = CACHE_BYTES) -> None:
    """Delete the least recently used compiled models until the rest fit in budget bytes,
    and temporary files a dead run left behind."""
    kept: list[tuple[float, int, Path]] = []
    now = time.time()
    for path in root.glob(f"*/*{SUFFIX}"):
        try:
            status = path.stat()
        except OSError:
            continue
        if path.name.startswith(TEMP_PREFIX):
            if now - status.st_mtime > STALE_SECONDS:
                path.unlink(missing_ok=True)
            continue
        kept.append((status.st_mtime, status.st_size, path))
    total = sum(size for _, size, _ in kept)
    for _, size, path in sorted(kept):
        if total <= budget:
            break
        path.unlink(missing_ok=True)
        total -= size
