"""Frame-to-frame association (ByteTrack-style) and the online tracker for live sources.

Every detection at or above the detector threshold is kept and hidden, matched
or not: tracking only ever adds boxes, it never drops a face the detector saw.
Association runs in two passes. Confident detections are matched first against
every track (IoU, then centre distance for tracks that moved or were lost). The
tracks still unmatched then get a second chance against the weak detections
below the threshold (IoU only): a face half hidden behind a hand often scores
just under the threshold, and those weak boxes are kept only where they
continue a known face, so they add no false positives elsewhere.

A weak detection is often a fragment (half a face beside a post): it keeps its
track alive and is hidden, but it does not steer the motion model, and the
track's predicted box is hidden with it, grown with the time since the last
confident detection.

A track that finds no detection is "lost". The online tracker keeps hiding it
at its predicted position for `hold` seconds, with a box that grows with the
time lost (twice as fast while the track is unconfirmed, as its velocity is
not known yet), then drops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..boxes import scale_box
from ..detections import Detections
from ..frame import Frame
from .association import UNMATCHABLE, assign, cost_matrix
from .kalman import BoxKalman
from .scenecut import SceneCutDetector

MIN_HITS = 3  # detections before a track is "confirmed" (its velocity is trusted)
MIN_IOU = 0.2  # IoU that counts as overlap in the first pass
LOW_MIN_IOU = 0.3  # weak detections must overlap a track more clearly
BASE_GATE = 0.6  # centre distance (in box sizes) allowed for a track seen in the previous frame
REID_SECONDS = (
    1.0  # lost tracks stay matchable this long, so a face keeps its id after a short miss
)


@dataclass
class Track:
    id: int
    class_id: int
    kf: BoxKalman
    last_pos: int
    last_time: float
    last_strong_time: float
    hits: int = 1
    matched: bool = True

    @property
    def confirmed(self) -> bool:
        return self.hits >= MIN_HITS


def usable_fps(fps: float) -> float:
    """The stream's frame rate, or 30 where the container does not say."""
    return float(fps) if fps and math.isfinite(fps) and fps > 0 else 30.0


def growth_scale(seconds_lost: float, rate: float, confirmed: bool) -> float:
    """How much a box grows after this long without a detection (unconfirmed ones twice as fast)."""
    return 1.0 + max(seconds_lost, 0.0) * rate * (1.0 if confirmed else 2.0)


@dataclass
class Tracker:
    """Association state over a sequence of frames; no I/O, no pixels.

    threshold: score separating confident from weak detections. fps: converts
    frames lost into seconds for the distance gate. A lost track is removed
    after max_lost_frames frames or max_lost_seconds seconds (either, if set).
    """

    threshold: float
    fps: float
    growth: float = 1.0
    max_lost_frames: int | None = None
    max_lost_seconds: float | None = None
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def reset(self) -> None:
        """Forget every track (a scene cut): nothing is carried into the new shot."""
        self.tracks = []

    def alive_ids(self) -> set[int]:
        return {t.id for t in self.tracks}

    def _gate(self, track: Track, pos: int) -> float:
        return (
            BASE_GATE
            + growth_scale((pos - track.last_pos) / self.fps, self.growth, track.confirmed)
            - 1.0
        )

    def _costs(self, tracks: list[Track], dets: Detections, pos: int, *, weak: bool) -> np.ndarray:
        pred = np.array([t.kf.box for t in tracks], np.float32).reshape(-1, 4)
        gate = None if weak else np.array([self._gate(t, pos) for t in tracks])
        cost = cost_matrix(
            pred, dets.xyxy, min_iou=LOW_MIN_IOU if weak else MIN_IOU, distance_gate=gate
        )
        same_class = np.array([t.class_id for t in tracks])[:, None] == dets.class_id[None, :]
        return np.where(same_class, cost, UNMATCHABLE)

    def step(self, pos: int, time: float, dets: Detections) -> tuple[Detections, Detections]:
        """Advance one frame.

        Returns the detections kept (all confident ones in their order, then the weak
        ones that continue a track), each with its track id, and the support boxes: the
        predicted boxes of tracks matched only by a weak detection (score 0).
        """
        for track in self.tracks:
            track.kf.predict()
            track.matched = False
        strong = np.flatnonzero(dets.score >= self.threshold)
        weak = np.flatnonzero(dets.score < self.threshold)
        kept_rows: list[int] = []
        kept_ids: list[int] = []
        support: tuple[list, list, list] = ([], [], [])

        def match(
            candidates: list[Track], rows: np.ndarray, is_weak: bool
        ) -> tuple[list[Track], list[int]]:
            subset = dets[rows]
            pairs, free_t, free_d = assign(self._costs(candidates, subset, pos, weak=is_weak))
            for ti, di in pairs:
                track, row = candidates[ti], int(rows[di])
                if is_weak:
                    support[0].append(self.predicted_box(track, time))
                    support[1].append(track.id)
                    support[2].append(track.class_id)
                else:
                    track.kf.update(dets.xyxy[row])
                    track.last_strong_time = time
                    track.hits += 1
                track.last_pos, track.last_time = pos, time
                track.matched = True
                kept_rows.append(row)
                kept_ids.append(track.id)
            return [candidates[i] for i in free_t], [int(rows[i]) for i in free_d]

        unmatched, new_rows = match(self.tracks, strong, False)
        if len(weak) and unmatched:
            match(unmatched, weak, True)
        for row in new_rows:
            box = dets.xyxy[row].copy()
            self.tracks.append(
                Track(self.next_id, int(dets.class_id[row]), BoxKalman(box), pos, time, time)
            )
            kept_rows.append(row)
            kept_ids.append(self.next_id)
            self.next_id += 1
        self.tracks = [t for t in self.tracks if not self._expired(t, pos, time)]
        # Confident detections first, as handed in, then the weak ones kept: the frame loop
        # hides the confident ones before the frame is released (FrameLoop._hide_early).
        rows = np.asarray(kept_rows, np.int64)
        order = np.lexsort((rows, dets.score[rows] < self.threshold))
        seen = dets[rows[order]].with_(track_id=np.asarray(kept_ids, np.int64)[order])
        return seen, filled_detections(*support)

    def _expired(self, track: Track, pos: int, time: float) -> bool:
        if self.max_lost_frames is not None and pos - track.last_pos > self.max_lost_frames:
            return True
        return self.max_lost_seconds is not None and time - track.last_time > self.max_lost_seconds

    def predicted_box(self, track: Track, time: float) -> np.ndarray:
        """Where the track should be now, grown with the time since it was last seen clearly."""
        unsure = min(time - track.last_strong_time, REID_SECONDS)
        return scale_box(track.kf.box, growth_scale(unsure, self.growth, track.confirmed))[0]

    def lost(self) -> list[Track]:
        return [t for t in self.tracks if not t.matched]


def filled_detections(boxes: list[np.ndarray], ids: list[int], classes: list[int]) -> Detections:
    """Filled-in boxes as Detections: score 0 marks "not seen by the detector in this frame"."""
    if not boxes:
        return Detections.empty()
    return Detections(
        np.array(boxes, np.float32), score=np.zeros(len(boxes)), class_id=classes, track_id=ids
    )


def in_frame(dets: Detections, width: int, height: int) -> Detections:
    """Boxes clipped to the frame; those wholly outside it dropped."""
    clipped = dets.clipped(width, height)
    return clipped[clipped.area > 0]


class OnlineTracker:
    """Temporal filter for live sources: releases every frame at once (no look-ahead)."""

    def __init__(
        self,
        threshold: float,
        fps: float,
        hold: float = 0.5,
        growth: float = 1.0,
        scene_cut_threshold: float = 0.4,
    ) -> None:
        self.hold = hold
        self.growth = growth
        self.tracker = Tracker(
            threshold, usable_fps(fps), growth, max_lost_seconds=max(hold, REID_SECONDS)
        )
        self.cuts = SceneCutDetector(scene_cut_threshold)

    def push(self, frame: Frame, detections: Detections) -> list[tuple[int, Detections]]:
        if self.cuts.is_cut(frame):
            self.tracker.reset()
        seen, support = self.tracker.step(frame.index, frame.time, detections)
        boxes, ids, classes = [], [], []
        for track in self.tracker.lost():
            if frame.time - track.last_time > self.hold:
                continue
            boxes.append(self.tracker.predicted_box(track, frame.time))
            ids.append(track.id)
            classes.append(track.class_id)
        held = in_frame(
            Detections.merge([support, filled_detections(boxes, ids, classes)]),
            frame.width,
            frame.height,
        )
        return [(frame.index, Detections.merge([seen, held]))]

    def flush(self) -> list[tuple[int, Detections]]:
        return []
