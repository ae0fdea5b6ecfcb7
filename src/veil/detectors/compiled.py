"""OpenVINO models compiled in one run, kept on disk for the next, within a size budget.

Compiling CenterFace for one input shape takes 0.25-0.35 s, single-threaded, and a video
needs three at its start (its frame size, the keyframe scan's coarse pass, the
shape-agnostic model for crops); reading one back takes about 0.1 s (bf16, this machine's
AMX CPU; docs/speed.md). A compiled model keeps its weights, so each is about 7.5 MB: the
shapes kept are the ones a run asks for up front (see OpenVinoEngine), and the least
recently used go once all of them pass CACHE_BYTES.

Each model is written by OpenVINO into a folder of its own under a staging name and renamed
into place whole, so a concurrent run (batch workers start together) sees it complete or not
at all; one that OpenVINO cannot read back is deleted and compiled afresh.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("veil")

CACHE_BYTES = 256 * 2**20
# Staging folders older than this were left by a run that died while compiling.
STALE_SECONDS = 3600
SUPPORTED = "supported"


def model_key(parts: Iterable[bytes | str]) -> str:
    """A folder name for one model at one configuration: a digest of everything that shapes
    what OpenVINO compiles from it (model bytes, versions, precision, CPU flags)."""
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

    def compile(self, compile_with: Callable[[dict], Any], tag: str) -> tuple[Any, bool]:
        """compile_with(extra config) for the model called tag, read from the cache or
        compiled now and stored (without a writable cache folder, compiled as usual); and
        whether it was compiled now."""
        kept = self.folder / tag
        if kept.is_dir():
            try:
                compiled = compile_with({"CACHE_DIR": str(kept)})
            except Exception as exc:  # OpenVINO's own error for a blob it cannot read
                log.warning("veil: warning: recompiling the damaged model in %s (%s)", kept, exc)
                shutil.rmtree(kept, ignore_errors=True)
            else:
                _touch(kept)
                return compiled, False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".veil-partial-", dir=self.folder))
        except OSError as exc:
            log.debug("not caching compiled models in %s: %s", self.folder, exc)
            return compile_with({}), True
        try:
            compiled = compile_with({"CACHE_DIR": str(staging)})
            try:
                os.rename(staging, kept)
            except OSError:  # another run stored it first, or the disk refused
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        prune(self.root)
        return compiled, True


def _touch(folder: Path) -> None:
    try:
        os.utime(folder)
    except OSError:
        pass


def prune(root: Path, budget: int = CACHE_BYTES) -> None:
    """Delete the least recently used compiled models until the rest fit in budget bytes,
    and staging folders a dead run left behind."""
    kept: list[tuple[float, int, Path]] = []
    now = time.time()
    for folder in root.glob("*/*"):
        try:
            if not folder.is_dir():
                continue
            used = folder.stat().st_mtime
            if folder.name.startswith(".veil-partial-"):
                if now - used > STALE_SECONDS:
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        except OSError:
            continue
        kept.append((used, size, folder))
    total = sum(size for _, size, _ in kept)
    for _, size, folder in sorted(kept, key=lambda entry: entry[0]):
        if total <= budget:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
