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
from functools import partial
from typing import Protocol

from ..detections import Detections
from ..detectors.base import DetectorOptions
from ..frame import Frame
from ..options import TRACK, check, option

MODES = ("none", "online", "both")


tracking = partial(option, group="tracking and review (videos)", commands=TRACK)
# Looking ahead needs a file: a live stream's frames cannot wait for later ones.
LOOK_AHEAD = ("main", "batch", "eval")


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

    mode: str = tracking(
        "both",
        "--tracking",
        choices=MODES,
        help="how faces are followed across frames so a missed detection does not leak: "
        "none (each frame alone), online (hold lost faces, what live streams use), "
        "both (also look ahead, fill gaps and extend tracks; files only; default %(default)s)",
    )
    hold: float = tracking(
        0.5,
        "--hold",
        ge=0,
        metavar="SECONDS",
        help="online: keep hiding a lost face at its predicted place this long "
        "(default %(default)s)",
    )
    lookahead: float = tracking(
        1.0,
        "--lookahead",
        commands=LOOK_AHEAD,
        gt=0,
        metavar="SECONDS",
        help="both: fill gaps up to this long using later frames; holds that many frames "
        "in memory (default %(default)s)",
    )
    extend: int = tracking(
        6,
        "--extend",
        commands=LOOK_AHEAD,
        ge=0,
        metavar="FRAMES",
        help="both: also hide a face this many frames before it is first and after it is "
        "last detected (default %(default)s)",
    )
    scene_cut_threshold: float = tracking(
        0.4,
        "--scene-cut-threshold",
        gt=0,
        metavar="X",
        help="colour change (0..1) between frames taken as a hard cut; no box is "
        "carried across a cut; 1 disables (default %(default)s)",
    )
    low_threshold: float = tracking(
        0.1,
        "--low-threshold",
        ge=0,
        le=1,
        metavar="SCORE",
        help="weakest detection score still used to continue a tracked face (default %(default)s)",
    )
    growth: float = tracking(
        1.0,
        "--growth",
        ge=0,
        metavar="X",
        help="how fast the box of a face not seen grows, in box sizes per second "
        "(default %(default)s)",
    )

    def __post_init__(self) -> None:
        check(self)


class TemporalFilter(Protocol):
    """A frame's released detections start with every detection handed in at or above the
    threshold, unchanged and in their order; anything the filter adds comes after them
    (the frame loop hides those first ones while the frame is held)."""

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
