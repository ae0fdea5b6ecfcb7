"""Corrections to detections: a drawn box follows the face; tracks are moved, deleted, shown."""

from __future__ import annotations

import pytest

from veil.editing import add_box, delete_track, move_box, nearest_track, set_hidden, track_marks
from veil.errors import InputError
from veil.io.frame_access import FrameReader

from media import ASTRONAUT_FACE, panning_frames, write_video

STEP = 3


@pytest.fixture(scope="module")
def pan(tmp_path_factory, astronaut):
    """The astronaut moving STEP px right per frame, then 8 frames of a grey wall (she left)."""
    frames = panning_frames(astronaut, 24, step=STEP)
    frames += [frames[0] * 0 + 128] * 8
    return write_video(tmp_path_factory.mktemp("ed") / "pan.mp4", frames, fps=10)


def face_at(frame: int) -> list[float]:
    x1, y1, x2, y2 = ASTRONAUT_FACE
    return [x1 + STEP * frame, y1, x2 + STEP * frame, y2]


def test_a_box_drawn_on_one_frame_follows_the_face_both_ways_until_it_leaves(pan):
    with FrameReader(pan) as reader:
        rows, track = add_box([], reader, 12, face_at(12))
    assert track == 0
    assert [r["frame"] for r in rows] == list(range(24))  # not onto the wall
    for r in rows:
        assert abs(r["x1"] - face_at(r["frame"])[0]) <= 2, r
        assert r["score"] == 0.0


def test_a_box_overlapping_a_track_joins_it_and_stops_at_its_own_boxes(pan):
    detected = [
        {"frame": f, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "track_id": 4, "score": 0.9}
        for f in range(10, 20)
        for b in [face_at(f)]
    ]
    with FrameReader(pan) as reader:
        rows, track = add_box(detected, reader, 9, face_at(9))
    assert track == 4
    frames = sorted(r["frame"] for r in rows)
    assert frames == list(range(20))  # followed back to 0, not over frames 10..19 again
    assert sum(r["score"] == 0.9 for r in rows) == 10


def test_a_box_far_from_every_track_starts_a_new_one():
    rows = [{"frame": 3, "x1": 0, "y1": 0, "x2": 20, "y2": 20, "track_id": 2}]
    assert nearest_track(rows, 3, [100, 100, 150, 150]) is None
    assert nearest_track(rows, 4, [2, 2, 20, 20]) == 2
    assert nearest_track(rows, 9, [2, 2, 20, 20]) is None


def test_move_delete_and_do_not_hide():
    rows = [
        {"frame": f, "x1": 0, "y1": 0, "x2": 20, "y2": 20, "track_id": t, "score": 0.5}
        for f in range(3)
        for t in (1, 2)
    ]
    moved = move_box(rows, 1, 2, [5, 5, 30, 40])
    assert [(r["x2"], r["y2"]) for r in moved if r["frame"] == 1 and r["track_id"] == 2] == [
        (30, 40)
    ]
    assert delete_track(rows, 1) == [r for r in rows if r["track_id"] == 2]
    shown = set_hidden(rows, 2, False)
    marks = {m["track_id"]: m for m in track_marks(shown)}
    assert marks[2]["hide"] is False
    assert marks[1]["hide"] is True
    assert track_marks(set_hidden(shown, 2, True))[1]["hide"] is True
    with pytest.raises(InputError, match="no track 7"):
        delete_track(rows, 7)
    with pytest.raises(InputError, match="no box on frame 5"):
        move_box(rows, 5, 1, [0, 0, 9, 9])


def test_timeline_marks_say_where_a_track_was_only_filled_in():
    rows = [
        {"frame": f, "x1": 0, "y1": 0, "x2": 20, "y2": 20, "track_id": 0, "score": s}
        for f, s in [(2, 0.9), (3, 0.0), (4, 0.8)]
    ]
    assert track_marks(rows) == [{"track_id": 0, "start": 2, "end": 4, "filled": [3], "hide": True}]
