"""Quality presets for the CenterFace detector: how many passes, at which scales.

CenterFace sees faces down to about 10 pixels at its native stride; below that,
and for faces blurred or turned away, a single pass misses them. The presets
decide how much more to look (smallfaces.py holds the passes and how they fuse):

- fast: one pass on a downscaled frame (longer side 640 px): cheap, misses small faces.
- balanced (the default): one native pass plus 2x upscaled passes only around
  small-face evidence (weak or small candidates of the native pass); large
  images in tiles. Videos get the keyframe scan of scan.py, with this policy on
  keyframes.
- max: the upscaled pass over the whole frame and a mirrored native pass, on
  every frame.

An explicit `--max-size` asks for one pass at that size, whatever the preset.
Fusion keeps the highest score of a cluster, so a face found by any pass keeps
its confidence: for privacy a face seen once is a face.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from .base import Detector, DetectorOptions
from .centerface import ALIGN, CenterFace
from .scan import KeyframeScanner, ScanPolicy
from .smallfaces import SmallFacePolicy, SmallFaces

FAST_MAX_SIZE = 640
POLICIES = {
    "balanced": SmallFacePolicy(),
    "max": SmallFacePolicy(evidence=None, mirror=True),
}


class PresetDetector(Detector):
    """CenterFace run as the options' quality preset asks."""

    def __init__(
        self, options: DetectorOptions = DetectorOptions(), net: CenterFace | None = None
    ) -> None:
        self.options = options
        self.net = net or CenterFace(options)
        self.provider = self.net.provider
        self.preferred_batch = self.net.preferred_batch
        self.backend = self.net.backend
        self.device = self.net.device
        self.precision = self.net.precision
        self.policy = SmallFaces(
            self.net.infer, options.threshold, POLICIES.get(options.quality, SmallFacePolicy())
        )

    def stream(self, *, strong: float | None = None) -> KeyframeScanner | None:
        """The balanced preset's per-video detector: the keyframe scan (scan.py) with the
        small-face policy on keyframes and for small faces the keyframes hold; None
        (every frame gets `detect`) for the other presets and an explicit --max-size."""
        if self.options.quality != "balanced" or self.options.max_size:
            return None
        plain = self.net.stream()
        # Without a scan (a GPU, --full-every 1) every frame is a keyframe.
        scan = plain.policy if plain is not None else ScanPolicy(full_every=1, align=ALIGN)
        return KeyframeScanner(
            self.net.infer,
            self.options.threshold,
            scan,
            self.policy,
            prepare=self.net.prepare,
            strong=strong,
        )

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        frames = list(frames)
        if not frames:
            return []
        if self.options.quality == "fast" or self.options.max_size:
            cap = self.options.max_size or FAST_MAX_SIZE
            if self.options.quality == "fast":
                cap = min(cap, FAST_MAX_SIZE)
            return self.net.infer(frames, cap, self.options.threshold)
        return self.policy.detect(frames)


def create(options: DetectorOptions = DetectorOptions()) -> PresetDetector:
    """Registry factory for "centerface"."""
    return PresetDetector(options)
