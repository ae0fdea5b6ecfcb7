"""Quality presets for the CenterFace detector: how many passes, at which scales.

CenterFace sees faces down to about 10 pixels at its native stride; below that,
and for faces blurred or turned away, a single pass misses them. `max` adds
passes that look at the frame differently and fuses what they find:

- fast: one pass on a downscaled frame (longer side 640 px): cheap, misses small faces.
- balanced: one pass at native resolution (the default; videos get the keyframe
  scan of scan.py, which finds the same faces at a third of the cost).
- max: native pass + horizontally mirrored pass + an upscaled pass whose boxes are
  kept only for small faces; boxes of all passes are fused (weighted box fusion).

Fusion keeps the highest score of a cluster, so a face found by any pass keeps
its confidence: for privacy a face seen once is a face.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..boxes import box_iou
from ..detections import Detections
from .base import Detector, DetectorOptions
from .centerface import CenterFace
from .scan import KeyframeScanner

FAST_MAX_SIZE = 640
# The upscaled pass doubles the frame, but never beyond this longer side (cost grows with area).
UPSCALE = 2.0
UPSCALE_MAX_SIDE = 3200
MIN_UPSCALE = 1.25
# Boxes from the upscaled pass are kept only below this height in frame pixels:
# larger faces are already found at native resolution, and upscaled big faces
# fall outside the sizes the network was trained on.
SMALL_FACE_PX = 40.0
FUSION_IOU = 0.5
# Landmark order is left eye, right eye, nose, left mouth, right mouth; a mirror swaps sides.
MIRROR_LANDMARKS = [1, 0, 2, 4, 3]


def mirror(dets: Detections, width: int) -> Detections:
    """Detections found on a horizontally flipped frame, mapped back to the frame."""
    xyxy = dets.xyxy.copy()
    xyxy[:, 0], xyxy[:, 2] = width - dets.xyxy[:, 2], width - dets.xyxy[:, 0]
    lm = dets.landmarks
    if lm is not None and lm.shape[1] == len(MIRROR_LANDMARKS):
        lm = lm[:, MIRROR_LANDMARKS].copy()
        lm[:, :, 0] = width - lm[:, :, 0]
    elif lm is not None:
        lm = lm.copy()
        lm[:, :, 0] = width - lm[:, :, 0]
    return dets.with_(xyxy=xyxy, landmarks=lm)


def fuse(parts: Sequence[Detections], iou_threshold: float = FUSION_IOU) -> Detections:
    """Weighted box fusion: overlapping boxes from several passes become one.

    Boxes are visited best score first; each joins the first cluster whose fused
    box it overlaps by at least iou_threshold, else starts a cluster. A cluster's
    box (and landmarks) is the score-weighted mean of its members; its score is
    the best member's.
    """
    merged = Detections.merge(list(parts))
    if len(merged) < 2:
        return merged
    order = np.argsort(-merged.score, kind="stable")
    boxes, scores = merged.xyxy[order], merged.score[order]
    lms = None if merged.landmarks is None else merged.landmarks[order]
    members: list[list[int]] = []
    fused = np.zeros((0, 4), np.float32)
    for i in range(len(boxes)):
        if len(fused):
            ious = box_iou(boxes[i : i + 1], fused)[0]
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                members[best].append(i)
                w = scores[members[best]]
                fused[best] = (boxes[members[best]] * w[:, None]).sum(0) / w.sum()
                continue
        members.append([i])
        fused = np.concatenate([fused, boxes[i : i + 1]])
    out_score = np.array([scores[m].max() for m in members], np.float32)
    out_lm = None
    if lms is not None:
        out_lm = np.stack(
            [(lms[m] * scores[m][:, None, None]).sum(0) / scores[m].sum() for m in members]
        )
    class_id = np.array([merged.class_id[order][m[0]] for m in members], np.int32)
    return Detections(fused, score=out_score, class_id=class_id, landmarks=out_lm)


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

    def stream(self) -> KeyframeScanner | None:
        """The per-video keyframe scan (scan.py) refines the native-resolution preset only."""
        return self.net.stream() if self.options.quality == "balanced" else None

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        frames = list(frames)
        if not frames:
            return []
        threshold = self.options.threshold
        if self.options.quality == "fast":
            cap = min(self.options.max_size or FAST_MAX_SIZE, FAST_MAX_SIZE)
            return self.net.infer(frames, cap, threshold)
        if self.options.quality == "balanced":
            return self.net.infer(frames, self.options.max_size, threshold)
        return self._detect_max(frames, threshold)

    def _detect_max(self, frames: list[np.ndarray], threshold: float) -> list[Detections]:
        h, w = frames[0].shape[:2]
        native = self.net.infer(frames, self.options.max_size, threshold)
        flipped = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
        mirrored = [mirror(d, w) for d in self.net.infer(flipped, self.options.max_size, threshold)]
        passes = [native, mirrored]
        factor = min(UPSCALE, UPSCALE_MAX_SIDE / max(h, w))
        if factor >= MIN_UPSCALE:
            size = (round(w * factor), round(h * factor))
            big = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
            upscaled = []
            for dets in self.net.infer(big, None, threshold):
                dets = dets.scaled(w / size[0], h / size[1]).clipped(w, h)
                upscaled.append(dets[dets.height < SMALL_FACE_PX])
            passes.append(upscaled)
        return [fuse(parts) for parts in zip(*passes)]


def create(options: DetectorOptions = DetectorOptions()) -> PresetDetector:
    """Registry factory for "centerface"."""
    return PresetDetector(options)
