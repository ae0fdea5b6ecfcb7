"""Long videos in parallel: cut at keyframes, anonymize the pieces apart, join them by stream copy.

Each segment owns the frames whose presentation time lies in [start, end),
where start and end are keyframe times of the source. Its worker seeks to a
keyframe `overlap` seconds earlier and decodes `overlap` seconds past the end:
those context frames go through detection and the temporal filter, so
tracking sees what happened around the cut, but only the segment's own frames
are encoded. Parts are encoded without B-frames, so every packet's decode
time equals its presentation time and the parts follow each other without
timestamp overlap; the join copies their packets unchanged (no re-encoding at
the cuts) and copies the source's audio packets beside them. A part that does
not continue exactly where the previous one stopped fails the video rather
than producing a broken file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import InputError, ProcessingError
from ..frame import Frame
from ..io.paths import atomic_output
from ..io.video import VideoSink, VideoSource, can_copy_audio
from ..pipeline import Pipeline

DEFAULT_OVERLAP = 2.0
# Finished segments wait under this prefix for the join; a new run deletes any it finds.
PART_PREFIX = ".veil-segment-"


@dataclass(frozen=True)
class Segment:
    """Frames with start <= time < end (None: open), decoded from context_start to context_end."""

    index: int
    count: int
    start: float | None
    end: float | None
    context_start: float | None
    context_end: float | None
    part: str


def keyframe_times(path: Path) -> tuple[list[float], float]:
    """Presentation times of the video's keyframes (packets only, nothing decoded), and its end."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise InputError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            keys, last = [], 0.0
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                time = float(packet.pts * packet.time_base)
                last = max(last, time)
                if packet.is_keyframe:
                    keys.append(time)
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc})") from None
    return sorted(keys), last


def can_join(path: Path, target: Path, keep_audio: bool) -> bool:
    """Whether the source's audio (if kept) can be copied as-is into the target's container.

    The join copies one audio stream: a video with more is processed whole.
    """
    if not keep_audio:
        return True
    with av.open(str(path), metadata_errors="ignore") as container:
        streams = container.streams.audio
        return len(streams) <= 1 and all(can_copy_audio(s, target) for s in streams)


def plan_segments(
    source: Path, target: Path, seconds: float, overlap: float = DEFAULT_OVERLAP
) -> list[Segment]:
    """Cut points at the first keyframe at or after each multiple of `seconds`; [] if one piece
    suffices."""
    keys, last = keyframe_times(source)
    cuts: list[float] = []
    wanted = seconds
    for key in keys:
        if key >= wanted and last - key >= seconds / 2:
            cuts.append(key)
            wanted = key + seconds
    if not cuts:
        return []
    starts: list[float | None] = [None, *cuts]
    ends: list[float | None] = [*cuts, None]
    segments = []
    for i, (start, end) in enumerate(zip(starts, ends)):
        context_start = None
        if start is not None:
            earlier = [k for k in keys if k <= start - overlap]
            context_start = earlier[-1] if earlier else None
        part = target.parent / f"{PART_PREFIX}{target.stem}.{i:04d}.mp4"
        segments.append(
            Segment(
                i,
                len(starts),
                start,
                end,
                context_start,
                None if end is None else end + overlap,
                str(part),
            )
        )
    return segments


def _context_frames(src: VideoSource, segment: Segment) -> Iterator[Frame]:
    if segment.context_start is not None:
        src.container.seek(
            int(segment.context_start / src.stream.time_base), stream=src.stream, backward=True
        )
    index = 0
    for frame in src.frames():
        if segment.context_start is not None and frame.time < segment.context_start - 1e-6:
            continue
        if segment.context_end is not None and frame.time >= segment.context_end:
            return
        yield Frame(index, frame.time, frame.image)
        index += 1


def _own(segment: Segment, time: float) -> bool:
    eps = 1e-6
    return (segment.start is None or time >= segment.start - eps) and (
        segment.end is None or time < segment.end - eps
    )


def process_segment(pipeline: Pipeline, source: Path, segment: Segment) -> tuple[int, int]:
    """Anonymize one segment into its part file; returns (frames written, detections on them)."""
    # No B-frames: decode order = presentation order, so the parts join cleanly.
    options = dataclasses.replace(pipeline.options.encoder, keep_audio=False, b_frames=0)
    frames = faces = 0
    with VideoSource(source) as src:
        sink = VideoSink(Path(segment.part), src.info, options)
        try:
            for frame, dets in pipeline.iter_anonymized(
                _context_frames(src, segment), float(src.info.fps)
            ):
                if _own(segment, frame.time):
                    sink.write(frame)
                    frames += 1
                    faces += len(dets)
            if frames == 0:
                raise ProcessingError(
                    f"{source}: segment {segment.index + 1} of {segment.count} has no frames"
                )
            sink.finish()
        except BaseException:
            sink.abort()
            raise
    return frames, faces


def join_segments(
    source: Path, parts: list[Path], target: Path, keep_audio: bool, keep_metadata: bool
) -> None:
    """Copy the parts' video packets and the source's audio packets into the target (atomically)."""
    try:
        _join(source, parts, target, keep_audio, keep_metadata)
    except (av.error.FFmpegError, OSError) as exc:
        raise ProcessingError(
            f"{source}: the segments could not be joined ({exc}); nothing was written"
        ) from None


def _join(
    source: Path, parts: list[Path], target: Path, keep_audio: bool, keep_metadata: bool
) -> None:
    with atomic_output(target) as tmp, av.open(str(source), metadata_errors="ignore") as original:
        inputs = [av.open(str(p)) for p in parts]
        try:
            out = av.open(str(tmp), "w")
            try:
                video = out.add_stream_from_template(inputs[0].streams.video[0])
                video.metadata.clear()
                audio_in = (
                    original.streams.audio[0] if keep_audio and original.streams.audio else None
                )
                audio = out.add_stream_from_template(audio_in) if audio_in is not None else None
                if audio is not None:
                    audio.metadata.clear()
                if keep_metadata:
                    out.metadata.update(original.metadata)
                audio_packets = _packets(original, audio_in) if audio_in is not None else iter(())
                pending = next(audio_packets, None)
                last_dts: Fraction | None = None
                for number, part in enumerate(inputs):
                    for packet in part.demux(part.streams.video[0]):
                        if packet.dts is None:
                            continue
                        dts = packet.dts * packet.time_base
                        if last_dts is not None and dts <= last_dts:
                            raise ProcessingError(
                                f"{source}: segment {number + 1} overlaps the one before it; "
                                "the video was not joined"
                            )
                        last_dts = dts
                        while pending is not None and pending.pts * pending.time_base <= dts:
                            pending.stream = audio
                            out.mux(pending)
                            pending = next(audio_packets, None)
                        packet.stream = video
                        out.mux(packet)
                while pending is not None:
                    pending.stream = audio
                    out.mux(pending)
                    pending = next(audio_packets, None)
            finally:
                out.close()
        finally:
            for container in inputs:
                container.close()


def _packets(container, stream) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.dts is not None and packet.pts is not None:
            yield packet
