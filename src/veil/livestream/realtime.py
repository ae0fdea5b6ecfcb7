"""Live anonymization: a camera or stream in, anonymized frames out as they happen.

The real-time policy around the one frame loop (pipeline.FrameLoop with DeadlineDetection):
the source keeps only the newest frames (older ones are dropped), each frame's deadline counts
from its capture, and the counters and latencies are kept here. Fail closed: a frame whose
detection failed, or was not ready before its deadline, goes out fully blurred, or is dropped
when asked; an un-anonymized frame never leaves.

`veil.live(SOURCE)` is the Python iterator; `veil live SOURCE` (command.py) the command line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ..detectors import Detector
from ..io.live_source import LiveSource, parse_source
from ..options import check, option
from ..pipeline import (
    MISS_POLICIES,
    Anonymized,
    DeadlineDetection,
    FrameLoop,
    JobOptions,
    Pipeline,
)

real_time = partial(option, group="real time", commands=("live",))


@dataclass(frozen=True)
class LiveOptions:
    """How the live loop trades delay against safety.

    max_latency: seconds from capture by which a frame's detections must be
    ready; later frames are hidden whole (on_miss="blur") or not sent ("drop").
    detect_every: run the detector on every Nth frame only; the frames between
    reuse the last boxes (faster, but a face that moves more than the mask
    margin between two detections is partly uncovered on those frames).
    buffer: newest frames kept waiting; older ones are dropped.
    timeout: seconds without data after which the source counts as lost.
    """

    max_latency: float = real_time(
        1.0,
        "--max-latency",
        scale=0.001,
        ge=0,
        metavar="MS",
        help="a frame not detected within this many ms of capture is hidden whole "
        "(default %(default)s)",
    )
    on_miss: str = real_time(
        "blur",
        "--on-miss",
        choices=MISS_POLICIES,
        help="what happens to a late or failed frame: blur it whole or drop it "
        "(default %(default)s)",
    )
    detect_every: int = real_time(
        1,
        "--detect-every",
        ge=1,
        metavar="N",
        help="detect on every Nth frame, reuse boxes between (faster; fast motion may leave "
        "the mask)",
    )
    buffer: int = real_time(
        2,
        "--buffer",
        ge=1,
        metavar="N",
        help="newest frames kept when behind; older ones are dropped (default %(default)s)",
    )
    reconnect: bool = real_time(
        True,
        "--no-reconnect",
        negate=True,
        help="stop when the source ends instead of reconnecting",
    )
    timeout: float = real_time(
        3.0,
        "--timeout",
        gt=0,
        metavar="S",
        help="seconds without data before the source counts as lost and is reopened "
        "(default %(default)s)",
    )
    give_up_after: float | None = real_time(
        None,
        "--give-up",
        type=float,
        ge=0,
        metavar="S",
        help="stop after S seconds without a source (default: keep retrying)",
    )
    duration: float | None = real_time(
        None, "--duration", type=float, ge=0, metavar="S", help="stop after S seconds"
    )
    max_frames: int | None = real_time(
        None, "--frames", type=int, ge=0, metavar="N", help="stop after N output frames"
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass
class LiveStats:
    """Counters and end-to-end latencies (capture to output) of one live run."""

    started: float = field(default_factory=time.monotonic)
    frames_in: int = 0
    frames_out: int = 0
    dropped_behind: int = 0
    blurred: int = 0
    dropped_on_miss: int = 0
    detection_failures: int = 0
    deadline_misses: int = 0
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    def summary(self) -> str:
        t = self.elapsed()
        ms = lambda q: f"{1000 * self.percentile(q):.0f}"  # noqa: E731
        return (
            f"{t:.1f} s: in {self.frames_in} ({self.frames_in / t:.1f} fps), out {self.frames_out} "
            f"({self.frames_out / t:.1f} fps); latency ms p50 {ms(50)} p90 {ms(90)} p99 {ms(99)}; "
            f"dropped behind {self.dropped_behind}; fully blurred {self.blurred} "
            f"(late {self.deadline_misses}, failed {self.detection_failures}); "
            f"dropped on miss {self.dropped_on_miss}; reconnects {self.reconnects}"
        )

    def as_dict(self) -> dict:
        t = self.elapsed()
        return {
            "seconds": t,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "fps_in": self.frames_in / t,
            "fps_out": self.frames_out / t,
            "latency_p50": self.percentile(50),
            "latency_p90": self.percentile(90),
            "latency_p99": self.percentile(99),
            "dropped_behind": self.dropped_behind,
            "blurred": self.blurred,
            "deadline_misses": self.deadline_misses,
            "detection_failures": self.detection_failures,
            "dropped_on_miss": self.dropped_on_miss,
            "reconnects": self.reconnects,
        }


class LiveAnonymizer:
    """The real-time policy around the one frame loop: the newest captured frame goes in with
    its capture time (the deadline counts from it), stats and limits are kept here."""

    def __init__(
        self,
        source: LiveSource,
        options: JobOptions = JobOptions(),
        live: LiveOptions = LiveOptions(),
        detector: Detector | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.options = options
        self.live = live
        self.pipeline = Pipeline(options, detector=detector)
        self.log = log or (lambda message: None)
        self.stats = LiveStats()
        self.stop_event = threading.Event()

    @property
    def detector(self) -> Detector:
        return self.pipeline.detector

    def stop(self) -> None:
        self.stop_event.set()

    def frames(self) -> Iterator[Anonymized]:
        """Anonymized frames until the source ends, `stop` is called or a limit is reached."""
        detection = DeadlineDetection(
            self.pipeline, max_latency=self.live.max_latency, detect_every=self.live.detect_every
        )  # loads the model before the source and the clock start
        loop: FrameLoop | None = None  # made at the first frame, when the frame rate is known
        self.stats.started = time.monotonic()
        self.source.start()
        try:
            while not self.stop_event.is_set() and not self._limit_reached():
                try:
                    captured = self.source.get(timeout=0.25)
                except TimeoutError:
                    self._sync_stats(loop)
                    continue
                if captured is None:
                    break
                if loop is None:
                    loop = FrameLoop(
                        self.pipeline,
                        detection,
                        fps=self.source.fps_hint,
                        on_miss=self.live.on_miss,
                        log=self.log,
                    )
                ready = loop.push(captured.frame, captured.captured_at)
                self._sync_stats(loop)
                for item in ready:
                    yield item
                    self._delivered(item)
            for item in loop.flush() if loop is not None else []:
                yield item
                self._delivered(item)
        finally:
            self.source.stop()
            detection.close()
            self._sync_stats(loop)

    def _delivered(self, item: Anonymized) -> None:
        """Runs when the consumer asks for the next frame: after it used this one."""
        self.stats.frames_out += 1
        self.stats.latencies.append(time.monotonic() - item.arrived)

    def _limit_reached(self) -> bool:
        if self.live.duration is not None and self.stats.elapsed() >= self.live.duration:
            return True
        return self.live.max_frames is not None and self.stats.frames_out >= self.live.max_frames

    def _sync_stats(self, loop: FrameLoop | None) -> None:
        self.stats.frames_in = self.source.frames_in
        self.stats.dropped_behind = self.source.dropped
        self.stats.reconnects = self.source.reconnects
        if loop is None:
            return
        self.stats.deadline_misses = loop.misses["late"]
        self.stats.detection_failures = loop.misses["failed"]
        missed = self.stats.deadline_misses + self.stats.detection_failures
        dropping = self.live.on_miss == "drop"
        self.stats.dropped_on_miss = missed if dropping else 0
        self.stats.blurred = 0 if dropping else missed


class LiveStream:
    """`for frame in veil.live(source)`: anonymized frames; stats and stop() on the side."""

    def __init__(self, anonymizer: LiveAnonymizer) -> None:
        self.anonymizer = anonymizer

    @property
    def stats(self) -> LiveStats:
        return self.anonymizer.stats

    def stop(self) -> None:
        self.anonymizer.stop()

    def __iter__(self) -> Iterator[Anonymized]:
        return self.anonymizer.frames()

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def open_live(
    source: str | int,
    options: JobOptions | None = None,
    live: LiveOptions | None = None,
    input_format: str | None = None,
    input_options: dict[str, str] | None = None,
    detector: Detector | None = None,
    log: Callable[[str], None] | None = None,
) -> LiveStream:
    """A live stream of anonymized frames from a camera index, /dev/video path, URL or file."""
    live = live or LiveOptions()
    spec = parse_source(source, input_format, input_options)
    src = LiveSource(
        spec,
        buffer=live.buffer,
        reconnect=live.reconnect,
        read_timeout=live.timeout,
        give_up_after=live.give_up_after,
        log=log,
    )
    return LiveStream(
        LiveAnonymizer(src, options or JobOptions(), live, detector=detector, log=log)
    )
