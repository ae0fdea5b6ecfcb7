import numpy as np
import pytest

from veil.detections import Detections
from veil.evaluation.metrics import (
    ImageResult,
    agreement,
    average_precision,
    bucket_of,
    covered_fraction,
    false_boxes,
    match,
    summarize,
)

SHAPE = (400, 600)
FACES = np.array(
    [
        [10, 10, 20, 20],  # 10 px tall
        [100, 100, 120, 124],  # 24 px
        [200, 100, 240, 150],  # 50 px
        [300, 100, 400, 220],
    ],
    np.float32,
)  # 120 px


def perfect(truth=FACES):
    return ImageResult(SHAPE, truth, truth, np.linspace(0.9, 0.6, len(truth)))


def test_perfect_detector():
    s = summarize([perfect(), perfect(FACES[2:])], threshold=0.2, shape="rect", mask_scale=1.0)
    assert s["ap50"] == pytest.approx(1.0)
    assert s["recall"] == 1.0
    assert s["precision"] == 1.0
    assert s["leak_rate"] == 0.0
    assert s["faces"] == 6
    assert s["false_positives"] == 0
    assert {b: v["faces"] for b, v in s["buckets"].items()} == {
        "<16": 1,
        "16-32": 1,
        "32-64": 2,
        ">64": 2,
    }
    assert all(v["recall"] == 1.0 for v in s["buckets"].values())


def test_ap_of_a_hand_made_ranking():
    truth = FACES[2:]
    dets = np.array([truth[0], [500, 300, 540, 350], truth[1]])
    r = ImageResult(SHAPE, truth, dets, [0.9, 0.8, 0.7])
    # Ranked: TP (P=1, R=.5), FP (P=.5), TP (P=2/3, R=1): AP = .5 * 1 + .5 * 2/3.
    assert average_precision([r]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    s = summarize([r], threshold=0.75, shape="rect", mask_scale=1.0)
    assert s["recall"] == 0.5
    assert s["precision"] == 0.5
    assert s["false_positives"] == 1
    assert s["buckets"]["32-64"]["recall"] == 1.0
    assert s["buckets"][">64"]["recall"] == 0.0


def test_ignored_faces_and_duplicates():
    truth, ignore = FACES[3:], FACES[:1]
    dets = np.array([truth[0], truth[0] + 2, ignore[0]])
    r = ImageResult(SHAPE, truth, dets, [0.9, 0.8, 0.7], ignore=ignore)
    outcome, found_by = match(r)
    assert outcome.tolist() == [1, -1, 0]
    assert found_by.tolist() == [0]
    assert summarize([r], 0.2, "rect", 1.0)["precision"] == 0.5


def test_low_iou_is_a_miss_and_a_false_positive():
    truth = FACES[2:3]
    shifted = truth + np.array([25, 0, 25, 0], np.float32)  # IoU 15/65
    r = ImageResult(SHAPE, truth, shifted, [0.9])
    assert match(r)[0].tolist() == [-1]
    assert average_precision([r]) == 0.0


def test_leaks_follow_the_mask_not_the_match():
    truth = FACES[3:]
    # A box 30% off to the right still matches (IoU .54) but leaves 30% of the face visible.
    shifted = truth + np.array([30, 0, 30, 0], np.float32)
    r = ImageResult(SHAPE, truth, shifted, [0.9])
    assert match(r)[0].tolist() == [1]
    assert covered_fraction(r, 0.2, "rect", 1.0)[0] == pytest.approx(0.7, abs=0.02)
    s = summarize([r], 0.2, "rect", 1.0)
    assert s["recall"] == 1.0
    assert s["leak_rate"] == 1.0
    # Grown enough, the same box hides the whole face.
    assert summarize([r], 0.2, "rect", 1.8)["leak_rate"] == 0.0
    # An ellipse exactly on the box misses the corners (about pi/4 of the area; the hardened
    # rim adds a pixel); grown by 1.3 it covers > 90%.
    exact = ImageResult(SHAPE, truth, truth, [0.9])
    assert covered_fraction(exact, 0.2, "ellipse", 1.0)[0] == pytest.approx(np.pi / 4, abs=0.04)
    assert covered_fraction(exact, 0.2, "ellipse", 1.3)[0] > 0.9


def test_detections_below_the_operating_threshold_leak_but_count_for_ap():
    r = ImageResult(SHAPE, FACES, FACES, [0.1] * 4)
    s = summarize([r], 0.2, "rect", 1.0)
    assert s["ap50"] == pytest.approx(1.0)
    assert s["recall"] == 0.0
    assert s["leak_rate"] == 1.0
    assert s["precision"] is None


def test_incomplete_labels_hide_ap_and_precision():
    s = summarize([perfect()], 0.2, "rect", 1.0, complete_labels=False)
    assert s["ap50"] is None
    assert s["precision"] is None
    assert s["recall"] == 1.0


def test_bucket_edges():
    assert bucket_of(np.array([0, 15.9, 16, 31.9, 32, 64, 64.1])).tolist() == [
        "<16",
        "<16",
        "16-32",
        "16-32",
        "32-64",
        ">64",
        ">64",
    ]


def test_false_boxes_are_boxes_on_no_labelled_face():
    truth, ignore = FACES[2:], FACES[:1]
    dets = np.array(
        [
            truth[0],  # a face
            truth[0] + 3,  # a second, loose box on the same face: hides a face, not counted
            ignore[0],  # an ignored face is still a face
            [500, 300, 540, 350],  # a wall
        ],
        np.float32,
    )
    r = ImageResult(SHAPE, truth, dets, [0.9, 0.8, 0.7, 0.3], ignore=ignore)
    assert false_boxes(r) == 1
    assert false_boxes(r, min_score=0.5) == 0
    s = summarize([r, perfect()], 0.2, "rect", 1.0)
    assert s["false_boxes_per_image"] == pytest.approx(0.5)
    assert s["false_positives"] == 2  # matching counts the duplicate too


def test_hidden_share_grows_with_what_is_masked():
    small = summarize([perfect()], 0.2, "rect", 1.0)["hidden_share"]
    whole = ImageResult(SHAPE, FACES, np.array([[0, 0, 600, 400]]), [0.9])
    assert 0 < small < 0.1
    assert summarize([whole], 0.2, "rect", 1.0)["hidden_share"] == pytest.approx(1.0)


def test_agreement_counts_faces_one_side_misses_and_the_worst_shift_and_score():
    a = Detections(FACES[2:], score=np.array([0.9, 0.8], np.float32))
    assert agreement(a, a) == (0, 0.0, 0.0)
    moved = Detections(FACES[2:] + [0, 5, 0, 5], score=np.array([0.85, 0.8], np.float32))
    missed, shift, score = agreement(a, moved)
    assert missed == 0
    assert shift == pytest.approx(5 / 50)  # the 50 px face moved 5 px
    assert score == pytest.approx(0.05)
    # A sure face found on one side only counts once; a weak one (under `sure`) not at all.
    weak = Detections(FACES[:1], score=np.array([0.3], np.float32))
    assert agreement(a, Detections(FACES[3:], score=np.array([0.8], np.float32)))[0] == 1
    assert agreement(weak, Detections(np.zeros((0, 4)), score=np.zeros(0)))[0] == 0
    assert agreement(a, Detections(np.zeros((0, 4)), score=np.zeros(0)))[0] == 2
