import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from veil.detections import Detections

from media import ENV


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


def test_from_array_reads_boxes_and_optional_scores():
    d = Detections.from_array(np.array([[1, 2, 30, 40, 0.8]], np.float32))
    assert d.xyxy.tolist() == [[1, 2, 30, 40]]
    assert d.score.tolist() == pytest.approx([0.8])
    assert Detections.from_array([[1, 2, 30, 40]]).score.tolist() == [1.0]
    assert len(Detections.from_array(np.zeros((0, 5)))) == 0
    with pytest.raises(ValueError):
        Detections.from_array(np.zeros((2, 3)))


def test_value_type_does_not_import_its_converters():
    """converters.py builds Detections from other libraries' results; the dependency is one-way."""
    code = "import sys, veil.detections; print('veil.converters' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
