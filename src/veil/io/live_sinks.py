"""Where anonymized live frames go: a preview window, a recording, a restream.

Every sink receives only frames that already went through the fail-closed
step, so none of them can leak an un-anonymized picture. A recording is
written under a temporary name and renamed when the run stops; a
restream is encoded for low delay (no B-frames, a keyframe every second so a
viewer joining late sees a picture quickly).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np

from ..errors import OptionError, OutputError
from ..frame import Frame
from .video import EncoderOptions, VideoInfo, VideoSink, fit

# Muxer for each restream URL scheme.
RESTREAM_FORMATS = {
    "udp": "mpegts",
    "srt": "mpegts",
    "tcp": "mpegts",
    "rtp": "rtp_mpegts",
    "rtsp": "rtsp",
    "rtsps": "rtsp",
    "rtmp": "flv",
    "rtmps": "flv",
}
TIME_BASE = Fraction(1, 90000)
KEYFRAME_SECONDS = 1.0
# Milliseconds: what Matroska/WebM impose anyway (a muxer that changes the time base after the
# first frames would skew them), and fine enough for real capture times in mp4/mov.
RECORDING_TIME_BASE = Fraction(1, 1000)


class LiveSink(Protocol):
    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


def is_url(target: str) -> bool:
    return "://" in target


class RecordingSink:
    """A video file written as frames arrive; the file appears under its name only on close."""

    def __init__(
        self, target: Path, encoder: EncoderOptions, fps_hint: float, overwrite: bool = False
    ) -> None:
        self.target = Path(target)  # the name written once the first frame reserved it
        self.overwrite = overwrite
        self.encoder = encoder
        self.fps_hint = fps_hint
        self._sink: VideoSink | None = None
        self._t0: float | None = None

    def write(self, frame: Frame) -> None:
        if self._sink is None:
            fps = Fraction(round(self.fps_hint * 1000), 1000) if self.fps_hint > 0 else Fraction(25)
            info = VideoInfo(frame.width, frame.height, fps, 0, None, RECORDING_TIME_BASE, False)
            self._sink = VideoSink(self.target, info, self.encoder, overwrite=self.overwrite)
            self.target = self._sink.target
            self._t0 = frame.time
        image = fit(frame.image, self._sink.info.width, self._sink.info.height)
        self._sink.write(Frame(frame.index, frame.time - (self._t0 or 0.0), image))

    @property
    def frames_written(self) -> int:
        return self._sink.frames_written if self._sink else 0

    def close(self) -> None:
        """Finish the file (it is renamed into place); nothing is written if no frame came."""
        if self._sink is not None:
            self._sink.finish()


class RestreamSink:
    """H.264 to a URL (mpegts over udp/srt/tcp, RTSP to a server, FLV to RTMP).

    A send failure (receiver or server gone) closes the output and retries
    with backoff; frames in between are not sent.
    """

    def __init__(
        self,
        url: str,
        encoder: EncoderOptions,
        fps_hint: float,
        fmt: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        scheme = url.split("://", 1)[0].lower()
        self.url = url
        self.format = fmt or RESTREAM_FORMATS.get(scheme)
        if self.format is None:
            raise OptionError(
                f"cannot restream to '{scheme}://'; use one of: "
                + ", ".join(s + "://" for s in RESTREAM_FORMATS)
                + " (or --restream-format)"
            )
        self.encoder = encoder
        self.fps = fps_hint if fps_hint > 0 else 25.0
        self.log = log or (lambda message: None)
        self.size: tuple[int, int] | None = None
        self.frames_sent = 0
        self.failures = 0
        self._container = None
        self._stream = None
        self._t0: float | None = None
        self._last_pts = -1
        self._last_key: float | None = None
        self._retry_at = 0.0
        self._backoff = 0.5

    def _open(self, width: int, height: int) -> None:
        options = {"rtsp_transport": "tcp"} if self.format == "rtsp" else {}
        if self.format == "mpegts":
            options["mpegts_flags"] = "resend_headers"
        container = av.open(
            self.url, "w", format=self.format, options=options, timeout=(10.0, 10.0)
        )
        try:
            stream = container.add_stream("libx264", rate=Fraction(round(self.fps * 1000), 1000))
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = TIME_BASE
            stream.codec_context.time_base = TIME_BASE
            gop = max(1, round(self.fps))
            stream.codec_context.gop_size = gop
            stream.codec_context.max_b_frames = 0
            stream.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "crf": str(self.encoder.crf),
                "g": str(gop),
                "bf": "0",
            }
            container.start_encoding()
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream

    def write(self, frame: Frame) -> None:
        if self._container is None:
            if time.monotonic() < self._retry_at:
                return
            width, height = self.size or (frame.width, frame.height)
            try:
                self._open(width, height)
            except av.error.ProtocolNotFoundError:
                scheme = self.url.split("://", 1)[0]
                raise OutputError(
                    f"this FFmpeg build cannot send to {scheme}:// (the PyAV wheels come without "
                    "it; install PyAV built against an FFmpeg that has it)"
                ) from None
            except (av.error.FFmpegError, OSError) as exc:
                self._failed(exc)
                return
            self.size = (width, height)
            self._backoff = 0.5
        if self._t0 is None:
            self._t0 = frame.time
        image = fit(frame.image, self._stream.width, self._stream.height)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        pts = max(round((frame.time - self._t0) / TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        vf.pts, vf.time_base = pts, TIME_BASE
        if self._last_key is None or frame.time - self._last_key >= KEYFRAME_SECONDS:
            # By time, not frame count: output fps varies with load, and a viewer joining waits
            # at most this long.
            vf.pict_type = av.video.frame.PictureType.I
            self._last_key = frame.time
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            self._failed(exc)
            return
        self.frames_sent += 1

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.log(
            f"restream to {self.url} failed ({' '.join(str(exc).split())[:100]}); "
            f"retrying in {self._backoff:.1f} s"
        )
        self._close_container()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 8.0)

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError):
                pass
        self._container = self._stream = None
        self._last_key = None

    def close(self) -> None:
        if self._container is not None:
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            except (av.error.FFmpegError, OSError):
                pass
        self._close_container()


def display_available() -> bool:
    """Whether a window can open: always on Windows/macOS, on Linux only with X11 or Wayland."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class PreviewSink:
    """An OpenCV window; pressing q (or closing the window) asks the live loop to stop."""

    def __init__(
        self, title: str = "veil live (q quits)", on_quit: Callable[[], None] | None = None
    ) -> None:
        if not display_available():
            raise OutputError(
                "--preview needs a display and none was found (DISPLAY is not set); "
                "record with -o FILE or restream with -o URL instead"
            )
        self.title = title
        self.on_quit = on_quit or (lambda: None)
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise OutputError(
                f"--preview cannot open a window ({' '.join(str(exc).split())[:100]}); "
                "record with -o FILE or restream with -o URL instead"
            ) from None

    def write(self, frame: Frame) -> None:
        cv2.imshow(self.title, frame.image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in (ord("q"), ord("Q"), 27) or closed:
            self.on_quit()

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
