"""Video files in and out through PyAV (FFmpeg's libraries, no subprocess).

The source yields frames with their container timestamps and hands audio
packets to the sink untouched, so the audio is copied bit for bit and the
video keeps its timing (variable frame rate included). Only the anonymized
video and the audio reach the output: container and stream tags (creation
time, GPS from phones, device model), chapters, attachments (cover art,
fonts), subtitles and data streams (GPS tracks of action cameras) are dropped,
and container tags are kept only when the user asks.

Damaged or changing inputs are reported, never silently shortened or cropped:
a file that ends before its header says is an error (frames were lost), a
picture size change mid-stream is letterboxed into the first size with a
warning, extra video streams are named in a warning.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import InputError, OptionError, OutputError
from ..frame import Frame
from ..options import ENCODE, check, option
from .paths import reserve, write_error

log = logging.getLogger("veil")

DEFAULT_MAX_PIXELS = 100_000_000  # per frame; frames stream through bounded queues
# Audio codecs each container family can carry as-is (FFmpeg codec names); others are re-encoded.
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
CODECS_FOR_EXT = {".webm": "libvpx-vp9"}
# How far a video may end before the end its container states, before frames count as lost:
# timestamps are rounded and the last frame's duration is a guess.
END_SLACK_FRAMES = 2
END_SLACK_SECONDS = 0.1


def container_family(target: Path) -> str:
    """Which COPYABLE_AUDIO row a target file's container follows."""
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov"}.get(target.suffix.lower(), "mp4")


def can_copy_audio(stream: av.audio.stream.AudioStream, target: Path) -> bool:
    """Whether an audio stream's packets can go into `target`'s container unchanged."""
    allowed = COPYABLE_AUDIO[container_family(target)]
    return allowed is None or stream.codec_context.codec.canonical_name in allowed


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
    """Decoded frames of a video file, in presentation order, with true timestamps.

    The picture size is checked against `max_pixels` before anything is
    decoded. Audio packets of every audio stream go to `on_audio_packet` as
    they are read.
    """

    def __init__(self, path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.path = Path(path)
        try:
            self.container = av.open(str(self.path), metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable video ({_reason(exc)})") from None
        try:
            self._open_streams(max_pixels)
        except BaseException:
            self.container.close()
            raise
        self.metadata = dict(self.container.metadata)
        self.on_audio_packet: Callable[[av.Packet], None] | None = None

    def _open_streams(self, max_pixels: int) -> None:
        # Cover art is a one-picture "video" stream: never anonymized, never written.
        videos = [
            s
            for s in self.container.streams.video
            if not s.disposition & av.stream.Disposition.attached_pic
        ]
        if not videos:
            raise InputError(f"{self.path}: has no video stream")
        if len(videos) > 1:
            log.warning(
                "veil: warning: %s: has %d video streams; the first is anonymized and written, "
                "the others are left out",
                self.path,
                len(videos),
            )
        self.stream = videos[0]
        self.stream.thread_type = "AUTO"
        self.audio_streams = list(self.container.streams.audio)
        ctx = self.stream.codec_context
        if not ctx.width or not ctx.height:
            raise InputError(f"{self.path}: video stream has no picture size (damaged file?)")
        if ctx.width * ctx.height > max_pixels:
            raise InputError(
                f"{self.path}: {ctx.width}x{ctx.height} pixels per frame is over the limit of "
                f"{max_pixels / 1e6:g} MP (max_pixels); raise it if the memory allows"
            )
        fps = self.stream.average_rate or self.stream.guessed_rate or Fraction(25)
        stream = self.stream
        self._start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        self._end, self._own_end = self._stated_end()
        duration = self._end - self._start if self._end is not None else None
        self.info = VideoInfo(
            ctx.width,
            ctx.height,
            Fraction(fps),
            stream.frames or (int(round(duration * fps)) if duration else 0),
            duration,
            stream.time_base or Fraction(1, 90000),
            bool(self.audio_streams),
        )

    def _stated_end(self) -> tuple[float | None, bool]:
        """When the container says the video ends (seconds; None: it does not say), and whether
        that is the video's own end (False: the whole file's, audio included)."""
        stream = self.stream
        if stream.duration and stream.time_base:
            return self._start + float(stream.duration * stream.time_base), True
        tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
        if tag:  # Matroska keeps it per track, as H:MM:SS.nnnnnnnnn: FFmpeg writes the end
            try:  # time, other muxers the length; read as the end, the earlier of the two
                h, m, sec = tag.split(":")
                return int(h) * 3600 + int(m) * 60 + float(sec), True
            except ValueError:
                pass
        if self.container.duration:
            return (
                (self.container.start_time or 0) + self.container.duration
            ) / av.time_base, False
        return None, False

    @property
    def audio_stream(self) -> av.audio.stream.AudioStream | None:
        return self.audio_streams[0] if self.audio_streams else None

    def frames(self) -> Iterator[Frame]:
        """Frames in order; raises InputError at the end if frames were lost (damaged file)."""
        index = 0
        time_base = self.stream.time_base
        seen = _Seen()
        try:
            for packet in self.container.demux([self.stream, *self.audio_streams]):
                seen.packet(packet)
                if packet.stream.type == "audio":
                    if self.on_audio_packet is not None and packet.dts is not None:
                        self.on_audio_packet(packet)
                    continue
                for vf in packet.decode():
                    time = (
                        float(vf.pts * time_base)
                        if vf.pts is not None
                        else index / float(self.info.fps)
                    )
                    seen.video(time)
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
        self._check_complete(index, seen)

    def _check_complete(self, decoded: int, seen: _Seen) -> None:
        """Frames lost at the end (a cut file) or on the way (a damaged one) are an error.

        The end counts as reached when the video gets there, or the audio when
        the only stated length is the whole file's; the frame count (exact in
        MP4 and MOV) is compared only when decoding started at the first frame.
        """
        fps = float(self.info.fps) or 25.0
        slack = max(END_SLACK_FRAMES / fps, END_SLACK_SECONDS)
        reached = seen.last_video + 1 / fps
        if not self._own_end:
            reached = max(reached, seen.last_audio)
        counted = self.stream.frames
        short_time = self._end is not None and reached < self._end - slack
        short_count = (  # packets, not frames: an edit list drops frames it starts after
            counted > 0
            and seen.first_video <= self._start + slack
            and seen.video_packets < counted - END_SLACK_FRAMES
        )
        if short_time or short_count:
            stated = f"{counted} frames" if counted else f"{self._end - self._start:.2f} s"
            raise InputError(
                f"{self.path}: damaged or cut video: the file says {stated} but only {decoded} "
                f"frames ({reached - self._start:.2f} s) could be decoded; nothing was written "
                "(to anonymize what is readable, remux it first: ffmpeg -i IN -c copy OUT)"
            )

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Seen:
    """How far the video and audio streams got while a file was read."""

    def __init__(self) -> None:
        self.first_video = float("inf")
        self.last_video = float("-inf")
        self.last_audio = float("-inf")
        self.video_packets = 0

    def video(self, time: float) -> None:
        self.first_video = min(self.first_video, time)
        self.last_video = max(self.last_video, time)

    def packet(self, packet: av.Packet) -> None:
        if packet.stream.type == "video":
            self.video_packets += packet.size > 0
        elif packet.pts is not None and packet.time_base:
            end = (packet.pts + (packet.duration or 0)) * packet.time_base
            self.last_audio = max(self.last_audio, float(end))


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:120]


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The picture scaled to fit width x height, centred on black: never cropped or stretched."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new_w) // 2, (height - new_h) // 2
    out[y : y + new_h, x : x + new_w] = resized
    return out


# FFmpeg's standard layout for a number of channels, for inputs that give only the number.
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}


def _ordered(layout: av.AudioLayout) -> av.AudioLayout | str:
    """The layout an encoder accepts for every channel of `layout` (AVI says only '2 channels')."""
    if layout.name.endswith("channels"):
        return STANDARD_LAYOUTS.get(layout.nb_channels, layout)
    return layout


class _AudioOut:
    """One output audio stream: packets copied, or decoded and re-encoded from the same time on.

    An encoder numbers its packets from 0, so re-encoded packets are moved to
    the time the stream started at in the input (an audio track that starts
    1.5 s into the video still starts there).
    """

    def __init__(self, container, template, target: Path) -> None:
        self.decoder = None
        self.start: float | None = None  # seconds: when the input stream's first sample plays
        self.samples = 0
        if can_copy_audio(template, target):
            self.stream = container.add_stream_from_template(template)
            self.stream.metadata.clear()
            return
        codec = "libopus" if container_family(target) == "webm" else "aac"
        self.stream = container.add_stream(codec, rate=template.codec_context.sample_rate or 48000)
        self.stream.codec_context.layout = _ordered(template.codec_context.layout)
        self.decoder = template.codec_context

    def packets(self, packet: av.Packet) -> Iterator[av.Packet]:
        """The output packets for one input packet."""
        if self.decoder is None:
            packet.stream = self.stream
            yield packet
            return
        for frame in self.decoder.decode(packet):
            if self.start is None:
                self.start = frame.time or 0.0
            # Counted from 0 without gaps, as the encoder's re-chunking wants them.
            frame.pts, frame.time_base = self.samples, Fraction(1, frame.sample_rate)
            self.samples += frame.samples
            yield from self._moved(self.stream.encode(frame))

    def flush(self) -> Iterator[av.Packet]:
        if self.decoder is not None:
            yield from self._moved(self.stream.encode(None))

    def _moved(self, packets: list[av.Packet]) -> Iterator[av.Packet]:
        for packet in packets:
            if self.start and packet.pts is not None:
                offset = round(Fraction(self.start) / packet.time_base)
                packet.pts += offset
                packet.dts = None if packet.dts is None else packet.dts + offset
            yield packet


class VideoSink:
    """Encodes frames to a temporary file beside the target; `finish` renames it into place.

    Frame timestamps are reused as-is (same time base as the input), so the
    output plays at exactly the input's speed even when the frame rate varies.
    The output has the size of the first frame, odd sizes included (encoded
    4:4:4, since 4:2:0 needs even sizes); a later frame of another size is
    letterboxed into it. `target` is the name reserved for the output: unless
    overwrite, a free one if the asked one exists.
    """

    def __init__(
        self,
        target: Path,
        info: VideoInfo,
        options: EncoderOptions = EncoderOptions(),
        audio_template: av.audio.stream.AudioStream | None = None,
        metadata: dict[str, str] | None = None,
        *,
        audio_templates: list | None = None,
        overwrite: bool = True,
    ) -> None:
        self.options = options
        self.info = info
        self._slot = reserve(Path(target), overwrite=overwrite)
        self.target = self._slot.target
        self.tmp = self._slot.tmp
        self._closed = False
        try:
            self.container = av.open(str(self.tmp), "w")
        except av.error.FFmpegError as exc:
            self._abort()
            raise OutputError(f"{self.target}: cannot write video ({_reason(exc)})") from None
        try:
            av.codec.Codec(self._codec_name(), "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            self._abort()
            raise OptionError(
                f"video codec '{self._codec_name()}' is not available in this FFmpeg build"
            ) from None
        templates = audio_templates or ([audio_template] if audio_template is not None else [])
        self._audio_templates = templates if options.keep_audio else []
        self.stream = None  # created from the first frame: its size is the displayed (rotated) size
        if metadata:  # only passed when the user keeps metadata
            self.container.metadata.update(metadata)
        self._audio: dict[int, _AudioOut] = {}
        self._pending_audio: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self.frames_written = 0
        self._last_pts = -1
        self._resized_from: tuple[int, int] | None = None

    def _open_streams(self, height: int, width: int) -> None:
        self.stream = self._add_video_stream(self.info, width, height)
        for template in self._audio_templates:
            self._audio[template.index] = _AudioOut(self.container, template, self.target)

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
        stream.width = width
        stream.height = height
        # 4:2:0 halves the chroma in both directions, so it needs even sizes; 4:4:4 keeps any size.
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
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

    def add_audio_packet(self, packet: av.Packet) -> None:
        """Queue an input audio packet; it is muxed when the video catches up to its time."""
        if self._audio_templates:
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
            out = self._audio.get(packet.stream.index)
            if out is not None:
                for muxed in out.packets(packet):
                    self.container.mux(muxed)

    def write(self, frame: Frame) -> None:
        try:
            self._write(frame)
        except (av.error.FFmpegError, OSError) as exc:
            raise write_error(self.target, exc) from None

    def _write(self, frame: Frame) -> None:
        image = frame.image
        if self.stream is None:
            self._open_streams(*image.shape[:2])
        if image.shape[:2] != (self.stream.height, self.stream.width):
            if self._resized_from != image.shape[:2]:
                self._resized_from = image.shape[:2]
                log.warning(
                    "veil: warning: %s: the picture size changes to %dx%d at %.2f s; frames of "
                    "that size are scaled to fit %dx%d (black borders)",
                    self.target,
                    image.shape[1],
                    image.shape[0],
                    frame.time,
                    self.stream.width,
                    self.stream.height,
                )
            image = fit(image, self.stream.width, self.stream.height)
        vf = av.VideoFrame.from_ndarray(image, format="bgr24")
        # The encoder's time base: some muxers (Matroska) change the stream's once writing starts.
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
            self._abort()
            raise OutputError(f"{self.target}: no frames to write")
        try:
            for packet in self.stream.encode(None):
                self._mux_video(packet)
            self._mux_audio_until(None)
            for out in self._audio.values():
                for packet in out.flush():
                    self.container.mux(packet)
            self.container.close()
        except (av.error.FFmpegError, OSError) as exc:
            self._abort()
            raise write_error(self.target, exc) from None
        self._closed = True
        return self._slot.commit()

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.container.close()
            except Exception:
                pass
            self._slot.abort()

    def abort(self) -> None:
        """Drop the partial file: nothing half-written or un-anonymized is left."""
        self._abort()
