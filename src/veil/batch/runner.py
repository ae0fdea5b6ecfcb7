"""A batch run: list the inputs, skip what the journal says is done, run the rest, sum up.

The driver process owns the journal; workers only return outcomes. An item is
recorded as done after its output is in place (renamed locally, or uploaded),
and each record is committed before the next outcome is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import OptionError, OutputError, VeilError
from ..io.paths import TEMP_PREFIX, VIDEO_EXTS
from ..options import check, option
from ..pipeline import JobOptions
from .engines import ENGINES, local_outcomes, ray_outcomes, worker_threads
from .journal import Entry, Journal, settings_hash
from .segments import DEFAULT_OVERLAP, PART_PREFIX, Segment, can_join, join_segments, plan_segments
from .storage import (
    Source,
    existing_outputs,
    is_remote,
    list_inputs,
    local_path,
    media_ext,
    output_location,
    remove_partials,
)
from .work import Outcome, WorkItem

JOURNAL_NAME = "veil-batch.sqlite"
SUMMARY_NAME = "veil-batch-summary.json"


def _storage_option(text: str) -> tuple[str, Any]:
    """'key=value' -> (key, value), the value read as JSON when it is JSON (numbers, true)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _storage_option_text(item: tuple[str, Any]) -> str:
    key, value = item
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


batch = partial(option, group="batch", commands=("batch",))


@dataclass(frozen=True)
class BatchOptions:
    """One batch: where from, where to, with which settings, on which engine."""

    input: str
    output: str = batch(
        dataclasses.MISSING,
        "-o",
        "--output",
        metavar="OUTPUT",
        help="folder or URL prefix; the input's folder structure is mirrored there",
    )
    job: JobOptions = JobOptions()
    workers: int = batch(
        0,
        "--workers",
        "-j",
        ge=0,
        help="local worker processes, each with its own detector (default: 0, one per core)",
    )
    engine: str = batch(
        "local",
        "--engine",
        choices=ENGINES,
        help="local process pool, or tasks on a Ray cluster (default %(default)s)",
    )
    address: str | None = batch(
        None,
        "--address",
        metavar="ADDR",
        help="Ray cluster address (default: RAY_ADDRESS, a cluster on this machine, "
        "else a new local one)",
    )
    journal: Path | None = batch(
        None,
        "--journal",
        type=Path,
        metavar="PATH",
        help="SQLite journal of finished files (default: veil-batch.sqlite in a local output "
        "folder, or in the current folder for remote outputs)",
    )
    summary: Path | None = batch(
        None,
        "--summary",
        type=Path,
        metavar="PATH",
        help="where to write the JSON summary (default: beside the journal)",
    )
    storage_options: dict[str, Any] = batch(
        {},
        "--storage-option",
        repeat=True,
        collect=dict,
        type=_storage_option,
        show=_storage_option_text,
        metavar="KEY=VALUE",
        help="fsspec option for object storage, e.g. endpoint_url=http://127.0.0.1:9000 "
        "(repeatable)",
    )
    segment_seconds: float | None = batch(
        None,
        "--segment-seconds",
        type=float,
        gt=0,
        metavar="S",
        help="split local videos longer than this at keyframes into segments processed in "
        "parallel, joined without re-encoding",
    )
    segment_overlap: float = batch(
        DEFAULT_OVERLAP,
        "--segment-overlap",
        gt=0,
        metavar="S",
        help="seconds decoded before and after each segment so tracking continues across the "
        "cut (default %(default)s)",
    )

    def __post_init__(self) -> None:
        check(self)
        if self.address and self.engine != "ray":
            raise OptionError("--address is for --engine ray")


@dataclass
class Summary:
    """What a run did; printed at the end and written as JSON."""

    input: str
    output: str
    engine: str
    workers: int | None  # local pool size; Ray decides its own
    settings: str
    journal: str
    files: int = 0
    skipped: int = 0
    processed: int = 0
    failed: int = 0
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        return (self.processed + self.failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["files_per_second"] = round(self.files_per_second, 3)
        data["frames_per_second"] = round(self.frames_per_second, 3)
        data["seconds"] = round(self.seconds, 3)
        return data

    def text(self) -> str:
        head = (
            f"{self.files} files: {self.processed} anonymized, {self.skipped} already done, "
            f"{self.failed} failed; "
            f"{self.frames} frames, {self.faces} faces in {self.seconds:.1f} s "
            f"({self.files_per_second:.2f} files/s, {self.frames_per_second:.1f} frames/s)"
        )
        if self.interrupted:
            head += "; interrupted (finished files are recorded, a rerun goes on from here)"
        lines = [head] + [
            f"  failed: {describe_failure(f['file'], f['error'])}" for f in self.failures
        ]
        return "\n".join(lines)


def describe_failure(name: str, error: str | None) -> str:
    """The error, prefixed with the file unless the message already names it."""
    error = error or "unknown error"
    return error if name in error else f"{name}: {error}"


def default_journal(output: str) -> Path:
    """Inside a local output folder; for a remote output, in the current folder (named after
    the URL)."""
    if not is_remote(output):
        return local_path(output) / JOURNAL_NAME
    tag = hashlib.sha256(output.rstrip("/").encode()).hexdigest()[:12]
    return Path(f"veil-batch-{tag}.sqlite")


def default_summary(journal: Path) -> Path:
    """Beside the journal."""
    if journal.name == JOURNAL_NAME:
        return journal.with_name(SUMMARY_NAME)
    return journal.with_name(journal.stem + "-summary.json")


def _check_locations(options: BatchOptions) -> Path | None:
    """Refuse to write into the input; return the output folder to leave out of a local input."""
    if is_remote(options.input) or is_remote(options.output):
        if options.input.rstrip("/") == options.output.rstrip("/"):
            raise OptionError(
                "the output must differ from the input (inputs are never overwritten)"
            )
        return None
    source, target = local_path(options.input).absolute(), local_path(options.output).absolute()
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: the batch output must be a folder")
    if source == target:
        raise OptionError("the output must differ from the input (inputs are never overwritten)")
    return target if source.is_dir() and target.is_relative_to(source) else None


def _same_file(source: str, target: str) -> bool:
    if is_remote(source) or is_remote(target):
        return source == target
    return local_path(source).resolve() == local_path(target).resolve()


def _needs_work(
    entry: Entry | None, source: Source, target: str, settings: str, present: set[str]
) -> bool:
    return not (
        entry is not None
        and entry.state == "done"
        and entry.settings == settings
        and entry.fingerprint == source.fingerprint
        and entry.target == target
        and target in present
    )


def run_batch(options: BatchOptions, progress=None) -> Summary:
    """Process every input not already done with these settings; the journal is updated per item."""
    exclude = _check_locations(options)
    inputs = list_inputs(options.input, options.storage_options, exclude=exclude)
    journal_path = options.journal or default_journal(options.output)
    summary_path = options.summary or default_summary(journal_path)
    settings = settings_hash(options.job)
    remove_partials(options.output, (TEMP_PREFIX, PART_PREFIX))
    present = existing_outputs(options.output, options.storage_options)

    workers = options.workers or os.cpu_count() or 1
    # Ray schedules one task per CPU it was given; a local pool shares this machine's cores out.
    threads = (
        (options.job.detector.threads or 1)
        if options.engine == "ray"
        else worker_threads(options.job.detector.threads, workers)
    )
    # The journal owns each output's name: a file redone replaces its earlier output.
    job = dataclasses.replace(
        options.job,
        overwrite=True,
        detector=dataclasses.replace(options.job.detector, threads=threads),
    )
    summary = Summary(
        options.input,
        options.output,
        options.engine,
        workers if options.engine == "local" else None,
        settings,
        str(journal_path),
        files=len(inputs.sources),
    )
    with Journal(journal_path) as journal:
        plan = _plan(options, inputs.sources, settings, present, journal, summary)
        parts = _Parts(job)
        items = _work_items(options, plan, job, inputs.storage_options, parts, journal, summary)
        if options.engine == "ray":
            outcomes = ray_outcomes(items, options.address, threads)
        else:
            outcomes = local_outcomes(items, workers, lambda: remove_partials(options.output))
        start = time.perf_counter()
        try:
            for outcome in outcomes:
                final = parts.add(outcome) if outcome.part is not None else outcome
                if final is None:
                    continue
                _record(journal, summary, final, plan[final.key])
                if progress:
                    progress(final, len(plan))
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            parts.discard_all()
            summary.seconds = time.perf_counter() - start
            _write_summary(summary, summary_path)
    return summary


Planned = dict[str, tuple[Source, str, str]]  # key -> (source, target, settings it is done with)


def _plan(
    options: BatchOptions,
    sources: list[Source],
    settings: str,
    present: set[str],
    journal: Journal,
    summary: Summary,
) -> Planned:
    """The inputs to process; those that cannot be are recorded as failed, done ones skipped."""
    entries = journal.entries()
    plan: Planned = {}
    owners: dict[str, Source] = {}
    for source in sources:
        wanted = settings + _segment_tag(options, source.key)
        target, error = _target_for(options.output, source, owners)
        if error:
            outcome = Outcome(source.key, False, error=error)
            _record(journal, summary, outcome, (source, target, wanted))
        elif _needs_work(entries.get(source.key), source, target, wanted, present):
            plan[source.key] = (source, target, wanted)
        else:
            summary.skipped += 1
    return plan


def _work_items(
    options: BatchOptions,
    plan: Planned,
    job: JobOptions,
    storage_options: dict[str, Any],
    parts: _Parts,
    journal: Journal,
    summary: Summary,
) -> list[WorkItem]:
    """One item per file, or one per segment of a long video (whose parts are expected)."""
    items: list[WorkItem] = []
    for source, target, _settings in plan.values():
        try:
            segments = _segments_for(options, source, target)
        except VeilError as exc:
            outcome = Outcome(source.key, False, error=str(exc))
            _record(journal, summary, outcome, plan[source.key])
            continue
        if segments:
            parts.expect(source, target, segments)
            items.extend(
                WorkItem(source.key, source.location, target, job, storage_options, segment)
                for segment in segments
            )
        else:
            items.append(WorkItem(source.key, source.location, target, job, storage_options))
    return items


def _target_for(output: str, source: Source, owners: dict[str, Source]) -> tuple[str, str | None]:
    """Where a source's output goes, and why it cannot be written there (None: it can)."""
    try:
        target = output_location(output, source.key)
    except VeilError as exc:  # it would land outside OUTPUT
        return "", str(exc)
    owner = owners.setdefault(target, source)
    if owner is not source:  # e.g. clip.avi and clip.mp4 would both become clip.mp4
        taken = f"its output {target} is already the output of {owner.location}"
        return target, f"{source.location}: {taken}"
    if _same_file(source.location, target):  # a manifest naming files in the output folder
        return target, f"{source.location}: refusing to overwrite the input with its output"
    return target, None


def _segment_tag(options: BatchOptions, key: str) -> str:
    """Segmented videos are encoded differently (no B-frames): the setting is part of their hash."""
    if options.segment_seconds and media_ext(key) in VIDEO_EXTS:
        return f":segments={options.segment_seconds:g}/{options.segment_overlap:g}"
    return ""


def _segments_for(options: BatchOptions, source: Source, target: str) -> list[Segment]:
    """The segments of a long local video, or [] to process it whole."""
    if (
        not options.segment_seconds
        or media_ext(source.key) not in VIDEO_EXTS
        or options.job.export_format
    ):
        return []
    if is_remote(source.location) or is_remote(target):
        return []
    src, dst = local_path(source.location), local_path(target)
    if not can_join(src, dst, options.job.encoder.keep_audio):
        return []
    return plan_segments(src, dst, options.segment_seconds, options.segment_overlap)


class _Parts:
    """Collects the segments of each split video and joins them once all are in."""

    def __init__(self, job: JobOptions) -> None:
        self.job = job
        self.files: dict[str, tuple[Source, str, list[Segment]]] = {}
        self.finished: dict[str, list[Outcome]] = {}
        self.failed: set[str] = set()

    def expect(self, source: Source, target: str, segments: list[Segment]) -> None:
        self.files[source.key] = (source, target, segments)
        self.finished[source.key] = []

    def add(self, outcome: Outcome) -> Outcome | None:
        """The file's outcome once it is decided (a part failed, or all joined), else None."""
        key = outcome.key
        if key in self.failed:
            self._discard(key)
            return None
        if not outcome.ok:
            self.failed.add(key)
            self._discard(key)
            return outcome
        done = self.finished[key]
        done.append(outcome)
        source, target, segments = self.files[key]
        if len(done) < len(segments):
            return None
        seconds = sum(o.seconds for o in done)
        try:
            join_segments(
                local_path(source.location),
                [Path(s.part) for s in segments],
                local_path(target),
                self.job.encoder.keep_audio,
                self.job.keep_metadata,
            )
        except VeilError as exc:
            return Outcome(key, False, error=str(exc), seconds=seconds)
        finally:
            self._discard(key)
            del self.finished[key]
        return Outcome(key, True, sum(o.frames for o in done), sum(o.faces for o in done), seconds)

    def _discard(self, key: str) -> None:
        for segment in self.files[key][2]:
            Path(segment.part).unlink(missing_ok=True)

    def discard_all(self) -> None:
        """Parts of videos not joined (interrupted run) are never left behind."""
        for key in self.finished:
            self._discard(key)


def _record(
    journal: Journal, summary: Summary, outcome: Outcome, planned: tuple[Source, str, str]
) -> None:
    source, target, settings = planned
    state = "done" if outcome.ok else "failed"
    journal.record(
        outcome.key,
        source.location,
        target,
        source.fingerprint,
        settings,
        state,
        outcome.frames,
        outcome.faces,
        outcome.seconds,
        outcome.error,
    )
    if outcome.ok:
        summary.processed += 1
        summary.frames += outcome.frames
        summary.faces += outcome.faces
    else:
        summary.failed += 1
        summary.failures.append(
            {"file": source.location, "error": outcome.error or "unknown error"}
        )


def _write_summary(summary: Summary, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
        tmp.replace(path)
    except OSError as exc:
        print(
            f"veil: warning: cannot write the summary to {path} ({exc.strerror})", file=sys.stderr
        )
