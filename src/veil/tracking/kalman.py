"""Constant-velocity Kalman filter on a box (centre x, centre y, width, height).

Noise is proportional to the box size, as in SORT/ByteTrack, so a small face far
away and a large face close up are predicted with the same relative confidence.
"""

from __future__ import annotations

import numpy as np

from ..boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

POSITION_NOISE = 1 / 20
VELOCITY_NOISE = 1 / 160

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


def _measured(box: np.ndarray) -> np.ndarray:
    """The measured state of one xyxy box; a side of at least one pixel keeps noise finite."""
    z = xyxy_to_cxcywh(np.asarray(box, np.float64))[0]
    z[2:] = np.maximum(z[2:], 1.0)
    return z


class BoxKalman:
    """One track's motion state; one `predict` per frame, one `update` per matched detection."""

    def __init__(self, box: np.ndarray) -> None:
        z = _measured(box)
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
        z = _measured(box)
        r = np.diag(np.full(4, (POSITION_NOISE * self._size()) ** 2))
        s = _H @ self.cov @ _H.T + r
        gain = np.linalg.solve(s, _H @ self.cov).T
        self.mean = self.mean + gain @ (z - _H @ self.mean)
        self.cov = (np.eye(8) - gain @ _H) @ self.cov

    @property
    def box(self) -> np.ndarray:
        state = self.mean[:4].copy()
        state[2:] = np.maximum(state[2:], 1.0)
        return cxcywh_to_xyxy(state)[0].astype(np.float32)
