"""Connected components of a graph given by its edges.

Crop windows that overlap (detectors/windows.py) and tracks and detections that could
match (tracking/association.py) fall into groups that can be handled one at a time. A
crowd's windows overlap in hundreds of thousands of pairs, too many to visit one by one,
so labels spread over all edges at once: each edge pulls both its ends down to the smaller
label, then every label follows its own label to the end of the chain, until nothing moves.
"""

from __future__ import annotations

import numpy as np


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per node of n, the smallest node of its component; edges join a[k] and b[k]."""
    label = np.arange(n)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while True:
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, label[a], low)
        np.minimum.at(label, label[b], low)
        while not np.array_equal(jumped := label[label], label):
            label = jumped
        if np.array_equal(label, before):
            return label
