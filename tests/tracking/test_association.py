import subprocess
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment

from veil.tracking.association import UNMATCHABLE, assign


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


def test_matching_separate_faces_does_not_import_scipy():
    code = (
        "import sys, numpy as np\n"
        "from veil.tracking.association import assign\n"
        "cost = np.full((3, 3), 1e6); cost[0, 0] = cost[1, 2] = cost[2, 1] = 0.2\n"
        "assert assign(cost)[0] == [(0, 0), (1, 2), (2, 1)]\n"
        "print('scipy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
