"""Video detection that finds what full resolution on every frame finds, at a third of the cost.

Inference dominates the cost of anonymizing video (about four fifths of the CPU
time at native resolution), and its cost grows with the pixels it reads. Large
faces are found just as well on a downscaled frame; only small faces need full
resolution. So a stream of frames is scanned like this:

- keyframes, at most `full_every` frames apart, get a full-resolution pass;
- the frames between get a coarse pass (longer side `coarse_size`) that finds
  every face large enough to survive the downscale, plus full-resolution crops
  around each small face seen at the keyframe before, at the keyframe after,
  and on the path between the two for a face seen at both (a pan can carry a
  small face further than a crop's margin).

The keyframe after is known because frames arrive in batches that end on a
keyframe (the pipeline holds them anyway). Crop corners snap to the network's
coarsest stride (32 px), so a crop is read on the same feature grid as the
whole frame and returns the full pass's boxes and scores for the faces inside
it; unaligned crops shift the grid and lose borderline faces. Seeds come from
the detector's threshold, which the pipeline lowers for the tracker, so faces
that flicker around the threshold at keyframes are searched too.

What this scan can miss, compared with a full pass on every frame, is a face too
small for the coarse pass that appears and disappears entirely between two
keyframes (a quarter of a second at 30 fps). Frames no larger than the coarse
size are always processed at full resolution, as are single images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..boxes import box_centre, box_iou, longer_side, nms
from ..detections import Detections

Infer = Callable[[Sequence[np.ndarray], "int | None", float], list[Detections]]
Window = tuple[int, int, int, int]

# Overlap at which a crop detection is taken to be a face the coarse pass already found.
SAME_FACE_IOU = 0.3
# Bounds for pairing a face at one keyframe with the same face at the next: its size
# may change by this factor, and its centre travel this many face sizes.
MAX_GROWTH = 1.5
MAX_TRAVEL = 24.0
# Pixels from a crop's edge within which a detection is taken to be cut off by the crop.
EDGE = 2


@dataclass(frozen=True)
class ScanPolicy:
    """full_every: frames from one full-resolution pass to the next (1 = every frame).
    coarse_size: longer side of the pass run on the frames between.
    small_face: faces whose longer side falls under this many pixels at the coarse
    scale are searched at full resolution in crops. crop_context: crop side as a
    multiple of the face size (room for motion between keyframes); min_crop: the
    smallest crop side in pixels; align: the detector's coarsest stride, to which
    crop corners snap (CenterFace's 32 unless told otherwise)."""

    full_every: int = 8
    coarse_size: int = 640
    small_face: float = 40.0
    crop_context: float = 4.0
    min_crop: int = 128
    align: int = 32

    def applies_to(self, height: int, width: int) -> bool:
        return self.full_every > 1 and max(height, width) > self.coarse_size


def snapped(
    x1: float, y1: float, x2: float, y2: float, align: int, width: int, height: int
) -> list[int]:
    """Corners moved outwards to multiples of align, then clipped to the frame."""
    return [
        max(0, math.floor(x1 / align) * align),
        max(0, math.floor(y1 / align) * align),
        min(width, math.ceil(x2 / align) * align),
        min(height, math.ceil(y2 / align) * align),
    ]


def crop_windows(
    boxes: np.ndarray, width: int, height: int, context: float, min_side: int, align: int = 1
) -> list[Window]:
    """Square windows around boxes, clipped to the frame, merged while any two overlap.

    With `align`, window corners snap outwards to multiples of it. A crop aligned to
    the network's coarsest stride is seen on the same feature grid as the whole
    frame, so it finds what a full pass finds there instead of a shifted variant.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    windows = []
    for (cx, cy), side in zip(box_centre(boxes), longer_side(boxes)):
        half = max(min_side, context * side) / 2
        windows.append(snapped(cx - half, cy - half, cx + half, cy + half, align, width, height))
    merged = True
    while merged:
        merged = False
        for a in range(len(windows)):
            for b in range(a + 1, len(windows)):
                wa, wb = windows[a], windows[b]
                if wa[0] < wb[2] and wb[0] < wa[2] and wa[1] < wb[3] and wb[1] < wa[3]:
                    windows[a] = [
                        min(wa[0], wb[0]),
                        min(wa[1], wb[1]),
                        max(wa[2], wb[2]),
                        max(wa[3], wb[3]),
                    ]
                    del windows[b]
                    merged = True
                    break
            if merged:
                break
    return [(x1, y1, x2, y2) for x1, y1, x2, y2 in windows]


def bracket_boxes(before: Detections, after: Detections, t: float) -> np.ndarray:
    """Where to look for faces at fraction t of the way from one keyframe to the next.

    Every box of both keyframes, plus, for each face matched between them, its box
    moved t of the way: on a pan, a small face can travel further between keyframes
    than a crop's margin, and is then found only on its interpolated path.
    Matching is greedy by centre distance over face size, between boxes of similar
    size; a wrong match only adds a window, never removes one.
    """
    a, b = before.xyxy.reshape(-1, 4), after.xyxy.reshape(-1, 4)
    boxes = [a, b]
    if len(a) and len(b):
        size_a, size_b = longer_side(a), longer_side(b)
        ca, cb = box_centre(a), box_centre(b)
        travel = np.linalg.norm(ca[:, None] - cb[None], axis=2) / np.maximum(size_a[:, None], 1)
        ratio = size_b[None] / np.maximum(size_a[:, None], 1)
        travel[(ratio < 1 / MAX_GROWTH) | (ratio > MAX_GROWTH) | (travel > MAX_TRAVEL)] = np.inf
        used_a, used_b, pairs = set(), set(), []
        for flat in np.argsort(travel, axis=None):
            i, j = np.unravel_index(flat, travel.shape)
            if not np.isfinite(travel[i, j]):
                break
            if i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
                # Within a face size of its start, the path lies inside the merged windows
                # of both ends already; only faces that moved further need a window of their own.
                if travel[i, j] >= 1:
                    pairs.append((i, j))
        if pairs:
            ia, ib = np.array(pairs).T
            boxes.append(a[ia] + t * (b[ib] - a[ia]))
    return np.concatenate(boxes).astype(np.float32)


class KeyframeScanner:
    """Detects faces in consecutive frames of one stream with the keyframe scheme above.

    Holds the previous batch's last keyframe, so make one per stream.
    """

    def __init__(self, infer: Infer, threshold: float, policy: ScanPolicy = ScanPolicy()) -> None:
        self._infer = infer
        self.threshold = threshold
        self.policy = policy
        self._last_key: tuple[tuple[int, int], Detections] | None = None

    @property
    def batch_size(self) -> int:
        """Frames per call that keep keyframes `full_every` apart."""
        return max(1, self.policy.full_every)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        if not self.policy.applies_to(h, w):
            return self._each(frames, None)
        n = len(frames)
        keys = set(range(n - 1, -1, -self.policy.full_every))
        previous = self._last_key[1] if self._last_key and self._last_key[0] == (h, w) else None
        if previous is None:
            keys.add(0)
        key_list = sorted(keys)
        results: list[Detections | None] = [None] * n
        for i, dets in zip(key_list, self._each([frames[i] for i in key_list], None)):
            results[i] = dets
        between = [i for i in range(n) if results[i] is None]
        if between:
            coarse = self._each([frames[i] for i in between], self.policy.coarse_size)
            scale = self.policy.coarse_size / max(h, w)
            for i, found in zip(between, coarse):
                before = max((k for k in key_list if k < i), default=-1)
                after = min(k for k in key_list if k > i)
                start = previous if before < 0 else results[before]
                seeds = bracket_boxes(start, results[after], (i - before) / (after - before))  # type: ignore[arg-type]
                results[i] = self._add_small_faces(frames[i], found, seeds, scale)
        self._last_key = ((h, w), results[key_list[-1]])  # type: ignore[assignment]
        return results  # type: ignore[return-value]

    def _each(self, frames: Sequence[np.ndarray], max_size: int | None) -> list[Detections]:
        """One inference call per frame: the scan runs on CPUs, where a batch costs
        more time per frame than single frames and multiplies memory."""
        return [self._infer([frame], max_size, self.threshold)[0] for frame in frames]

    def _add_small_faces(
        self, frame: np.ndarray, found: Detections, seeds: np.ndarray, scale: float
    ) -> Detections:
        if len(seeds) == 0:
            return found
        sizes = longer_side(seeds) * scale
        small = seeds[sizes < self.policy.small_face]
        if len(small) == 0:
            return found
        h, w = frame.shape[:2]
        windows = crop_windows(
            small, w, h, self.policy.crop_context, self.policy.min_crop, self.policy.align
        )
        if sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in windows) >= h * w / 2:
            return self._infer([frame], None, self.threshold)[0]
        whole, cut = [], []
        for x1, y1, x2, y2 in windows:
            crop = np.ascontiguousarray(frame[y1:y2, x1:x2])
            dets = self._infer([crop], None, self.threshold)[0]
            if not len(dets):
                continue
            dets = dets.with_(
                xyxy=dets.xyxy + np.array([x1, y1, x1, y1], np.float32),
                landmarks=None
                if dets.landmarks is None
                else dets.landmarks + np.array([x1, y1], np.float32),
            )
            b = dets.xyxy
            # A face touching a window edge inside the frame is only partly in the crop.
            edge = (
                ((b[:, 0] <= x1 + EDGE) & (x1 > 0))
                | ((b[:, 1] <= y1 + EDGE) & (y1 > 0))
                | ((b[:, 2] >= x2 - EDGE) & (x2 < w))
                | ((b[:, 3] >= y2 - EDGE) & (y2 < h))
            )
            whole.append(dets[~edge])
            cut.append(dets[edge])
        inside, partial = Detections.merge(whole), Detections.merge(cut)
        # Whole faces seen at full resolution replace the coarse pass's rougher boxes of them;
        # partial ones only add faces the coarse pass has not boxed at all.
        if len(inside) and len(found):
            found = found[box_iou(found.xyxy, inside.xyxy).max(axis=1) < SAME_FACE_IOU]
        if len(partial):
            partial = partial[nms(partial.xyxy, partial.score, SAME_FACE_IOU)]
            seen = Detections.merge([found, inside])
            if len(seen):
                partial = partial[box_iou(partial.xyxy, seen.xyxy).max(axis=1) < SAME_FACE_IOU]
        return Detections.merge([found, inside, partial])
