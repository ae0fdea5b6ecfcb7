"""Video files in and out through PyAV (FFmpeg's libraries, no subprocess).

The source yields frames with their container timestamps and hands audio
packets to the sink untouched, so the audio is copied bit for bit and the
video keeps its timing (variable frame rate included). Container and stream
tags (creation time, GPS from phones, device model, encoder names) are dropped
unless the user keeps them.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np

from ..errors import InputError, OptionError, OutputError
from ..frame import Frame
from ..options import ENCODE, check, option
from .paths import atomic_output

# Audio codecs each container family can carry as-is; others are re-encoded to AAC/Opus.
COPYABLE_AUDIO = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "mov": {
        "aac",
        "mp3",
        "ac3",
        "eac3",
        "alac",
        "pcm_s16le",
        "pcm_s16be",
        "pcm_s24le",
        "pcm_f32le",
    },
    "matroska": None,  # anything
    "webm": {"opus", "vorbis"},
}
VIDEO_OUTPUT_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".m4v"}
CODECS_FOR_EXT = {".webm": "libvpx-vp9"}


encoding = partial(option, group="video output", commands=ENCODE)


@dataclass(frozen=True)
class EncoderOptions:
    """Encoding settings; defaults favour speed at visually lossless-looking quality.

    x264's superfast preset costs about half the CPU of veryfast for a similar
    size and quality at CRF 21 (docs/speed.md), and encoding is the largest
    cost after detection.
    """

    codec: str = encoding("libx264", "--codec", help="video encoder (default %(default)s)")
    crf: int = encoding(
        21, "--crf", ge=0, help="quality, lower is better and larger (default %(default)s)"
    )
    preset: str = encoding(
        "superfast",
        "--preset",
        # Live output must keep up with the camera: the fastest preset.
        defaults={"live": "ultrafast"},
        help="x264/x265 speed preset: ultrafast ... veryslow (default %(default)s)",
    )
    keep_audio: bool = encoding(
        True,
        "--no-audio",
        commands=("main", "batch"),
        negate=True,
        help="drop the audio instead of copying it",
    )
    b_frames: int | None = (
        None  # None: the encoder's choice; 0 makes decode order = presentation order
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as stored; frames come out rotated upright when the container says so
    height: int
    fps: Fraction
    frame_count: int  # 0 when the container does not say
    duration: float | None
    time_base: Fraction
    has_audio: bool


def _rotate(image: np.ndarray, clockwise: int) -> np.ndarray:
    turns = {90: -1, 180: 2, 270: 1}.get(clockwise % 360)
    return image if turns is None else np.ascontiguousarray(np.rot90(image, turns))


class VideoSource:
    """Decoded frames of a video file, in presentation order, with true timestamps."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.container = av.open(str(self.path), metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable video ({_reason(exc)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise InputError(f"{path}: has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        audio = self.container.streams.audio
        self.audio_stream = audio[0] if audio else None
        ctx = self.stream.codec_context
        if not ctx.width or not ctx.height:
            self.container.close()
            raise InputError(f"{path}: video stream has no picture size (damaged file?)")
        fps = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        duration = None
        if self.stream.duration and self.stream.time_base:
            duration = float(self.stream.duration * self.stream.time_base)
        elif self.container.duration:
            duration = self.container.duration / av.time_base
        frames = self.stream.frames or (int(round(duration * fps)) if duration else 0)
        self.info = VideoInfo(
            ctx.width,
            ctx.height,
            Fraction(fps),
            frames,
            duration,
            self.stream.time_base or Fraction(1, 90000),
            self.audio_stream is not None,
        )
        self.metadata = dict(self.container.metadata)
        self.on_audio_packet: Callable[[av.Packet], None] | None = None

    def frames(self) -> Iterator[Frame]:
        """Frames in order; audio packets go to on_audio_packet as they are read."""
        streams = [self.stream] + (
            [self.audio_stream] if self.audio_stream and self.on_audio_packet else []
        )
        index = 0
        time_base = self.stream.time_base
        try:
            for packet in self.container.demux(streams):
                if packet.stream is self.audio_stream:
                    if packet.dts is not None:
                        self.on_audio_packet(packet)  # type: ignore[misc]
                    continue
                for vf in packet.decode():
                    time = (
                        float(vf.pts * time_base)
                        if vf.pts is not None
                        else index / float(self.info.fps)
                    )
                    image = vf.to_ndarray(format="bgr24")
                    rotation = -int(getattr(vf, "rotation", 0) or 0) % 360
                    yield Frame(index, time, _rotate(image, rotation))
                    index += 1
        except av.error.FFmpegError as exc:
            raise InputError(
                f"{self.path}: damaged video after frame {index} ({_reason(exc)})"
            ) from None
        if index == 0:
            raise InputError(f"{self.path}: no decodable frames (empty or damaged video)")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:120]


class VideoSink:
    """Encodes frames to a temporary file beside the target; `finish` renames it into place.

    Frame timestamps are reused as-is (same time base as the input), so the
    output plays at exactly the input's speed even when the frame rate varies.
    """

    def __init__(
        self,
        target: Path,
        info: VideoInfo,
        options: EncoderOptions = EncoderOptions(),
        audio_template: av.audio.stream.AudioStream | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.target = target
        self.options = options
        self._atomic = atomic_output(target)
        self.tmp = self._atomic.__enter__()
        self._closed = False
        try:
            self.container = av.open(str(self.tmp), "w")
        except av.error.FFmpegError as exc:
            self._abort()
            raise OutputError(f"{target}: cannot write video ({_reason(exc)})") from None
        self.info = info
        try:
            av.codec.Codec(self._codec_name(), "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            self._abort()
            raise OptionError(
                f"video codec '{self._codec_name()}' is not available in this FFmpeg build"
            ) from None
        self._audio_template = audio_template if options.keep_audio else None
        self.stream = None  # created from the first frame: its size is the displayed (rotated) size
        if metadata:  # only passed when the user keeps metadata
            self.container.metadata.update(metadata)
        self.audio_out = None
        self._audio_transcode = None
        self._pending_audio: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.frames_written = 0
        self._last_pts = -1

    def _open_streams(self, height: int, width: int) -> None:
        self.stream = self._add_video_stream(self.info, width, height)
        if self._audio_template is not None:
            self._add_audio_stream(self._audio_template)

    def _codec_name(self) -> str:
        """The requested codec, or the container's natural one when the default does not fit."""
        if (
            self.target.suffix.lower() in CODECS_FOR_EXT
            and self.options.codec == EncoderOptions.codec
        ):
            return CODECS_FOR_EXT[self.target.suffix.lower()]
        return self.options.codec

    def _add_video_stream(self, info: VideoInfo, width: int, height: int):
        codec = self._codec_name()
        try:
            stream = self.container.add_stream(codec, rate=info.fps)
        except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError) as exc:
            self._abort()
            raise OptionError(f"video codec '{codec}' is not available ({_reason(exc)})") from None
        # yuv420p needs even sizes; odd frames are padded by one edge pixel.
        stream.width = width + width % 2
        stream.height = height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        opts = {"crf": str(self.options.crf)}
        if codec in ("libx264", "libx265"):
            opts["preset"] = self.options.preset
        if codec == "libvpx-vp9":
            opts.update({"b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"})
        if self.options.b_frames is not None:
            stream.codec_context.max_b_frames = self.options.b_frames
        stream.options = opts
        return stream

    def _add_audio_stream(self, template) -> None:
        fmt = self.container.format.name.split(",")[0]
        family = (
            "matroska"
            if "matroska" in fmt
            else ("webm" if fmt == "webm" else ("mov" if fmt == "mov" else "mp4"))
        )
        allowed = COPYABLE_AUDIO.get(family)
        if allowed is None or template.codec_context.name in allowed:
            self.audio_out = self.container.add_stream_from_template(template)
            self.audio_out.metadata.clear()
            return
        # The codec cannot live in this container: decode and re-encode it.
        codec = "libopus" if family == "webm" else "aac"
        self.audio_out = self.container.add_stream(
            codec, rate=template.codec_context.sample_rate or 48000
        )
        self._audio_transcode = (
            template.codec_context,
            av.AudioResampler(
                format=self.audio_out.codec_context.format,
                layout=self.audio_out.codec_context.layout,
                rate=self.audio_out.codec_context.sample_rate,
            ),
        )

    def add_audio_packet(self, packet: av.Packet) -> None:
        """Queue an input audio packet; it is muxed when the video catches up to its time."""
        if self._audio_template is not None:
            with self._lock:
                self._pending_audio.append(packet)

    def _mux_audio_until(self, seconds: float | None) -> None:
        while True:
            with self._lock:
                if not self._pending_audio:
                    return
                packet = self._pending_audio[0]
                if (
                    seconds is not None
                    and packet.pts is not None
                    and float(packet.pts * packet.time_base) > seconds
                ):
                    return
                self._pending_audio.popleft()
            if self._audio_transcode is None:
                packet.stream = self.audio_out
                self.container.mux(packet)
            else:
                decoder, resampler = self._audio_transcode
                for frame in decoder.decode(packet):
                    for out_frame in resampler.resample(frame):
                        out_frame.pts = None
                        self.container.mux(self.audio_out.encode(out_frame))

    def write(self, frame: Frame) -> None:
        image = frame.image
        if self.stream is None:
            self._open_streams(*image.shape[:2])
        if image.shape[1] != self.stream.width or image.shape[0] != self.stream.height:
            pad_y, pad_x = self.stream.height - image.shape[0], self.stream.width - image.shape[1]
            image = np.pad(image, ((0, max(pad_y, 0)), (0, max(pad_x, 0)), (0, 0)), mode="edge")
            image = image[: self.stream.height, : self.stream.width]
        vf = av.VideoFrame.from_ndarray(image, format="bgr24")
        # The encoder's time base: some muxers (Matroska) change the stream's once the header
        # is written.
        time_base = self.stream.codec_context.time_base
        pts = int(round(frame.time / time_base))
        pts = max(pts, self._last_pts + 1)  # encoders need strictly increasing timestamps
        self._last_pts = pts
        vf.pts = pts
        vf.time_base = time_base
        for packet in self.stream.encode(vf):
            self._mux_video(packet)
        self.frames_written += 1

    def _mux_video(self, packet: av.Packet) -> None:
        if packet.pts is not None:
            self._mux_audio_until(float(packet.pts * self.stream.time_base))
        self.container.mux(packet)

    def finish(self) -> Path:
        """Flush, close and move the file into place."""
        if self.stream is None:
            raise OutputError(f"{self.target}: no frames to write")
        for packet in self.stream.encode(None):
            self._mux_video(packet)
        self._mux_audio_until(None)
        if self._audio_transcode is not None:
            for packet in self.audio_out.encode(None):
                self.container.mux(packet)
        self.container.close()
        self._closed = True
        self._atomic.__exit__(None, None, None)
        return self.target

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.container.close()
            except Exception:
                pass
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def abort(self) -> None:
        """Drop the partial file: nothing half-written or un-anonymized is left."""
        try:
            self._abort()
        except RuntimeError:
            pass


def output_extension(source: Path) -> str:
    ext = source.suffix.lower()
    return ext if ext in VIDEO_OUTPUT_EXTS else ".mp4"
