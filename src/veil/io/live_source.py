"""Live sources: cameras and network streams read by FFmpeg (through PyAV).

A reader thread decodes as fast as the source delivers and keeps only the
newest few frames: when processing falls behind, the oldest waiting frame is
dropped, so what is shown is always recent. Timestamps come from the
container (or the camera driver) and are made continuous across reconnects
from when frames arrived, so a recording plays at the speed it happened and
an outage keeps its real length.

When the source stops (network drop, sender restarted, camera unplugged) the
reader reopens it with exponential backoff and carries on. Stopping does not
wait for a blocked open or read to time out.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av

from ..errors import InputError, OptionError
from ..frame import Frame

URL_SCHEMES = (
    "rtsp",
    "rtsps",
    "rtmp",
    "rtmps",
    "http",
    "https",
    "udp",
    "rtp",
    "srt",
    "tcp",
    "file",
)
# A pts jump larger than this (or backwards) is a discontinuity: re-anchor on arrival times.
MAX_PTS_JUMP = 5.0
# Seconds of stream time over which the earliest arrival is remembered (see ArrivalClock).
ARRIVAL_WINDOW = 30.0
# Seconds stop() waits for the reader thread; one blocked in FFmpeg ends when its call returns.
STOP_WAIT = 0.5


@dataclass(frozen=True)
class SourceSpec:
    """What av.open needs: the target string, an optional demuxer name and its options."""

    target: str
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    is_file: bool = False

    @property
    def label(self) -> str:
        return self.target


def parse_source(
    source: str | int, input_format: str | None = None, input_options: dict[str, str] | None = None
) -> SourceSpec:
    """Camera index, /dev/video path, local file or URL -> how to open it."""
    text = str(source).strip()
    extra = dict(input_options or {})
    if text.isdigit():
        index = int(text)
        if sys.platform.startswith("linux"):
            return parse_source(f"/dev/video{index}", input_format, input_options)
        if sys.platform == "darwin":
            return SourceSpec(
                f"{index}:none", input_format or "avfoundation", {"framerate": "30", **extra}
            )
        raise OptionError(
            "camera numbers work on Linux and macOS; on Windows give the camera as "
            "'video=NAME' with --input-format dshow"
        )
    if text.startswith("/dev/video"):
        if not Path(text).exists():
            raise InputError(f"no camera at {text} (is it plugged in? see `ls /dev/video*`)")
        return SourceSpec(text, input_format or "v4l2", extra)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme:
        if scheme not in URL_SCHEMES:
            raise OptionError(
                f"unsupported stream URL scheme '{scheme}://'; use one of: "
                + ", ".join(s + "://" for s in URL_SCHEMES)
            )
        options = {}
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = "tcp"
        if scheme in ("udp", "rtp"):
            options.update({"overrun_nonfatal": "1", "fifo_size": "1000000"})
        # Start quickly and do not queue frames inside the demuxer.
        options.update({"fflags": "nobuffer", "probesize": "500000", "analyzeduration": "1000000"})
        options.update(extra)
        return SourceSpec(text, input_format, options)
    path = Path(text)
    if path.is_file() or input_format:
        return SourceSpec(text, input_format, extra, is_file=path.is_file())
    raise InputError(f"{text}: not a camera, a stream URL or an existing file")


@dataclass
class Captured:
    """A decoded frame and the monotonic clock time it left the decoder (start of latency)."""

    frame: Frame
    captured_at: float


class LiveSource:
    """Newest frames of a live source, read by a background thread.

    `get` returns the oldest frame still waiting (frames are dropped from the
    old end when more than `buffer` wait). Local files are paced at their
    timestamps, like a live sender, and end at their last frame.
    """

    def __init__(
        self,
        spec: SourceSpec,
        buffer: int = 2,
        reconnect: bool = True,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        max_backoff: float = 8.0,
        give_up_after: float | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.buffer = max(1, buffer)
        self.reconnect = reconnect and not spec.is_file
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self.log = log or (lambda message: None)
        self.frames_in = 0
        self.dropped = 0
        self.reconnects = 0
        self.fps_hint: float = 25.0
        self._queue: collections.deque[Captured] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._index = 0
        self._last_time: float | None = None
        self._last_pts: float | None = None
        self._arrival = ArrivalClock()
        self._thread = threading.Thread(target=self._run, name="veil-live-reader", daemon=True)

    # -- consumer side --------------------------------------------------------------------
    def start(self) -> LiveSource:
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Captured | None:
        """The next waiting frame; None when the source has ended or was stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if self._error is not None:
                    raise self._error
                if self._ended or self._stop.is_set():
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(0.1 if left is None else min(left, 0.1))
            return self._queue.popleft()

    def stop(self) -> None:
        """Ask the reader to end; returns at once rather than after a blocked open or read
        times out (the reader, a daemon thread, then closes the source and ends)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_WAIT)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- reader thread --------------------------------------------------------------------
    def _put(self, captured: Captured) -> None:
        with self._cond:
            if len(self._queue) >= self.buffer:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(captured)
            self.frames_in += 1
            self._cond.notify_all()

    def _open_timeout(self) -> float:
        return min(self.open_timeout, self.give_up_after or self.open_timeout)

    def _open(self):
        return av.open(
            self.spec.target,
            format=self.spec.format,
            options=self.spec.options,
            timeout=(self._open_timeout(), self.read_timeout),
            metadata_errors="ignore",
        )

    def _run(self) -> None:
        backoff = 0.5
        down_since = time.monotonic()  # not yet connected counts as down, for --give-up
        opened_once = False
        try:
            while not self._stop.is_set():
                try:
                    container = self._open()
                except av.error.ProtocolNotFoundError:
                    scheme = self.spec.target.split("://", 1)[0]
                    raise InputError(
                        f"this FFmpeg build cannot read {scheme}:// (the PyAV wheels come without "
                        "it; install PyAV built against an FFmpeg that has it)"
                    ) from None
                except (av.error.FFmpegError, OSError) as exc:
                    reason = describe(exc, self._open_timeout())
                    if not self.reconnect and not opened_once:
                        raise InputError(f"{self.spec.label}: cannot open ({reason})") from None
                    container = None
                if container is not None:
                    if opened_once:
                        self.reconnects += 1
                        self.log(f"reconnected to {self.spec.label}")
                    opened_once = True
                    backoff = 0.5
                    reason = self._read(container)
                    if not self.reconnect or self._stop.is_set():
                        return
                    down_since = time.monotonic()
                if (
                    self.give_up_after is not None
                    and time.monotonic() - down_since > self.give_up_after
                ):
                    raise InputError(
                        f"{self.spec.label}: no frames for {self.give_up_after:g} s ({reason}); "
                        "giving up"
                    )
                state = "source lost" if opened_once else "source not reachable yet"
                self.log(f"{state} ({reason}); retrying in {backoff:.1f} s")
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff)
        except BaseException as exc:
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _read(self, container) -> str:
        """Decode until the stream ends or fails; returns why it stopped."""
        try:
            if not container.streams.video:
                return "no video stream"
            stream = container.streams.video[0]
            # Frame threading would hold frames back; slice threading does not add delay.
            stream.thread_type = "SLICE"
            rate = stream.average_rate or stream.guessed_rate
            if rate:
                self.fps_hint = float(rate)
            time_base = stream.time_base or av.time_base
            segment_pts0: float | None = None
            segment_wall0 = time.monotonic()
            self._last_pts = None  # a new connection: bridge the gap with the wall clock
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return "stopped"
                for vf in packet.decode():
                    now = time.monotonic()
                    pts = float(vf.pts * time_base) if vf.pts is not None else None
                    if self.spec.is_file and pts is not None:
                        if segment_pts0 is None:
                            segment_pts0 = pts
                        wait = segment_wall0 + (pts - segment_pts0) - now
                        if wait > 0 and self._stop.wait(wait):
                            return "stopped"
                        now = time.monotonic()
                    image = vf.to_ndarray(format="bgr24")
                    self._put(Captured(Frame(self._index, self._timestamp(pts, now), image), now))
                    self._index += 1
            return "end of stream"
        except av.error.FFmpegError as exc:
            return describe(exc, self.read_timeout)
        finally:
            container.close()

    def _timestamp(self, pts: float | None, now: float) -> float:
        """Continuous seconds since the first frame: container time between frames; across a
        jump (reconnect, new sender, wrapped clock) the time the frame arrived."""
        if self._last_time is None:
            value = 0.0
        elif pts is None or self._last_pts is None or not 0 < pts - self._last_pts <= MAX_PTS_JUMP:
            value = max(self._arrival.time(now), self._last_time + 1e-3)
        else:
            value = self._last_time + (pts - self._last_pts)
        self._last_pts = pts
        self._last_time = value
        self._arrival.add(value, now)
        return value


class ArrivalClock:
    """Maps the monotonic clock to stream time by the frames that arrived earliest.

    A frame can leave the decoder late: the last frames before an outage come out only when the
    read times out (the demuxer holds a packet until the next one starts), and a reader that fell
    behind decodes old data. The smallest (clock - stream time) over the last ARRIVAL_WINDOW
    seconds is the mapping of frames that came out on time; a frame after a jump gets the stream
    time its arrival maps to, so a 10 s outage stays 10 s long (the `test_livestream.py` restart
    test measures it). The window lets the mapping follow a sender whose clock drifts.
    """

    def __init__(self) -> None:
        self._offsets: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, value: float, now: float) -> None:
        offset = now - value
        while self._offsets and self._offsets[-1][1] >= offset:
            self._offsets.pop()  # never the minimum again: later and not earlier
        self._offsets.append((value, offset))
        while self._offsets[0][0] < value - ARRIVAL_WINDOW:
            self._offsets.popleft()

    def time(self, now: float) -> float:
        """The stream time of a frame arriving now (after at least one add)."""
        return now - self._offsets[0][1]


def describe(exc: BaseException, timeout: float) -> str:
    """One line for a failed open or read; a timeout in words (FFmpeg calls it 'Immediate exit
    requested', because it is how PyAV's timeout stops FFmpeg)."""
    if isinstance(exc, av.error.ExitError):
        return f"no answer for {timeout:g} s"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:120]
