"""The box Kalman filter (veil.tracking.kalman) against the textbook 8x8 filter it stands for."""

import numpy as np

from veil.tracking.kalman import POSITION_NOISE, VELOCITY_NOISE, BoxKalman

F = np.eye(8)
F[:4, 4:] = np.eye(4)
H = np.eye(4, 8)


def measured(box):
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1), max(y2 - y1, 1)])


class MatrixKalman:
    """Constant velocity on centre and size, noise proportional to the box size (SORT)."""

    def __init__(self, box):
        z = measured(box)
        self.mean = np.r_[z, np.zeros(4)]
        size = max(z[2], z[3])
        std = np.r_[[2 * POSITION_NOISE * size] * 4, [10 * VELOCITY_NOISE * size] * 4]
        self.cov = np.diag(std**2)

    def size(self):
        return max(self.mean[2], self.mean[3], 1.0)

    def predict(self):
        size = self.size()
        q = np.r_[[POSITION_NOISE * size] * 4, [VELOCITY_NOISE * size] * 4] ** 2
        self.mean = F @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)
        self.cov = F @ self.cov @ F.T + np.diag(q)

    def update(self, box):
        r = np.eye(4) * (POSITION_NOISE * self.size()) ** 2
        gain = np.linalg.solve(H @ self.cov @ H.T + r, H @ self.cov).T
        self.mean = self.mean + gain @ (measured(box) - H @ self.mean)
        self.cov = (np.eye(8) - gain @ H) @ self.cov

    def box(self):
        cx, cy, w, h = self.mean[:4]
        w, h = max(w, 1), max(h, 1)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_the_filter_follows_the_matrix_filter_through_misses_and_jumps():
    rng = np.random.default_rng(4)
    for trial in range(20):
        box = np.array([100, 80, 100 + rng.uniform(0.5, 200), 80 + rng.uniform(0.5, 200)])
        fast, slow = BoxKalman(box), MatrixKalman(box)
        step = rng.normal(0, 5, 4)
        for frame in range(60):
            fast.predict()
            slow.predict()
            box = box + step + rng.normal(0, 2, 4)
            if rng.random() < 0.7:  # some frames find no detection
                observed = box if rng.random() < 0.9 else box + rng.normal(0, 40, 4)
                fast.update(observed)
                slow.update(observed)
            assert np.allclose(fast.box, slow.box(), rtol=1e-5, atol=1e-3), (trial, frame)


def test_a_steady_motion_is_predicted_ahead():
    kf = BoxKalman(np.array([0, 0, 20, 20]))
    for t in range(1, 15):
        kf.predict()
        kf.update(np.array([4 * t, 0, 4 * t + 20, 20]))
    kf.predict()
    assert np.allclose(kf.box, [60, 0, 80, 20], atol=1.5)
