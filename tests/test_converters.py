"""Detections from pose keypoints, supervision and ultralytics-shaped results; masks kept."""

from types import SimpleNamespace

import numpy as np
import pytest

import veil
from veil.converters import from_keypoints, from_supervision, from_ultralytics
from veil.detections import FACE, PERSON, Detections
from veil.hide import draw


def test_from_keypoints_boxes_the_head():
    # Two people in COCO order: nose, l-eye, r-eye, l-ear, r-ear, then a shoulder.
    kp = np.array(
        [
            [[100, 100], [90, 90], [110, 90], [80, 95], [120, 95], [60, 160]],
            [[300, 300], [290, 290], [0, 0], [0, 0], [0, 0], [250, 380]],
        ],
        np.float32,
    )
    conf = np.array([[0.9, 0.9, 0.9, 0.8, 0.8, 0.9], [0.9, 0.2, 0.9, 0.9, 0.9, 0.9]], np.float32)
    dets = from_keypoints(kp, conf, padding=0.5, min_score=0.3)
    assert len(dets) == 1  # the second has only its nose above min_score: no size, no box
    x1, y1, x2, y2 = dets.xyxy[0]
    assert (x1, x2) == (60.0, 140.0)  # ear-to-ear 40 px, plus 0.5 x 40 on each side
    assert (y1 + y2) / 2 == pytest.approx(95.0)
    assert dets.class_id[0] == FACE
    assert 0.8 < dets.score[0] <= 0.9
    xyc = np.concatenate([kp, conf[:, :, None]], axis=2)
    assert from_keypoints(xyc, None, padding=0.5) == dets
    per_person = from_keypoints(kp[:1], np.array([0.5]), indices=(1, 2))
    assert per_person.score[0] == pytest.approx(0.5)


def test_from_supervision_keeps_tracks_and_masks():
    sv = pytest.importorskip("supervision")
    mask = np.zeros((2, 40, 60), bool)
    mask[0, 5:10, 5:10] = True
    sv_dets = sv.Detections(
        xyxy=np.array([[5, 5, 10, 10], [20, 20, 30, 35]], float),
        confidence=np.array([0.9, 0.4]),
        class_id=np.array([1, 0]),
        tracker_id=np.array([7, 8]),
        mask=mask,
    )
    dets = from_supervision(sv_dets)
    assert dets.track_id.tolist() == [7, 8]
    assert dets.class_id.tolist() == [1, 0]
    assert np.allclose(dets.score, [0.9, 0.4])
    assert dets.mask.shape == (2, 40, 60)
    plain = from_supervision(sv.Detections(xyxy=np.array([[1, 2, 3, 4]], float)))
    assert plain.track_id.tolist() == [-1]
    assert plain.mask is None


class FakeTensor:
    """Stands in for a torch tensor: ultralytics results hand out tensors with .cpu().numpy()."""

    def __init__(self, array):
        self.array = np.asarray(array)

    def cpu(self):
        return self

    def numpy(self):
        return self.array


def test_from_ultralytics_maps_classes_and_reads_tensors():
    boxes = SimpleNamespace(
        xyxy=FakeTensor([[10, 20, 50, 120], [0, 0, 5, 5]]),
        conf=FakeTensor([0.8, 0.3]),
        cls=FakeTensor([0.0, 2.0]),
        id=FakeTensor([3.0, 4.0]),
    )
    masks = SimpleNamespace(data=FakeTensor(np.ones((2, 130, 60), np.float32)))
    result = SimpleNamespace(boxes=boxes, masks=masks, orig_shape=(130, 60))
    dets = from_ultralytics(result, class_map={0: PERSON})
    assert dets.class_id.tolist() == [PERSON, 2]
    assert dets.track_id.tolist() == [3, 4]
    assert dets.mask is not None
    assert dets.mask.all()
    small_masks = SimpleNamespace(
        boxes=boxes,
        masks=SimpleNamespace(data=FakeTensor(np.ones((2, 32, 32)))),
        orig_shape=(130, 60),
    )
    assert from_ultralytics(small_masks).mask is None


def test_mask_survives_indexing_and_merge():
    mask = np.zeros((2, 8, 8), bool)
    mask[1, 2:4, 2:4] = True
    with_mask = Detections([[0, 0, 4, 4], [2, 2, 4, 4]], class_id=[PERSON, PERSON], mask=mask)
    assert with_mask[1].mask.shape == (1, 8, 8)
    assert with_mask[1].mask.any()
    faces = Detections([[1, 1, 3, 3]])
    merged = Detections.merge([faces, with_mask])
    assert merged.mask.shape == (3, 8, 8)
    assert not merged.mask[0].any()
    assert merged.mask[2].any()
    assert Detections.merge([faces, faces]).mask is None


def test_api_anonymize_and_annotate(astronaut):
    dets = Detections([[170, 40, 285, 200]], score=[0.87], track_id=[5])
    out = veil.anonymize(astronaut, dets, method="pixelate", shape="rect", padding=1.0)
    assert not np.array_equal(out[50:190, 180:275], astronaut[50:190, 180:275])
    assert np.array_equal(out[300:], astronaut[300:])
    labelled = veil.annotate(out, dets)
    assert (
        (labelled != out).any(axis=2)[25:45, 165:300].any()
    )  # the '#5 face 0.87' label above the box
    assert np.array_equal(labelled, draw(out.copy(), dets))
    renamed = veil.annotate(out, dets.with_(class_id=np.array([7])), names={7: "helmet"})
    assert not np.array_equal(renamed, labelled)  # the label text differs
