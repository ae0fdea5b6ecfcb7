"""A decoded picture on its way through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """index: position in the source; time: presentation time in seconds read from
    the container (never assumed from fps); image: BGR uint8 HxWx3."""

    index: int
    time: float
    image: np.ndarray

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
