"""Random access to the frames of a video file, for the review page and for following edits.

`VideoSource` streams a file once from the start; reviewing needs frame N now and the frames
around it next. `FrameReader` indexes the presentation times of the video packets once
(demuxing only, no decoding) and then seeks to the keyframe before the wanted frame, so one
frame costs at most a group of pictures to decode and memory holds one chunk of frames.
Frame indices are the ones `VideoSource.frames` gives (presentation order from 0), so they
match the exported detections.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import av

from ..errors import InputError
from ..frame import Frame
from .video import DEFAULT_MAX_PIXELS, VideoSource, _rotate

CHUNK = 32  # frames decoded per step when walking backwards


@lru_cache(maxsize=16)
def _packet_times(path: str, mtime_ns: int, size: int) -> tuple[int | None, ...]:
    """Presentation times of a file's video packets, demuxed once per file version (the
    review page asks for one frame after another)."""
    with VideoSource(Path(path)) as source:
        return tuple(p.pts for p in source.container.demux(source.stream) if p.size)


class FrameReader:
    """Frames of one video by index: `frame(i)`, `read(start, stop)` and `walk(i, step)`."""

    def __init__(self, path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._source = VideoSource(path, max_pixels=max_pixels)
        self.info = self._source.info
        self._time_base = self._source.stream.time_base
        try:
            stat = Path(path).stat()
            pts = _packet_times(str(path), stat.st_mtime_ns, stat.st_size)
        except av.error.FFmpegError as exc:
            self.close()
            raise InputError(f"{path}: damaged video ({exc})") from None
        # Without timestamps on every packet there is nothing to seek by: decode from the start.
        self._pts = sorted(pts) if pts and None not in pts else None
        self.count = len(pts)

    def times(self) -> list[float]:
        """Presentation time of every frame in seconds (from the fps where none are stored)."""
        if self._pts is None:
            return [i / float(self.info.fps) for i in range(self.count)]
        return [float(p * self._time_base) for p in self._pts]

    def read(self, start: int, stop: int) -> list[Frame]:
        """Frames start..stop-1 (fewer at the end of the video)."""
        start, stop = max(start, 0), min(stop, self.count)
        if start >= stop:
            return []
        container, stream = self._source.container, self._source.stream
        if self._pts is None or start == 0:
            container.seek(0)
        else:
            container.seek(self._pts[start], stream=stream, backward=True)
        out: list[Frame] = []
        index = -1
        for vf in container.decode(stream):
            if self._pts is None or vf.pts is None:
                index += 1
            else:
                index = bisect.bisect_left(self._pts, vf.pts)
            if index < start:
                continue
            if index >= stop:
                break
            rotation = -int(getattr(vf, "rotation", 0) or 0) % 360
            image = _rotate(vf.to_ndarray(format="bgr24"), rotation)
            fps = float(self.info.fps)
            time = float(vf.pts * self._time_base) if vf.pts is not None else index / fps
            out.append(Frame(index, time, image))
        return out

    def frame(self, index: int) -> Frame:
        found = self.read(index, index + 1)
        if not found:
            raise InputError(f"no frame {index}: the video has {self.count} frames")
        return found[0]

    def walk(self, index: int, step: int) -> Iterator[Frame]:
        """The frames after (step 1) or before (step -1) frame `index`, moving away from it."""
        while True:
            if step > 0:
                chunk = self.read(index + 1, index + 1 + CHUNK)
            else:
                chunk = self.read(index - CHUNK, index)[::-1]
            if not chunk:
                return
            yield from chunk
            index = chunk[-1].index

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
