import dataclasses

import numpy as np
import pytest

from veil.detections import Detections, box_iou, nms


def make(n=3):
    xyxy = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [100, 100, 120, 130]], np.float32)[:n]
    return Detections(xyxy, score=np.array([0.9, 0.5, 0.7])[:n], landmarks=np.zeros((n, 5, 2)))


def test_defaults_and_types():
    d = Detections(np.array([[1, 2, 3, 4]]))
    assert d.xyxy.dtype == np.float32
    assert d.score.tolist() == [1.0]
    assert d.class_id.tolist() == [0]
    assert d.track_id.tolist() == [-1]
    assert len(Detections.empty()) == 0
    assert Detections.empty().xyxy.shape == (0, 4)


def test_indexing_returns_detections():
    d = make()
    high = d[d.score > 0.6]
    assert isinstance(high, Detections)
    assert len(high) == 2
    assert high.landmarks.shape == (2, 5, 2)
    assert d[2].xyxy.tolist() == [[100, 100, 120, 130]]
    assert d[np.array([2, 0])].score.tolist() == pytest.approx([0.7, 0.9])


def test_frozen_and_equality():
    d = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.xyxy = np.zeros((1, 4))  # type: ignore[misc]
    assert d == make()
    assert d != make(2)


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), score=np.ones(3))


def test_merge_scaled_clipped_and_geometry():
    d = Detections.merge([make(2), Detections.empty(), make(3)[2]])
    assert len(d) == 3
    assert d.landmarks.shape == (3, 5, 2)
    s = d.scaled(2.0)
    assert s.xyxy[2].tolist() == [200, 200, 240, 260]
    c = s.clipped(210, 220)
    assert c.xyxy[2].tolist() == [200, 200, 210, 220]
    assert d.area[2] == 600
    assert d.center[0].tolist() == [5, 5]


def test_array_round_trip_and_records():
    arr = np.array([[1, 2, 30, 40, 0.8]], np.float32)
    d = Detections.from_array(arr)
    assert np.allclose(d.to_array(), arr)
    assert len(Detections.from_array(np.zeros((0, 5)))) == 0
    rec = d.with_(track_id=np.array([7])).to_records()[0]
    assert rec["track_id"] == 7
    assert rec["class"] == "face"
    assert rec["x2"] == 30


def test_iou_and_nms():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]], np.float32)
    iou = box_iou(boxes, boxes)
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[0, 2] == pytest.approx(1 / 3)
    assert iou[0, 3] == 0
    keep = nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.4)
    assert keep.tolist() == [0, 2, 3]
