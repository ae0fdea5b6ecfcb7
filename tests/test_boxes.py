"""Box geometry on plain arrays (veil.boxes)."""

import subprocess
import sys

import numpy as np
import pytest

from veil.boxes import (
    as_boxes,
    box_area,
    box_centre,
    box_iou,
    clip_box,
    cxcywh_to_xyxy,
    grow_box,
    longer_side,
    max_iou,
    nms,
    overlapping_pairs,
    scale_box,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
)

from media import ENV

BOXES = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]], np.float32)


def test_iou_of_same_half_overlapping_and_apart_boxes():
    iou = box_iou(BOXES, BOXES)
    assert iou.shape == (4, 4)
    assert iou[0, 1] == pytest.approx(1.0)
    assert iou[0, 2] == pytest.approx(1 / 3)  # 50 shared of 150 covered
    assert iou[0, 3] == 0
    assert np.allclose(iou, iou.T)


def test_iou_of_empty_sets_and_degenerate_boxes():
    assert box_iou(np.zeros((0, 4)), BOXES).shape == (0, 4)
    assert box_iou(BOXES, []).shape == (4, 0)
    point = [[3, 3, 3, 3]]
    assert box_iou(point, point)[0, 0] == 0  # no area, no overlap (and no division by zero)


def test_nms_keeps_the_best_of_each_overlapping_group():
    keep = nms(BOXES, np.array([0.9, 0.8, 0.7, 0.6]), 0.4)
    assert keep.tolist() == [0, 2, 3]
    assert nms(BOXES, np.array([0.6, 0.8, 0.7, 0.9]), 0.4).tolist() == [3, 1, 2]
    assert nms(BOXES, np.array([0.9, 0.8, 0.7, 0.6]), 0.3).tolist() == [0, 3]  # IoU 1/3 >= 0.3
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def greedy_nms(boxes, scores, threshold):
    """The definition, one kept box at a time through box_iou."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        keep.append(int(order[0]))
        order = order[1:][box_iou(boxes[order[:1]], boxes[order[1:]])[0] < threshold]
    return keep


def heat_map_candidates(rng, faces, per_face):
    """What a heat map gives: clusters of near-identical boxes around each face, rounded
    scores (many ties), and two degenerate boxes."""
    centres = rng.uniform(0, 1900, (faces, 2))
    sizes = rng.uniform(6, 200 if faces < 10 else 60, faces)
    parts = []
    for (cx, cy), side in zip(centres, sizes):
        jitter = rng.normal(0, side / 8, (per_face, 4))
        parts.append(
            np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]) + jitter
        )
    boxes = np.concatenate([*parts, np.array([[5, 5, 5, 9], [7, 7, 3, 3]])]).astype(np.float32)
    return boxes, np.round(rng.uniform(0.03, 1, len(boxes)), 2)


@pytest.mark.parametrize(
    "faces, per_face, kept",
    [(300, 8, (250, 2400)), (3, 100, (3, 60)), (1, 300, (1, 30)), (12, 40, (12, 200))],
)
def test_nms_matches_the_greedy_definition(faces, per_face, kept):
    """A crowd (past GREEDY_STEPS, so both methods run), a few faces (one at a time only) and
    a frame between the two: nms keeps exactly what the definition keeps."""
    boxes, scores = heat_map_candidates(np.random.default_rng(faces), faces, per_face)
    for threshold in (0.3, 0.5):
        keep = nms(boxes, scores, threshold).tolist()
        assert keep == greedy_nms(boxes, scores, threshold)
        assert kept[0] <= len(keep) < kept[1]


def test_nms_keeps_input_order_among_equal_scores():
    assert nms(BOXES, np.ones(4), 0.99).tolist() == [0, 2, 3]


def crowd(rng, n, spread=400.0, largest=60.0):
    """Boxes of many sizes, some repeated, some with no area or inverted."""
    corners = rng.uniform(0, spread, (n, 2))
    sizes = rng.uniform(0, largest, (n, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=1)
    if n >= 10:
        boxes[: n // 10] = boxes[n // 10 : 2 * (n // 10)]  # repeats
        boxes[-3:] = [[5, 5, 5, 9], [7, 7, 3, 3], [0, 0, spread, spread]]
    return np.round(boxes / 4) * 4  # on a grid: shared edges, boxes that only touch


def spans_overlap(a, b):
    return (
        (a[:, None, 0] < b[None, :, 2])
        & (b[None, :, 0] < a[:, None, 2])
        & (a[:, None, 1] < b[None, :, 3])
        & (b[None, :, 1] < a[:, None, 3])
    )


def test_overlapping_pairs_are_every_pair_whose_spans_overlap():
    rng = np.random.default_rng(11)
    for n, m in [(0, 5), (5, 0), (1, 1), (60, 40), (300, 200)]:
        a, b = crowd(rng, n), crowd(rng, m)
        i, j = overlapping_pairs(a, b)
        assert sorted(zip(i.tolist(), j.tolist())) == list(zip(*np.nonzero(spans_overlap(a, b))))
        i, j = overlapping_pairs(a)
        inside = np.triu(spans_overlap(a, a), 1)
        assert sorted(zip(i.tolist(), j.tolist())) == list(zip(*np.nonzero(inside)))


def test_max_iou_is_the_row_maximum_of_the_iou_matrix():
    rng = np.random.default_rng(12)
    for n, m in [(0, 3), (4, 0), (200, 150)]:
        a, b = crowd(rng, n).astype(np.float32), crowd(rng, m).astype(np.float32)
        assert np.array_equal(max_iou(a, b), box_iou(a, b).max(axis=1, initial=0.0))


def test_areas_centres_and_sides():
    boxes = [[0, 0, 10, 20], [5, 5, 4, 9]]  # the second is inverted
    assert box_area(boxes).tolist() == [200, 0]
    assert box_centre(boxes).tolist() == [[5, 10], [4.5, 7]]
    assert longer_side([[0, 0, 10, 20], [0, 0, 30, 5]]).tolist() == [20, 30]


def test_scale_grows_about_the_centre():
    grown = scale_box([[10, 10, 30, 50]], 1.5)
    assert grown.tolist() == [[5, 0, 35, 60]]
    assert np.allclose(box_centre(grown), box_centre([[10, 10, 30, 50]]))
    assert scale_box(BOXES, 1.0).tolist() == BOXES.tolist()
    assert scale_box([], 2.0).shape == (0, 4)


def test_clip_keeps_boxes_in_the_frame_and_leaves_the_input_alone():
    boxes = np.array([[-5, -5, 20, 20], [90, 40, 120, 70]], np.float32)
    clipped = clip_box(boxes, 100, 50)
    assert clipped.tolist() == [[0, 0, 20, 20], [90, 40, 100, 50]]
    assert boxes[0, 0] == -5


def test_centre_size_conversions_round_trip():
    xyxy = np.array([[10, 20, 50, 100], [0, 0, 1, 1]], np.float64)
    cxcywh = xyxy_to_cxcywh(xyxy)
    assert cxcywh.tolist() == [[30, 60, 40, 80], [0.5, 0.5, 1, 1]]
    assert cxcywh.dtype == np.float64  # a Kalman state keeps its precision
    assert cxcywh_to_xyxy(cxcywh).tolist() == xyxy.tolist()
    assert xyxy_to_cxcywh([[1, 2, 3, 4]]).dtype == np.float32


def test_opencv_rectangles_become_corners():
    assert xywh_to_xyxy([[10, 20, 30, 40]]).tolist() == [[10, 20, 40, 60]]


def test_one_box_or_a_list_reads_as_n_by_4():
    assert as_boxes([1, 2, 3, 4]).shape == (1, 4)
    assert as_boxes([]).shape == (0, 4)
    assert as_boxes([[1, 2, 3, 4]]).dtype == np.float32


def test_geometry_imports_no_value_type():
    """Every room imports boxes.py, so it must not pull in Detections (or anything of veil's)."""
    code = "import sys, veil.boxes; print(sorted(m for m in sys.modules if m.startswith('veil.')))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['veil.boxes']"


def test_grow_box_moves_each_side_out_as_deface_does():
    # deface's scale_bb at 1.3: each side out by 0.3 x the box's width or height.
    grown = grow_box(np.array([[100, 50, 140, 110]]), 1.3)
    assert grown[0].tolist() == pytest.approx([88, 32, 152, 128])


def test_grow_box_at_one_is_the_box():
    assert grow_box(BOXES, 1.0).tolist() == BOXES.tolist()
