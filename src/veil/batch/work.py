"""What a batch worker does with one item; the same function runs in a local process or a Ray task.

Each worker process shares one detector per settings (detectors.detector_for),
so the model loads once per worker, and processes every file with
Pipeline.process, the very code the `veil` command runs. Remote inputs are downloaded to a private
temporary folder; remote outputs are written there and uploaded whole, and
the item counts as done only after the upload returned.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..detectors import detector_for
from ..errors import InputError, OutputError, VeilError
from ..pipeline import JobOptions, Pipeline
from ..tracking import detector_options
from .segments import Segment, process_segment
from .storage import is_remote, local_path, open_filesystem


@dataclass(frozen=True)
class WorkItem:
    key: str
    source: str
    target: str
    options: JobOptions
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False)
    segment: Segment | None = None


@dataclass
class Outcome:
    key: str
    ok: bool
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    error: str | None = None
    worker: int = 0
    part: int | None = None


def process_item(item: WorkItem) -> Outcome:
    """Anonymize one input; failures come back as an Outcome so the batch goes on."""
    start = time.perf_counter()
    part = item.segment.index if item.segment is not None else None
    try:
        frames, faces = _process(item)
    except VeilError as exc:
        return Outcome(
            item.key,
            False,
            error=str(exc),
            seconds=time.perf_counter() - start,
            worker=os.getpid(),
            part=part,
        )
    except Exception as exc:  # a bug on one file must not stop the other thousands; it is reported
        return Outcome(
            item.key,
            False,
            error=f"internal error: {type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - start,
            worker=os.getpid(),
            part=part,
        )
    return Outcome(
        item.key, True, frames, faces, time.perf_counter() - start, worker=os.getpid(), part=part
    )


def _process(item: WorkItem) -> tuple[int, int]:
    options = item.options
    pipeline = Pipeline(
        options, detector=detector_for(detector_options(options.tracking, options.detector))
    )
    if item.segment is not None:  # planned only for local sources and outputs
        return process_segment(pipeline, local_path(item.source), item.segment)
    if not (is_remote(item.source) or is_remote(item.target)):
        result = pipeline.process(local_path(item.source), local_path(item.target))
        return result.frames, result.boxes
    with tempfile.TemporaryDirectory(prefix="veil-batch-") as tmp:
        source = _fetch(item, Path(tmp)) if is_remote(item.source) else local_path(item.source)
        target = (
            Path(tmp) / "out" / PurePosixPath(item.target).name
            if is_remote(item.target)
            else local_path(item.target)
        )
        try:
            result = pipeline.process(source, target)
        except VeilError as exc:
            raise type(exc)(str(exc).replace(str(source), item.source)) from None
        if is_remote(item.target):
            _upload(item, target, item.target)
            if result.export is not None:
                _upload(item, result.export, item.target.rsplit(".", 1)[0] + result.export.suffix)
        return result.frames, result.boxes


def _fetch(item: WorkItem, folder: Path) -> Path:
    fs, path = open_filesystem(item.source, item.storage_options)
    local = folder / "in" / PurePosixPath(path).name
    local.parent.mkdir(parents=True)
    try:
        fs.get(path, str(local))
    except FileNotFoundError:
        raise InputError(f"{item.source}: no such object") from None
    except OSError as exc:
        raise InputError(f"{item.source}: cannot download ({exc})") from None
    return local


def _upload(item: WorkItem, local: Path, url: str) -> None:
    fs, path = open_filesystem(url, item.storage_options)
    try:
        fs.put(str(local), path)
    except OSError as exc:
        raise OutputError(f"{url}: cannot upload ({exc})") from None
