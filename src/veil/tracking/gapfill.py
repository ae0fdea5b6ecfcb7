"""Offline gap filling for video files: decisions use later frames as well as earlier ones.

Frames are tracked forward as they arrive (the same association as the live
tracker), but a frame is released only once what it gets is settled: once
`window` later frames have been seen, or sooner when no later frame can change
it (every track that could still reach it is seen at or after it, past its
first few detections). By then every gap it could lie in is known from both
ends, so:
- a frame between two detections of the same track gets the box interpolated
  between them (linearly, grown a little towards the middle of long gaps);
- a frame up to `extend` frames before a track's first detection or after its
  last gets that box carried on with the track's recent velocity, growing with
  the distance: faces are usually found a few frames after they enter and
  lost a few frames before they leave;
- nothing is carried across a scene cut.

Memory: one look-ahead window instead of two passes over the file. A second
decode would hold nothing but costs a full extra decode, needs a seekable
file and cannot serve pipes; the window holds `window` decoded frames (the
pipeline keeps a frame's pixels until it is released). The default window is
1 s of video, which bridges misses of up to a second (blur, a turn of the head,
a hand passing) and costs 30 frames: 190 MB at 1080p, 750 MB at 4K in BGR, half
that for a video's decoded planes. A memory cap (MAX_WINDOW_BYTES, counted in the
bytes the frames hold) shortens the window for very large frames, never below
`extend` frames.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..boxes import scale_box
from ..detections import Detections
from ..frame import Frame
from .scenecut import SceneCutDetector
from .tracker import MIN_HITS, Tracker, filled_detections, growth_scale, in_frame, usable_fps

MAX_WINDOW_BYTES = 1 << 30
VELOCITY_SPAN = 5  # observations used to estimate a track's velocity at its ends


@dataclass
class TrackHistory:
    """Every observation of one track: positions (frame counter) and boxes, in order."""

    id: int
    class_id: int
    segment: int
    positions: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    @property
    def confirmed(self) -> bool:
        return len(self.positions) >= MIN_HITS

    def velocity(self, at_end: bool) -> np.ndarray:
        """Mean box motion per frame over the last (or first) few observations."""
        n = min(VELOCITY_SPAN, len(self.positions))
        if n < 2:
            return np.zeros(4, np.float32)
        a, b = (-n, -1) if at_end else (0, n - 1)
        frames = self.positions[b] - self.positions[a]
        return (self.boxes[b] - self.boxes[a]) / max(frames, 1)


@dataclass
class Pending:
    index: int
    time: float
    pos: int
    segment: int
    width: int
    height: int
    seen: Detections


class GapFiller:
    """Temporal filter for files: look-ahead tracking, interpolation and extension."""

    def __init__(
        self,
        threshold: float,
        fps: float,
        lookahead: float = 1.0,
        extend: int = 6,
        growth: float = 1.0,
        scene_cut_threshold: float = 0.4,
    ) -> None:
        self.threshold = threshold
        self.fps = usable_fps(fps)
        self.lookahead = lookahead
        self.extend = extend
        self.growth = growth
        self.cuts = SceneCutDetector(scene_cut_threshold)
        self.window: int | None = None
        self.tracker: Tracker | None = None
        self.pending: deque[Pending] = deque()
        self.histories: dict[int, TrackHistory] = {}
        self.segment = 0
        self.pos = 0

    def _start(self, frame: Frame) -> None:
        wanted = max(1, math.ceil(self.lookahead * self.fps))
        cap = max(1, MAX_WINDOW_BYTES // max(frame.nbytes, 1))
        self.window = max(self.extend, min(wanted, cap), 1)
        self.tracker = Tracker(self.threshold, self.fps, self.growth, max_lost_frames=self.window)

    def push(self, frame: Frame, detections: Detections) -> list[tuple[int, Detections]]:
        if self.tracker is None:
            self._start(frame)
        if self.cuts.is_cut(frame):
            self.tracker.reset()
            self.segment += 1
        seen, support = self.tracker.step(self.pos, frame.time, detections)
        for row in range(len(seen)):
            tid = int(seen.track_id[row])
            history = self.histories.get(tid)
            if history is None:
                history = self.histories[tid] = TrackHistory(
                    tid, int(seen.class_id[row]), self.segment
                )
            history.positions.append(self.pos)
            history.boxes.append(seen.xyxy[row].astype(np.float32))
        seen = Detections.merge([seen, support])
        self.pending.append(
            Pending(
                frame.index, frame.time, self.pos, self.segment, frame.width, frame.height, seen
            )
        )
        self.pos += 1
        released = []
        while self.pending and (len(self.pending) > self.window or self._settled(self.pending[0])):
            released.append(self._release(self.pending.popleft()))
        return released

    def _settled(self, item: Pending) -> bool:
        """Whether no frame still to come can change what `item` gets, so it may leave before
        the window is full, with the boxes it would get then.

        A later frame changes a frame's boxes only through a track that can still grow: one
        lost before it (found again, it is interpolated across), one starting at most `extend`
        frames after it (carried back along its first observations' velocity), or one with
        too few observations to be confirmed (its boxes grow faster). With every face tracked
        steadily a frame leaves `extend` frames after it arrived instead of `window`: on a
        720p clip of three faces the frame loop held 20 frames when the input ended instead
        of 44, to detect, hide and encode while decoding was over (benchmarks/speed.py's
        clip), and identical output. Tracks not yet born start in a later frame, or in a
        later shot, and reach nothing before it.
        """
        if item.segment == self.segment and self.pos - 1 - item.pos < self.extend:
            return False
        for tid in self.tracker.alive_ids():
            history = self.histories[tid]
            if history.segment != item.segment:
                continue
            if history.positions[-1] < item.pos:
                return False
            if (
                len(history.positions) < max(VELOCITY_SPAN, MIN_HITS)
                and history.positions[0] <= item.pos + self.extend
            ):
                return False
        return True

    def flush(self) -> list[tuple[int, Detections]]:
        released = [self._release(p) for p in list(self.pending)]
        self.pending.clear()
        return released

    def _release(self, item: Pending) -> tuple[int, Detections]:
        boxes, ids, classes = [], [], []
        for history in self.histories.values():
            box = self._fill(history, item)
            if box is not None:
                boxes.append(box)
                ids.append(history.id)
                classes.append(history.class_id)
        self._forget_before(item.pos)
        added = in_frame(
            Detections.merge(
                [item.seen[item.seen.score == 0], filled_detections(boxes, ids, classes)]
            ),
            item.width,
            item.height,
        )
        return item.index, Detections.merge([item.seen[item.seen.score > 0], added])

    def _fill(self, history: TrackHistory, item: Pending) -> np.ndarray | None:
        """The box this track adds to a frame it was not detected in, or None."""
        if history.segment != item.segment:
            return None
        p = item.pos
        i = bisect.bisect_left(history.positions, p)
        if i < len(history.positions) and history.positions[i] == p:
            return None
        before = i - 1 if i > 0 else None
        after = i if i < len(history.positions) else None
        if before is not None and after is not None:
            s, t = history.positions[before], history.positions[after]
            w = (p - s) / (t - s)
            box = history.boxes[before] * (1 - w) + history.boxes[after] * w
            distance = min(p - s, t - p)
        elif before is not None and p - history.positions[before] <= self.extend:
            distance = p - history.positions[before]
            box = history.boxes[before] + history.velocity(at_end=True) * distance
        elif after is not None and history.positions[after] - p <= self.extend:
            distance = history.positions[after] - p
            box = history.boxes[after] - history.velocity(at_end=False) * distance
        else:
            return None
        scale = growth_scale(distance / self.fps, self.growth, history.confirmed)
        return scale_box(box, scale)[0]

    def _forget_before(self, pos: int) -> None:
        """Drop histories that can neither grow nor reach any frame still to be released."""
        alive = self.tracker.alive_ids()
        for tid in [
            t
            for t, h in self.histories.items()
            if t not in alive and h.positions[-1] + self.extend <= pos
        ]:
            del self.histories[tid]
