"""The live source's clock: stream time across outages (the loopback runs are in
tests/test_livestream.py)."""

from __future__ import annotations

import pytest

from veil.io.live_source import ARRIVAL_WINDOW, ArrivalClock

START = 1000.0  # any monotonic clock reading


def on_time(clock: ArrivalClock, seconds: float, fps: int = 25, lag: float = 0.0) -> float:
    """Frames for `seconds` of stream time, each leaving the decoder `lag` s after it was sent."""
    for i in range(round(seconds * fps) + 1):
        clock.add(i / fps, START + i / fps + lag)
    return seconds


def test_late_last_frames_do_not_shorten_an_outage():
    clock = ArrivalClock()
    last = on_time(clock, 2.0)
    clock.add(
        last + 0.04, START + last + 0.04 + 3.0
    )  # held by the demuxer until the read timed out
    assert clock.time(START + last + 10.0) == pytest.approx(last + 10.0)


def test_a_reader_that_fell_behind_does_not_shorten_an_outage():
    clock = ArrivalClock()
    for i in range(100):  # 4 s of frames, decoded ever later: 2 s behind at the end
        clock.add(i / 25, START + i / 25 * 1.5)
    assert clock.time(START + 3.96 + 10.0) == pytest.approx(3.96 + 10.0)


def test_the_mapping_follows_a_drifting_sender_clock():
    clock = ArrivalClock()
    # the sender's clock runs 1 % slow: frames arrive ever later by the stream's own time
    for i in range(round(3 * ARRIVAL_WINDOW * 25)):
        clock.add(i / 25, START + i / 25 * 1.01)
    end = (round(3 * ARRIVAL_WINDOW * 25) - 1) / 25
    gap = clock.time(START + end * 1.01 + 5.0) - end
    assert gap == pytest.approx(5.0, abs=0.01 * ARRIVAL_WINDOW + 0.05)
