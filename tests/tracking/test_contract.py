"""What every temporal filter promises the frame loop: a frame's released detections start
with the confident ones handed in, unchanged and in their order (the loop hides those while
the frame waits for the look-ahead)."""

import numpy as np
import pytest

from veil.detections import Detections
from veil.frame import Frame
from veil.tracking import PassThrough
from veil.tracking.gapfill import GapFiller
from veil.tracking.tracker import OnlineTracker

THRESHOLD = 0.5


def crowd_frames(rng, n=40):
    """Faces drifting across a frame, some flickering under the threshold or missing."""
    start = rng.uniform(0, 500, (30, 2))
    speed = rng.normal(0, 3, (30, 2))
    side = rng.uniform(10, 40, 30)
    frames = []
    for i in range(n):
        seen = rng.random(30) < 0.8
        centre = start[seen] + speed[seen] * i + rng.normal(0, 1, (seen.sum(), 2))
        half = side[seen, None] / 2
        score = rng.uniform(0.15, 1.0, seen.sum())
        frames.append(Detections(np.hstack([centre - half, centre + half]), score=score))
    return frames


@pytest.mark.parametrize(
    "make",
    [
        lambda: PassThrough(THRESHOLD),
        lambda: OnlineTracker(THRESHOLD, 25.0),
        lambda: GapFiller(THRESHOLD, 25.0, lookahead=0.4),
    ],
    ids=["none", "online", "both"],
)
def test_released_detections_start_with_the_confident_ones_handed_in(make):
    rng = np.random.default_rng(9)
    image = np.zeros((600, 600, 3), np.uint8)
    filt = make()
    handed, released = {}, []
    for i, dets in enumerate(crowd_frames(rng)):
        handed[i] = dets[dets.score >= THRESHOLD]
        released += filt.push(Frame(i, i / 25, image), dets)
    released += filt.flush()
    assert [index for index, _ in released] == list(range(len(handed)))
    for index, final in released:
        sure = handed[index]
        assert np.array_equal(final.xyxy[: len(sure)], sure.xyxy), index
        assert np.array_equal(final.score[: len(sure)], sure.score), index
