import subprocess
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment

from veil.boxes import box_area, box_centre, box_iou, longer_side
from veil.tracking.association import UNMATCHABLE, assign, cost_matrix, min_cost_matching


def _scipy_reference(cost: np.ndarray) -> tuple[int, float]:
    rows, cols = linear_sum_assignment(cost)
    real = cost[rows, cols] < UNMATCHABLE
    return int(real.sum()), float(cost[rows, cols][real].sum())


def test_grouped_matching_equals_one_solve_of_the_whole_matrix():
    rng = np.random.default_rng(0)
    for trial in range(300):
        t, d = rng.integers(0, 9, size=2)
        cost = rng.uniform(0, 2, size=(t, d))
        cost[rng.uniform(size=(t, d)) < rng.uniform(0.3, 0.95)] = UNMATCHABLE
        matches, lone_rows, lone_cols = assign(cost)
        if t and d:
            count, total = _scipy_reference(cost)
        else:
            count, total = 0, 0.0
        assert len(matches) == count, trial
        assert np.isclose(sum(cost[r, c] for r, c in matches), total), trial
        assert sorted({r for r, _ in matches} | set(lone_rows)) == list(range(t)), trial
        assert sorted({c for _, c in matches} | set(lone_cols)) == list(range(d)), trial


def test_matching_separate_or_overlapping_faces_does_not_import_scipy():
    code = (
        "import sys, numpy as np\n"
        "from veil.tracking.association import assign\n"
        "cost = np.full((3, 3), 1e6); cost[0, 0] = cost[1, 2] = cost[2, 1] = 0.2\n"
        "assert assign(cost)[0] == [(0, 0), (1, 2), (2, 1)]\n"
        "cost[1, 1] = cost[2, 2] = 0.1; cost[0, 1] = 0.3\n"  # one group of three
        "assert assign(cost)[0] == [(0, 0), (1, 1), (2, 2)]\n"
        "print('scipy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_small_groups_are_matched_at_scipys_minimum_cost():
    rng = np.random.default_rng(1)
    for trial in range(500):
        n, m = rng.integers(1, 17, size=2)
        cost = rng.uniform(0, 2, size=(n, m))
        if trial % 2:
            cost = np.round(cost, 1)  # ties
        cost[rng.uniform(size=(n, m)) < rng.uniform(0, 0.9)] = UNMATCHABLE
        pairs = min_cost_matching(cost)
        rows, cols = linear_sum_assignment(cost)
        assert len(pairs) == min(n, m), trial
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs), trial
        assert np.isclose(sum(cost[r, c] for r, c in pairs), cost[rows, cols].sum()), trial


def dense_cost(tracks, dets, min_iou, gate, max_ratio=2.0):
    """cost_matrix's definition on whole matrices."""
    iou = box_iou(tracks, dets)
    cost = np.where(iou >= min_iou, 1.0 - iou, UNMATCHABLE)
    if gate is not None:
        gap = box_centre(tracks)[:, None] - box_centre(dets)[None]
        dist = np.linalg.norm(gap, axis=2) / np.maximum(longer_side(tracks), 1.0)[:, None]
        ts = np.sqrt(np.maximum(box_area(tracks), 1.0))[:, None]
        ds = np.sqrt(np.maximum(box_area(dets), 1.0))[None, :]
        ok = (dist <= gate[:, None]) & (np.maximum(ts / ds, ds / ts) <= max_ratio)
        cost = np.where((cost >= UNMATCHABLE) & ok, 1.0 + dist, cost)
    return cost


def test_cost_matrix_measures_only_pairs_that_can_match_and_misses_none():
    rng = np.random.default_rng(2)
    for trial in range(200):
        t, d = rng.integers(0, 80, size=2)
        boxes = []
        for n in (t, d):
            centres, sides = rng.uniform(0, 600, (n, 2)), rng.uniform(2, 80, (n, 2))
            boxes.append(np.hstack([centres - sides / 2, centres + sides / 2]).astype(np.float32))
        gate = None if trial % 3 == 0 else rng.uniform(0.3, 4, t)
        got = cost_matrix(*boxes, min_iou=0.2, distance_gate=gate)
        assert np.array_equal(got, dense_cost(*boxes, 0.2, gate)), trial
