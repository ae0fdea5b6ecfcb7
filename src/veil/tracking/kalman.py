"""Constant-velocity Kalman filter on a box (centre x, centre y, width, height).

Noise is proportional to the box size, as in SORT/ByteTrack, so a small face far
away and a large face close up are predicted with the same relative confidence.
"""

from __future__ import annotations

import numpy as np

POSITION_NOISE = 1 / 20
VELOCITY_NOISE = 1 / 160

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


def to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)])


def to_xyxy(state: np.ndarray) -> np.ndarray:
    cx, cy, w, h = state[:4]
    w, h = max(w, 1.0), max(h, 1.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


class BoxKalman:
    """One track's motion state; one `predict` per frame, one `update` per matched detection."""

    def __init__(self, box: np.ndarray) -> None:
        z = to_cxcywh(box)
        self.mean = np.concatenate([z, np.zeros(4)])
        size = max(z[2], z[3])
        std = np.r_[[2 * POSITION_NOISE * size] * 4, [10 * VELOCITY_NOISE * size] * 4]
        self.cov = np.diag(std**2)

    def _size(self) -> float:
        return float(max(self.mean[2], self.mean[3], 1.0))

    def predict(self) -> None:
        size = self._size()
        q = np.r_[[POSITION_NOISE * size] * 4, [VELOCITY_NOISE * size] * 4] ** 2
        self.mean = _F @ self.mean
        self.mean[2:4] = np.maximum(self.mean[2:4], 1.0)
        self.cov = _F @ self.cov @ _F.T + np.diag(q)

    def update(self, box: np.ndarray) -> None:
        z = to_cxcywh(box)
        r = np.diag(np.full(4, (POSITION_NOISE * self._size()) ** 2))
        s = _H @ self.cov @ _H.T + r
        gain = np.linalg.solve(s, _H @ self.cov).T
        self.mean = self.mean + gain @ (z - _H @ self.mean)
        self.cov = (np.eye(8) - gain @ _H) @ self.cov

    @property
    def box(self) -> np.ndarray:
        return to_xyxy(self.mean)
