import cv2
import numpy as np
import pytest

from veil.boxes import box_iou
from veil.detections import Detections
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.base import QUALITIES
from veil.detectors.presets import PresetDetector
from veil.errors import OptionError

ASTRONAUT_TIGHT = np.array([178, 55, 272, 182], np.float32)


@pytest.fixture(scope="module")
def detectors():
    return {q: create_detector(DetectorOptions(quality=q, threads=2)) for q in QUALITIES}


def small_face_canvas(astronaut, side=64, at=(500, 600)):
    """The astronaut shrunk to side x side px (face about side/4 px tall) on a plain canvas."""
    canvas = np.full((1280, 1280, 3), (90, 110, 100), np.uint8)
    x, y = at
    canvas[y : y + side, x : x + side] = cv2.resize(
        astronaut, (side, side), interpolation=cv2.INTER_AREA
    )
    box = ASTRONAUT_TIGHT * side / 512 + np.array([x, y, x, y], np.float32)
    return canvas, box


def best_iou(box, dets):
    return float(box_iou(box[None], dets.xyxy)[0].max()) if len(dets) else 0.0


@pytest.mark.parametrize("quality", QUALITIES)
def test_presets_give_valid_detections(detectors, astronaut, quality):
    dets = detectors[quality].detect([astronaut, astronaut[:, ::-1].copy()])
    assert len(dets) == 2
    assert all(isinstance(d, Detections) for d in dets)
    for d in dets:
        h, w = astronaut.shape[:2]
        assert len(d) >= 1
        assert np.all(d.score >= 0.2)
        assert np.all(d.xyxy[:, :2] >= 0)
        assert np.all(d.xyxy[:, 2] <= w)
        assert np.all(d.xyxy[:, 3] <= h)
        assert np.all(d.xyxy[:, 2:] > d.xyxy[:, :2])
    assert best_iou(ASTRONAUT_TIGHT, dets[0]) > 0.7
    mirrored = ASTRONAUT_TIGHT[[2, 1, 0, 3]] * np.array([-1, 1, -1, 1]) + np.array([512, 0, 512, 0])
    assert best_iou(mirrored.astype(np.float32), dets[1]) > 0.7


def test_max_finds_a_small_face_fast_misses(detectors, astronaut):
    canvas, box = small_face_canvas(astronaut)
    assert box[3] - box[1] < 17
    assert best_iou(box, detectors["fast"].detect([canvas])[0]) < 0.3
    found = detectors["max"].detect([canvas])[0]
    assert best_iou(box, found) >= 0.5


def test_max_keeps_landmarks_on_the_face(detectors, astronaut):
    dets = detectors["max"].detect([astronaut])[0]
    best = int(np.argmax(box_iou(ASTRONAUT_TIGHT[None], dets.xyxy)[0]))
    lm = dets.landmarks[best]
    x1, y1, x2, y2 = dets.xyxy[best]
    assert np.all((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2))
    assert lm[0, 0] < lm[1, 0]  # the image's left eye stays left after mirroring back


def test_unknown_quality_is_a_user_error():
    with pytest.raises(OptionError, match="quality"):
        PresetDetector(DetectorOptions(quality="ultra"))
