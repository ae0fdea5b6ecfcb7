"""Corrections to a video's detections before it is published, and what follows from them.

The edited document is the json export itself (a list of box rows, io/export.py and
assets/detections.schema.json), so the command line's `--detections FILE` and the web
page's re-render read the same thing. The functions here take rows and return new rows:

- `add_box`: a box drawn on one frame joins the track it overlaps there (or on a
  neighbouring frame), or starts a new track; either way it is followed forwards and
  backwards on the original frames (follow.py) until the face leaves or the track's own
  boxes take over, so one click covers the whole appearance;
- `move_box`: replace one track's box on one frame;
- `delete_track`: a false detection goes with its whole track;
- `set_hidden`: mark a track "do not hide" (someone who consented), or hide it again.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..boxes import box_iou
from ..errors import InputError
from ..io.frame_access import FrameReader
from .follow import follow

Row = dict[str, Any]
JOIN_IOU = 0.3  # overlap with a track's box that makes a drawn box part of that track
JOIN_FRAMES = 2  # how far (in frames) a track's box may be from the drawn one and still join


def _row(frame: int, time: float, box: np.ndarray | list[float], track: int) -> Row:
    x1, y1, x2, y2 = (round(float(v), 2) for v in box)
    return {
        "time_ms": round(time * 1000, 3),
        "frame": frame,
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "score": 0.0,
        "class": "face",
        "track_id": track,
    }


def nearest_track(rows: list[Row], frame: int, box: list[float]) -> int | None:
    """The track whose box overlaps `box` most on `frame` or the frames next to it."""
    near = [
        r for r in rows if r.get("track_id", -1) >= 0 and abs(r["frame"] - frame) <= JOIN_FRAMES
    ]
    if not near:
        return None
    boxes = np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in near], np.float32)
    overlap = box_iou(np.array([box], np.float32), boxes)[0]
    # On a tie in overlap the box on the drawn frame itself wins.
    best = max(range(len(near)), key=lambda i: (overlap[i], -abs(near[i]["frame"] - frame)))
    return int(near[best]["track_id"]) if overlap[best] >= JOIN_IOU else None


def add_box(
    rows: list[Row], reader: FrameReader, frame: int, box: list[float]
) -> tuple[list[Row], int]:
    """rows with `box` added on `frame` and followed both ways; returns them and the track id."""
    if not 0 <= frame < reader.count:
        raise InputError(f"no frame {frame}: the video has {reader.count} frames")
    track = nearest_track(rows, frame, box)
    if track is None:
        track = max((int(r.get("track_id", -1)) for r in rows), default=-1) + 1
    own = {r["frame"] for r in rows if r.get("track_id", -1) == track}
    shown = any(r.get("hide") is False for r in rows if r.get("track_id", -1) == track)
    start = reader.frame(frame)
    added = [_row(frame, start.time, box, track)]
    for step in (1, -1):
        for found in follow(start.image, box, reader.walk(frame, step)):
            if found.index in own:
                break  # the track's own boxes take over from here
            added.append(_row(found.index, found.time, found.box, track))
    if shown:
        for r in added:
            r["hide"] = False
    kept = [r for r in rows if not (r.get("track_id", -1) == track and r["frame"] == frame)]
    return sorted(kept + added, key=lambda r: (r["frame"], r.get("track_id", -1))), track


def move_box(rows: list[Row], frame: int, track: int, box: list[float]) -> list[Row]:
    """rows with track `track`'s box on `frame` moved or resized to `box`."""
    out, moved = [], False
    for r in rows:
        if r["frame"] == frame and r.get("track_id", -1) == track and not moved:
            x1, y1, x2, y2 = (round(float(v), 2) for v in box)
            r = {**r, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
            moved = True
        out.append(r)
    if not moved:
        raise InputError(f"track {track} has no box on frame {frame}")
    return out


def delete_track(rows: list[Row], track: int) -> list[Row]:
    """rows without track `track` (every frame of it)."""
    out = [r for r in rows if r.get("track_id", -1) != track]
    if len(out) == len(rows):
        raise InputError(f"there is no track {track}")
    return out


def set_hidden(rows: list[Row], track: int, hide: bool) -> list[Row]:
    """rows with track `track` marked hidden (the default) or "do not hide"."""
    if not any(r.get("track_id", -1) == track for r in rows):
        raise InputError(f"there is no track {track}")
    out = []
    for r in rows:
        if r.get("track_id", -1) == track:
            r = {k: v for k, v in r.items() if k != "hide"}
            if not hide:
                r["hide"] = False
        out.append(r)
    return out


def track_marks(rows: list[Row]) -> list[dict[str, Any]]:
    """Per track: first and last frame, frames only filled in (score 0), and whether it is hidden.

    The review page puts these on its timeline.
    """
    tracks: dict[int, list[Row]] = {}
    for r in rows:
        if r.get("track_id", -1) >= 0:
            tracks.setdefault(int(r["track_id"]), []).append(r)
    marks = []
    for track, boxes in sorted(tracks.items()):
        frames = sorted(r["frame"] for r in boxes)
        marks.append(
            {
                "track_id": track,
                "start": frames[0],
                "end": frames[-1],
                "filled": sorted(r["frame"] for r in boxes if r.get("score", 0) <= 0),
                "hide": all(r.get("hide", True) for r in boxes),
            }
        )
    return marks


__all__ = ["add_box", "move_box", "delete_track", "set_hidden", "nearest_track", "track_marks"]
