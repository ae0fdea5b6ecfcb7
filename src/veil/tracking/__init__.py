"""Detections over time.

A temporal filter sits between detection and anonymization. It receives every
frame's detections in order and releases (index, detections) pairs, possibly
later and with boxes added or changed, always in frame order. The pipeline holds
each frame's pixels until its index is released, so a filter that looks ahead
costs memory only for the frames it holds back.

Modes: 'none' hides each frame's own detections only; 'online' tracks frame to
frame and holds a lost face for `hold` seconds (what live sources always get,
as they cannot look ahead); 'both' (the default for files) also looks
`lookahead` seconds ahead, interpolates across gaps and extends tracks by
`extend` frames at both ends (gapfill.py). Boxes a filter adds have score 0
("not seen by the detector in this frame") and the track's id.

Filters receive the detector's output down to `low_threshold`: detections under
the user's threshold are kept only where they continue a tracked face.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from ..detections import Detections
from ..detectors.base import DetectorOptions
from ..errors import OptionError
from ..frame import Frame

MODES = ("none", "online", "both")


@dataclass(frozen=True)
class TrackingOptions:
    """How detections are carried across frames.

    hold: seconds a lost face stays hidden at its predicted place (online).
    lookahead: seconds of later frames used to fill gaps (files; bounds memory).
    extend: frames hidden before a track's first and after its last detection (files).
    scene_cut_threshold: colour histogram distance (0..1) that marks a hard cut; 1 disables.
    low_threshold: weakest score still used to continue a track.
    growth: how fast an unseen face's box grows, in box sizes per second.
    """

    mode: str = "both"
    hold: float = 0.5
    lookahead: float = 1.0
    extend: int = 6
    scene_cut_threshold: float = 0.4
    low_threshold: float = 0.1
    growth: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(
                f"unknown tracking mode '{self.mode}'; choose one of: {', '.join(MODES)}"
            )
        if not self.hold >= 0:
            raise OptionError("--hold must be 0 or more seconds")
        if not self.lookahead > 0:
            raise OptionError("--lookahead must be more than 0 seconds")
        if self.extend < 0:
            raise OptionError("--extend must be 0 or more frames")
        if not 0 < self.scene_cut_threshold:
            raise OptionError(
                "--scene-cut-threshold must be more than 0 (1 disables cut detection)"
            )
        if not 0 <= self.low_threshold <= 1:
            raise OptionError("--low-threshold must be between 0 and 1")
        if not self.growth >= 0:
            raise OptionError("--growth must be 0 or more")


class TemporalFilter(Protocol):
    def push(self, frame: Frame, detections: Detections) -> list[tuple[int, Detections]]:
        """Take one frame's detections; return what can be released now, in order."""

    def flush(self) -> list[tuple[int, Detections]]:
        """Release everything still held (end of input)."""


class PassThrough:
    """No temporal processing: each frame is released as soon as it is detected,
    with detections under the threshold dropped."""

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = threshold

    def push(self, frame: Frame, detections: Detections) -> list[tuple[int, Detections]]:
        return [(frame.index, detections[detections.score >= self.threshold])]

    def flush(self) -> list[tuple[int, Detections]]:
        return []


def detection_threshold(options: TrackingOptions, threshold: float) -> float:
    """The score the detector should run at: lower when a tracker can use weak detections."""
    return threshold if options.mode == "none" else min(threshold, options.low_threshold)


def detector_options(options: TrackingOptions, detector: DetectorOptions) -> DetectorOptions:
    """The options a detector should run with for this tracking: the user's, at the
    detection threshold above. Front ends pass them to detectors.detector_for, so every
    job with the same settings shares one detector."""
    return replace(detector, threshold=detection_threshold(options, detector.threshold))


def create_filter(
    options: TrackingOptions, fps: float, live: bool = False, threshold: float = 0.0
) -> TemporalFilter:
    """The temporal filter for a source: live sources cannot look ahead, files can.

    threshold: the user's detection threshold; weaker detections handed in are
    only used to continue tracks.
    """
    if options.mode == "none":
        return PassThrough(threshold)
    if live or options.mode == "online":
        from .tracker import OnlineTracker

        return OnlineTracker(
            threshold,
            fps,
            hold=options.hold,
            growth=options.growth,
            scene_cut_threshold=options.scene_cut_threshold,
        )
    from .gapfill import GapFiller

    return GapFiller(
        threshold,
        fps,
        lookahead=options.lookahead,
        extend=options.extend,
        growth=options.growth,
        scene_cut_threshold=options.scene_cut_threshold,
    )


__all__ = [
    "MODES",
    "TrackingOptions",
    "TemporalFilter",
    "PassThrough",
    "create_filter",
    "detection_threshold",
    "detector_options",
]
