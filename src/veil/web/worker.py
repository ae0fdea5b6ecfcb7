"""A bounded pool of worker threads that run jobs through the same Pipeline as the CLI.

Workers share one detector per settings (detectors.detector_for), so a model
loads once for the whole pool and the pool size bounds CPU use. Jobs wait in a FIFO queue; a
cancel reaches a queued job at once and a running video at the next batch
(the pipeline checks its `cancel` event and deletes the partial output).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..audit import Edit
from ..detectors import detector_for
from ..errors import VeilError
from ..io.paths import TEMP_PREFIX, atomic_output
from ..pipeline import Cancelled, JobOptions, Pipeline
from ..tracking import detector_options
from .options import job_options
from .store import (
    CANCELLED,
    DONE,
    FAILED,
    FINAL_STATES,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    Job,
    JobStore,
)
from .uploads import result_name

log = logging.getLogger("veil.web")

DETECTIONS = "detections.json"  # a video job's detections with track ids, edited in place
EDITS = "edits.jsonl"  # the corrections made to them, one audit.Edit a line, for --audit

_STOP = object()


class WorkerPool:
    def __init__(
        self,
        store: JobStore,
        workers: int = 1,
        keep_seconds: float = 24 * 3600,
        sweep_every: float = 60.0,
        base_options: JobOptions = JobOptions(),
    ) -> None:
        self.store = store
        self.keep_seconds = keep_seconds
        self.sweep_every = sweep_every
        self.base_options = base_options
        self._queue: queue.Queue = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"veil-web-worker-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        self._janitor = threading.Thread(
            target=self._sweep_loop, name="veil-web-janitor", daemon=True
        )

    def start(self) -> None:
        known = {job.id for job in self.store.list()}
        for folder in self.store.jobs_dir.iterdir():
            if folder.is_dir() and folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)  # an upload cut off by the last shutdown
        queued = self.store.recover()
        for job in self.store.list():
            if job.status in FINAL_STATES:
                self._remove_input(job.id)
        for job in queued:
            self.submit(job.id)
        for thread in self._threads:
            thread.start()
        self._janitor.start()

    def submit(self, job_id: str) -> None:
        with self._lock:
            self._cancel[job_id] = threading.Event()
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job; False when it had already finished.

        A running job stops at its next batch of frames (the reply may come first). A
        re-render still waiting is dropped and the job stays done with its earlier versions.
        """
        job = self.store.get(job_id)
        if job is not None and job.output is not None:
            back = {"finished": job.finished, "error": "re-render cancelled"}
            if self.store.set_status_if(job_id, QUEUED, DONE, **back):
                return True
        if self.store.set_status_if(job_id, QUEUED, CANCELLED, error="cancelled before it started"):
            self._remove_input(job_id)
            return True
        with self._lock:
            event = self._cancel.get(job_id)
        job = self.store.get(job_id)
        if event is None or job is None or job.status != RUNNING:
            return False
        event.set()
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs, cancel running ones (they are then marked cancelled, not lost)."""
        self._closing.set()
        with self._lock:
            for event in self._cancel.values():
                event.set()
        for _ in self._threads:
            self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._janitor.join(max(0.0, deadline - time.monotonic()))

    # -- workers -----------------------------------------------------------------------------
    def _work(self) -> None:
        while (job_id := self._queue.get()) is not _STOP:
            try:
                self._run(job_id)
            except MemoryError:  # the job is dropped, the server and its other jobs go on
                self.store.update(
                    job_id,
                    status=FAILED,
                    error="out of memory: the picture is too large for this server "
                    "(its --max-pixels limit is above what its memory allows)",
                )
                self._remove_input(job_id)
            except Exception:  # a bug in one job must not take the worker down with it
                log.exception("job %s failed unexpectedly", job_id)
                self.store.update(job_id, status=FAILED, error="internal error; see the server log")
                self._remove_input(job_id)
            finally:
                with self._lock:
                    self._cancel.pop(job_id, None)

    def _run(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is None or not self.store.set_status_if(job_id, QUEUED, RUNNING):
            return
        with self._lock:
            cancel = self._cancel.setdefault(job_id, threading.Event())
        folder = self.store.folder(job_id)
        source = next(folder.glob("input.*"), None)
        if source is None:
            self.store.update(job_id, status=FAILED, error="the uploaded file is gone")
            return
        edited = job.kind == "video" and job.output is not None
        try:
            options = job_options(job.options, job.kind, self.base_options)
            if edited:  # a re-render: the kept, edited detections; nothing is detected again
                options = replace(options, detections=str(folder / DETECTIONS))
                detector = None
            else:  # videos keep their detections, with track ids, for the review page
                options = replace(options, export_format="json" if job.kind == "video" else None)
                detector = detector_for(detector_options(options.tracking, options.detector))
            pipeline = Pipeline(
                options, detector=detector, progress=self._progress_for(job_id), cancel=cancel
            )
            if cancel.is_set():
                raise Cancelled("cancelled before it started")
            suffix = _output_extension(source, job.kind)
            version = len(versions(folder, suffix)) + 1
            target = folder / (f"result{suffix}" if version == 1 else f"result-v{version}{suffix}")
            result = pipeline.process(source, target, edits=read_edits(folder) if edited else ())
            if result.export is not None:
                result.export.replace(folder / DETECTIONS)
        except VeilError as exc:  # Cancelled too
            self._stopped(job, exc, edited)
        else:
            review = _inside(folder, result.review)
            if review:
                _name_files(folder / review / "review.json", job.name, result.output.name)
            self.store.update(
                job_id,
                status=DONE,
                output=result.output.name,
                review=review,
                frames=result.frames,
                boxes=result.boxes,
                error=None,
                # A re-render keeps the job's expiry: it counts from the first result.
                finished=job.finished if edited else time.time(),
            )
        finally:
            self._remove_input(job_id)

    def _stopped(self, job: Job, exc: VeilError, edited: bool) -> None:
        """Record why a job stopped. A stopped re-render leaves the job done: its earlier
        versions are still there to download and edit."""
        message = str(exc).replace(str(self.store.folder(job.id)) + "/", "")
        if edited:
            self.store.update(
                job.id, status=DONE, finished=job.finished, error=f"re-render stopped: {message}"
            )
        elif isinstance(exc, Cancelled) and self._closing.is_set():
            self.store.update(
                job.id, status=INTERRUPTED, error="the server stopped while this job was running"
            )
        elif isinstance(exc, Cancelled):
            self.store.update(
                job.id, status=CANCELLED, error="cancelled; the partial output was removed"
            )
        else:
            self.store.update(job.id, status=FAILED, error=message)

    def rerender(self, job_id: str) -> bool:
        """Queue a finished video again, to render a new version from its edited detections.

        False when the job is not a finished video with kept detections.
        """
        job = self.store.get(job_id)
        if (
            job is None
            or job.kind != "video"
            or not (self.store.folder(job_id) / DETECTIONS).is_file()
        ):
            return False
        if not self.store.set_status_if(job_id, DONE, QUEUED):
            return False
        self.submit(job_id)
        return True

    def _progress_for(self, job_id: str) -> Callable[[str, int, int | None], None]:
        last = [0.0]

        def progress(_name: str, done: int, total: int | None) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1 or (total and done >= total):
                last[0] = now
                self.store.set_progress(job_id, done, total)

        return progress

    def _remove_input(self, job_id: str) -> None:
        """The original is deleted as soon as it is no longer needed: only results are kept.

        A finished video keeps its original until the job expires: the review page follows
        added boxes on it and re-renders from it (its pages show it anonymized only, unless
        the owner asks for the original, which is logged). Partial outputs left by a killed
        server go too (a clean stop removes its own).
        """
        folder = self.store.folder(job_id)
        job = self.store.get(job_id)
        keep = job is not None and job.status in (DONE, QUEUED) and job.kind == "video"
        inputs = [] if keep else list(folder.glob("input.*"))
        for path in [*inputs, *folder.glob(f"{TEMP_PREFIX}*")]:
            path.unlink(missing_ok=True)

    # -- retention -----------------------------------------------------------------------------
    def sweep(self, now: float | None = None) -> list[str]:
        """Delete finished jobs older than the retention time; returns their ids."""
        expired = self.store.expired(self.keep_seconds, now)
        for job_id in expired:
            self.store.delete(job_id)
        return expired

    def _sweep_loop(self) -> None:
        while not self._closing.wait(self.sweep_every):
            try:
                self.sweep()
            except Exception:
                log.exception("retention sweep failed")


def log_edit(folder: Path, edit: Edit) -> None:
    """Append one correction to the job's edit log, which a re-render's audit record lists."""
    with open(folder / EDITS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(dataclasses.asdict(edit)) + "\n")
    os.chmod(folder / EDITS, 0o600)


def read_edits(folder: Path) -> list[Edit]:
    """Every correction made to the job's detections so far, oldest first."""
    path = folder / EDITS
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        Edit(**{**row, "box": row["box"] and tuple(row["box"])}) for row in map(json.loads, lines)
    ]


def versions(folder: Path, suffix: str) -> list[str]:
    """The rendered versions in a job folder, oldest first: result.EXT, result-v2.EXT, ..."""
    found = [p.name for p in folder.glob(f"result*{suffix}") if _version(p.name) is not None]
    return sorted(found, key=lambda name: _version(name) or 0)


def _version(name: str) -> int | None:
    stem = name.split(".", 1)[0]
    if stem == "result":
        return 1
    number = stem.removeprefix("result-v")
    return int(number) if number != stem and number.isdigit() else None


def _inside(folder: Path, path: Path | None) -> str | None:
    """path relative to the job folder, or None: only files the job owns are ever served."""
    if path is None or not path.resolve().is_relative_to(folder.resolve()):
        return None
    return path.resolve().relative_to(folder.resolve()).as_posix()


def _name_files(report: Path, name: str, output: str) -> None:
    """A review report names the files by what the user sees (the upload's name and the
    result's download name), never by the server's paths."""
    if not report.is_file():
        return
    summary = json.loads(report.read_text(encoding="utf-8"))
    summary.update(source=name, output=result_name(name, output))
    with atomic_output(report) as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


def _output_extension(source: Path, kind: str) -> str:
    if kind == "image":
        return ".png" if source.suffix in (".png", ".bmp", ".tif") else ".jpg"
    from ..io.paths import output_extension

    return output_extension(source)
