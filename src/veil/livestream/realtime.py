"""Live anonymization: a camera or stream in, anonymized frames out as they happen.

The loop takes the newest captured frame, detects faces under a deadline,
passes the detections through the live temporal filter and hides them. Fail
closed: a frame whose detection failed, or was not ready before its deadline
(counted from capture), goes out fully blurred, or is dropped when asked;
an un-anonymized frame never leaves this module.

`veil.live(SOURCE)` is the Python iterator; `veil live SOURCE` (command.py) the command line.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from .. import hide
from ..detections import Detections
from ..detectors import Detector
from ..frame import Frame
from ..io.live_source import Captured, LiveSource, parse_source
from ..options import check, option
from ..pipeline import JobOptions, Pipeline
from ..tracking import create_filter

MISS_POLICIES = ("blur", "drop")


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


@dataclass
class LiveFrame:
    """An anonymized frame ready to leave: `hidden_whole` when it was blurred entirely."""

    frame: Frame
    detections: Detections
    captured_at: float
    hidden_whole: bool = False

    @property
    def image(self) -> np.ndarray:
        return self.frame.image

    @property
    def time(self) -> float:
        return self.frame.time

    @property
    def index(self) -> int:
        return self.frame.index


class LiveAnonymizer:
    """The fail-closed live loop over any source of `Captured` frames."""

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
        # Detection goes through the file pipeline's detect step, so the same filters
        # (sizes, regions, --keep-face) apply and weak detections reach the tracker.
        self.pipeline = Pipeline(options, detector=detector)
        self.log = log or (lambda message: None)
        self.stats = LiveStats()
        self.stop_event = threading.Event()
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-live-detect")
        self._pending: tuple[Captured, cf.Future] | None = None
        self._warned_failure = False

    @property
    def detector(self) -> Detector:
        return self.pipeline.detector

    def stop(self) -> None:
        self.stop_event.set()

    def _detect(self, image: np.ndarray) -> Detections:
        return self.pipeline.detect([image], keep_weak=True)[0]

    def _hidden_whole(self, captured: Captured, late: bool) -> LiveFrame | None:
        if late:
            self.stats.deadline_misses += 1
        else:
            self.stats.detection_failures += 1
        if self.live.on_miss == "drop":
            self.stats.dropped_on_miss += 1
            return None
        self.stats.blurred += 1
        frame = captured.frame
        frame.image = hide.blur_whole_frame(frame.image)
        return LiveFrame(frame, Detections.empty(), captured.captured_at, hidden_whole=True)

    def _hide(self, captured: Captured, dets: Detections) -> LiveFrame | None:
        try:
            captured.frame.image = hide.apply(
                captured.frame.image, dets, self.options.anonymize, inplace=True
            )
        except Exception as exc:  # never let a half-hidden frame out
            self._note_failure(exc)
            return self._hidden_whole(captured, late=False)
        return LiveFrame(captured.frame, dets, captured.captured_at)

    def _note_failure(self, exc: BaseException) -> None:
        if not self._warned_failure:
            self._warned_failure = True
            self.log(
                f"detection failed ({type(exc).__name__}: {exc}); such frames are hidden whole"
            )

    def _wait(self, future: cf.Future, captured: Captured) -> bool:
        left = captured.captured_at + self.live.max_latency - time.monotonic()
        try:
            future.result(timeout=max(left, 0.0))
        except cf.TimeoutError:
            return False
        except Exception:
            return True
        return True

    def frames(self) -> Iterator[LiveFrame]:
        """Anonymized frames until the source ends, `stop` is called or a limit is reached."""
        temporal = None  # made at the first frame, when the source's frame rate is known
        held: dict[int, Captured] = {}
        last: Detections | None = None
        since_detect = 0
        _ = self.detector  # load the model before the source and the clock start
        self.stats.started = time.monotonic()
        self.source.start()
        try:
            while not self.stop_event.is_set() and not self._limit_reached():
                try:
                    captured = self.source.get(timeout=0.25)
                except TimeoutError:
                    self._sync_source_stats()
                    continue
                if captured is None:
                    break
                self._sync_source_stats()
                if temporal is None:
                    temporal = create_filter(
                        self.options.tracking,
                        self.source.fps_hint,
                        live=True,
                        threshold=self.options.detector.threshold,
                    )
                for item in self._process(captured, temporal, held, last, since_detect):
                    if isinstance(item, Detections):
                        last, since_detect = item, 0
                        continue
                    yield item
                    self._delivered(item)
                since_detect += 1
            for item in self._release(temporal.flush() if temporal is not None else [], held):
                yield item
                self._delivered(item)
        finally:
            self.source.stop()
            self._sync_source_stats()
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _delivered(self, item: LiveFrame) -> None:
        """Runs when the consumer asks for the next frame, i.e. after it showed, wrote or sent this one."""
        self.stats.frames_out += 1
        self.stats.latencies.append(time.monotonic() - item.captured_at)

    def _limit_reached(self) -> bool:
        if self.live.duration is not None and self.stats.elapsed() >= self.live.duration:
            return True
        return self.live.max_frames is not None and self.stats.frames_out >= self.live.max_frames

    def _sync_source_stats(self) -> None:
        self.stats.frames_in = self.source.frames_in
        self.stats.dropped_behind = self.source.dropped
        self.stats.reconnects = self.source.reconnects

    def _process(
        self,
        captured: Captured,
        temporal,
        held: dict[int, Captured],
        last: Detections | None,
        since_detect: int,
    ):
        """Yields the new raw detections (when the detector ran) and the frames now ready."""
        if self._pending is not None:
            late_captured, future = self._pending
            if not self._wait(future, captured):
                out = self._hidden_whole(captured, late=True)  # the detector is still busy
                if out is not None:
                    yield out
                return
            self._pending = None
            if future.exception() is None:
                # Too late for its own frame (already hidden whole), but the filter still learns from it.
                yield from self._release(temporal.push(late_captured.frame, future.result()), held)
        if last is not None and since_detect < self.live.detect_every:
            dets = last
        else:
            future = self._pool.submit(self._detect, captured.frame.image)
            if not self._wait(future, captured):
                self._pending = (captured, future)
                out = self._hidden_whole(captured, late=True)
                if out is not None:
                    yield out
                return
            error = future.exception()
            if error is not None:
                self._note_failure(error)
                out = self._hidden_whole(captured, late=False)
                if out is not None:
                    yield out
                return
            dets = future.result()
            yield dets
        held[captured.frame.index] = captured
        yield from self._release(temporal.push(captured.frame, dets), held)

    def _release(
        self, pairs: list[tuple[int, Detections]], held: dict[int, Captured]
    ) -> Iterator[LiveFrame]:
        """Hide and hand out the frames the filter released (ones already sent whole are skipped)."""
        for index, final in pairs:
            ready = held.pop(index, None)
            if ready is None:
                continue
            out = self._hide(ready, final)
            if out is not None:
                yield out


class LiveStream:
    """`for frame in veil.live(source)`: anonymized LiveFrames; stats and stop() on the side."""

    def __init__(self, anonymizer: LiveAnonymizer) -> None:
        self.anonymizer = anonymizer

    @property
    def stats(self) -> LiveStats:
        return self.anonymizer.stats

    def stop(self) -> None:
        self.anonymizer.stop()

    def __iter__(self) -> Iterator[LiveFrame]:
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
