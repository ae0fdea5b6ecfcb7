"""Detections over time.

A temporal filter sits between detection and anonymization. It receives every
frame's detections in order and releases (index, detections) pairs, possibly
later and with boxes added or changed, always in frame order. The pipeline holds
each frame's pixels until its index is released, so a filter that looks ahead
costs memory only for the frames it holds back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..detections import Detections
from ..frame import Frame

MODES = ("none",)


@dataclass(frozen=True)
class TrackingOptions:
    """mode: 'none' anonymizes each frame from its own detections only."""

    mode: str = "none"


class TemporalFilter(Protocol):
    def push(self, frame: Frame, detections: Detections) -> list[tuple[int, Detections]]:
        """Take one frame's detections; return what can be released now, in order."""

    def flush(self) -> list[tuple[int, Detections]]:
        """Release everything still held (end of input)."""


class PassThrough:
    """No temporal processing: each frame is released as soon as it is detected."""

    def push(self, frame: Frame, detections: Detections) -> list[tuple[int, Detections]]:
        return [(frame.index, detections)]

    def flush(self) -> list[tuple[int, Detections]]:
        return []


def create_filter(options: TrackingOptions, fps: float, live: bool = False) -> TemporalFilter:
    """The temporal filter for a source: live sources cannot look ahead, files can."""
    return PassThrough()
