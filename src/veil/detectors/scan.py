"""Video detection that finds what full resolution on every frame finds, at a third of the cost.

Inference dominates the cost of anonymizing video (about four fifths of the CPU
time at native resolution), and its cost grows with the pixels it reads. Large
faces are found just as well on a downscaled frame; only small faces need full
resolution. So a stream of frames is scanned like this:

- keyframes, at most `full_every` frames apart, get a full-resolution pass;
- every other frame between them gets a coarse pass (longer side `coarse_size`)
  that finds every face large enough to survive the downscale, plus
  full-resolution crops around each small face seen at the keyframe before, at
  the keyframe after, and on the path between the two for a face seen at both (a
  pan can carry a small face further than a crop's margin);
- each frame between two frames so scanned (or a keyframe) takes their midway
  boxes where the two agree: each face scoring the user's threshold or more on
  either side paired one to one with a box of the other at IoU `midway_iou` (0.6)
  or more, which a face that comes, goes or moves more than about an eighth of its
  size a frame breaks (weaker boxes, which only continue tracks, need not agree);
  where they disagree, the frame gets the coarse pass and crops too. On the
  150-frame clips of benchmarks/speed.py, 73 of 74 such frames took midway boxes,
  and the command took 11-12% less time at 720p and 9-10% at 1080p; coverage of
  the crowd pan, of the YouTube Faces clips upscaled past the coarse size and of
  benchmarks/scan_leaks.py's pans was the same in every size band (docs/speed.md).

The keyframe after is known because frames arrive in batches that end on a
keyframe (the pipeline holds them anyway). Crop corners snap to the network's
coarsest stride (32 px), so a crop is read on the same feature grid as the
whole frame and returns the full pass's boxes and scores for the faces inside
it; unaligned crops shift the grid and lose borderline faces. Seeds come from
the detector's threshold, which the pipeline lowers for the tracker, so faces
that flicker around the threshold at keyframes are searched too.

What this scan can miss, compared with a full pass on every frame, is a face too
small for the coarse pass that appears and disappears entirely between two
keyframes (a quarter of a second at 30 fps), and a face seen on one frame only,
between two frames that agree without it. Frames no larger than the coarse
size are always processed at full resolution, as are single images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..boxes import box_centre, longer_side, max_iou, overlapping_pairs, pair_iou
from ..detections import Detections
from .smallfaces import SAME_FACE_IOU, Infer, SmallFaces, fuse, in_windows, patch
from .windows import crop_windows

# Bounds for pairing a face at one keyframe with the same face at the next: its size
# may change by this factor, and its centre travel this many face sizes.
MAX_GROWTH = 1.5
MAX_TRAVEL = 24.0


@dataclass(frozen=True)
class ScanPolicy:
    """full_every: frames from one full-resolution pass to the next (1 = every frame).
    coarse_size: longer side of the pass run on the frames between. midway_iou: the IoU
    at which the faces of two frames must pair up for the frame between to take their
    midway boxes.
    small_face: faces whose longer side falls under this many pixels at the coarse
    scale are searched at full resolution in crops. crop_context: crop side as a
    multiple of the face size (room for motion between keyframes); min_crop: the
    smallest crop side in pixels; align: the detector's coarsest stride, to which
    crop corners snap (CenterFace's 32 unless told otherwise)."""

    full_every: int = 8
    coarse_size: int = 640
    midway_iou: float = 0.6
    small_face: float = 40.0
    crop_context: float = 4.0
    min_crop: int = 128
    align: int = 32

    def applies_to(self, height: int, width: int) -> bool:
        return self.full_every > 1 and max(height, width) > self.coarse_size


def greedy_pairs(cost: np.ndarray) -> np.ndarray:
    """Pairs [P, 2] (row, column) that greedy matching takes, cheapest first, among finite costs.

    Greedy matching (take the cheapest pair left whose row and column are both free) takes
    exactly the pairs that are each other's cheapest, then the same among what remains, and
    so on; those rounds are whole-array operations. A crowd's keyframes hold 800 boxes each
    (weak detections included), and visiting their candidate pairs one by one cost 0.4 s a
    keyframe (a 196-face WIDER photo panning in 1080p).
    """
    original = np.asarray(cost, np.float64)
    cost = original.copy()
    rows = np.arange(len(cost))
    found: list[np.ndarray] = []
    while cost.size:
        best_col = np.argmin(cost, axis=1)
        best_row = np.argmin(cost, axis=0)
        mutual = np.isfinite(cost[rows, best_col]) & (best_row[best_col] == rows)
        if not mutual.any():
            break
        picked = np.stack([rows[mutual], best_col[mutual]], axis=1)
        found.append(picked)
        cost[picked[:, 0], :] = np.inf
        cost[:, picked[:, 1]] = np.inf
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found)
    # Greedy's own order: by cost, ties in row-major order.
    order = np.lexsort((pairs[:, 1], pairs[:, 0], original[pairs[:, 0], pairs[:, 1]]))
    return pairs[order].astype(np.int64)


@dataclass(frozen=True)
class Bracket:
    """The faces of two consecutive keyframes, and which of them are the same face.

    Pairing is greedy by centre distance over face size, between boxes of similar
    size; a wrong pair only adds a window, never removes one.
    """

    before: np.ndarray  # [A, 4]
    after: np.ndarray  # [B, 4]
    pairs: np.ndarray  # [P, 2] rows of before and after
    moved: np.ndarray  # [P] whether the pair's face moved at least its own size

    @classmethod
    def of(cls, before: Detections, after: Detections) -> Bracket:
        a, b = before.xyxy.reshape(-1, 4), after.xyxy.reshape(-1, 4)
        pairs = np.zeros((0, 2), np.int64)
        travel = np.zeros((len(a), len(b)))
        if len(a) and len(b):
            size_a, size_b = longer_side(a), longer_side(b)
            ca, cb = box_centre(a), box_centre(b)
            travel = np.linalg.norm(ca[:, None] - cb[None], axis=2) / np.maximum(size_a[:, None], 1)
            ratio = size_b[None] / np.maximum(size_a[:, None], 1)
            ok = (ratio >= 1 / MAX_GROWTH) & (ratio <= MAX_GROWTH) & (travel <= MAX_TRAVEL)
            pairs = greedy_pairs(np.where(ok, travel, np.inf))
        moved = travel[pairs[:, 0], pairs[:, 1]] >= 1
        return cls(a, b, pairs, moved)

    def _path(self, t: float, rows: np.ndarray) -> np.ndarray:
        ia, ib = self.pairs[rows].T
        return self.before[ia] + t * (self.after[ib] - self.before[ia])

    def search(self, t: float) -> np.ndarray:
        """Where to look for faces at fraction t of the way from one keyframe to the next:
        every box of both keyframes, plus each face that moved at least its own size,
        moved t of the way. On a pan, a small face can travel further between keyframes
        than a crop's margin, and is then found only on its path; within a face size of
        its start, its path lies inside the merged windows of both ends already."""
        return np.concatenate([self.before, self.after, self._path(t, self.moved)]).astype(
            np.float32
        )

    def expected(self, t: float) -> np.ndarray:
        """Where each face of the two keyframes should be at fraction t: on its path when
        both keyframes hold it, else where the one that holds it saw it."""
        alone_a = np.setdiff1d(np.arange(len(self.before)), self.pairs[:, 0])
        alone_b = np.setdiff1d(np.arange(len(self.after)), self.pairs[:, 1])
        paths = self._path(t, np.ones(len(self.pairs), bool))
        return np.concatenate([paths, self.before[alone_a], self.after[alone_b]]).astype(np.float32)


def midway(
    before: Detections, after: Detections, min_iou: float, strong: float = 0.0
) -> Detections | None:
    """The faces of the frame between two frames, where those two agree: every box scoring
    `strong` or more on either side is paired one to one with a box of the same class on
    the other side at IoU `min_iou` or more. Each pair gives its midway box and landmarks
    and the higher of its two scores; weaker boxes left unpaired are left out (the tracker
    only continues tracks with them). None where the frames do not agree (a face came,
    went or moved fast). min_iou > 0: only boxes that overlap are measured
    (overlapping_pairs, as NMS and the tracker do), since a crowd's frames hold hundreds
    of boxes each, weak ones included."""
    i, j = overlapping_pairs(before.xyxy, after.xyxy)
    iou = pair_iou(before.xyxy, after.xyxy, i, j)
    ok = (iou >= min_iou) & (before.class_id[i] == after.class_id[j])
    cost = np.full((len(before), len(after)), np.inf)
    cost[i[ok], j[ok]] = 1 - iou[ok]
    pairs = greedy_pairs(cost)
    pairs = pairs[np.argsort(pairs[:, 0])]
    alone_before = np.setdiff1d(np.arange(len(before)), pairs[:, 0])
    alone_after = np.setdiff1d(np.arange(len(after)), pairs[:, 1])
    if (before.score[alone_before] >= strong).any() or (after.score[alone_after] >= strong).any():
        return None
    a, b = before[pairs[:, 0]], after[pairs[:, 1]]
    landmarks = None
    if a.landmarks is not None and b.landmarks is not None:
        if a.landmarks.shape == b.landmarks.shape:
            landmarks = (a.landmarks + b.landmarks) / 2
    return Detections(
        (a.xyxy + b.xyxy) / 2,
        score=np.maximum(a.score, b.score),
        class_id=a.class_id,
        landmarks=landmarks,
    )


class KeyframeScanner:
    """Detects faces in consecutive frames of one stream with the keyframe scheme above.

    Holds the previous batch's last keyframe, so make one per stream. With a
    small-face policy (smallfaces.py), keyframes and frames too small to scan get
    its closer looks and full-resolution passes its tiling; without one they get
    one native pass. prepare(height, width, max_size, recurring=False), where given, is
    told of the keyframes' native pass and the coarse pass (recurring) when a stream
    starts or changes size, before its first keyframe runs (CenterFace.prepare; `expect`).
    """

    def __init__(
        self,
        infer: Infer,
        threshold: float,
        policy: ScanPolicy = ScanPolicy(),
        small_faces: SmallFaces | None = None,
        *,
        prepare: Callable[..., None] | None = None,
        strong: float | None = None,
    ) -> None:
        self._infer = infer
        self._prepare = prepare
        self.threshold = threshold
        # Frames between two agreeing frames (midway): boxes under this need not agree.
        self.strong = threshold if strong is None else max(strong, threshold)
        self.policy = policy
        self.small_faces = small_faces
        self._last_key: tuple[tuple[int, int], Detections] | None = None

    @property
    def batch_size(self) -> int:
        """Frames per call that keep keyframes `full_every` apart."""
        return max(1, self.policy.full_every)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        # The size from the last frame, which every path reads (a keyframe, or every frame
        # where the scan does not apply): a frame may be converted to BGR when first read,
        # and the first one is often a midway frame that never needs to be.
        h, w = frames[-1].shape[:2]
        known = self._last_key[1] if self._last_key and self._last_key[0] == (h, w) else None
        if not self.policy.applies_to(h, w):
            results = []
            for frame in frames:
                known = self._keyframe(frame, known)
                results.append(known)
            self._last_key = ((h, w), known)  # type: ignore[assignment]
            return results
        n = len(frames)
        keys = set(range(n - 1, -1, -self.policy.full_every))
        previous = known
        if previous is None:
            keys.add(0)
            self.expect(h, w)
        key_list = sorted(keys)
        results: list[Detections | None] = [None] * n
        for i in key_list:
            results[i] = known = self._keyframe(frames[i], known)
        # Each frame between keyframes, with the keyframes either side (-1: the last batch's).
        span = {
            i: (max((k for k in key_list if k < i), default=-1), min(k for k in key_list if k > i))
            for i in range(n)
            if results[i] is None
        }
        # Every other frame between two keyframes first; each frame between two of those
        # then takes their midway boxes where they agree, else its own passes.
        odd = [i for i, (start, _) in span.items() if (i - start) % 2]
        brackets: dict[int, Bracket] = {}
        self._between(frames, [i for i in span if i not in odd], results, previous, span, brackets)
        redo = []
        for i in odd:
            found = midway(
                previous if i == 0 else results[i - 1],  # type: ignore[arg-type]
                results[i + 1],  # type: ignore[arg-type]
                self.policy.midway_iou,
                self.strong,
            )
            if found is None:
                redo.append(i)
            else:
                results[i] = found
        self._between(frames, redo, results, previous, span, brackets)
        self._last_key = ((h, w), results[key_list[-1]])  # type: ignore[assignment]
        return results  # type: ignore[return-value]

    def _between(
        self,
        frames: Sequence[np.ndarray],
        indices: list[int],
        results: list[Detections | None],
        previous: Detections | None,
        span: dict[int, tuple[int, int]],
        brackets: dict[int, Bracket],
    ) -> None:
        """The coarse pass, full-resolution crops and closer looks for these frames between
        keyframes (span: the keyframes either side of each), into results."""
        if not indices:
            return
        h, w = frames[indices[0]].shape[:2]  # read by the coarse pass anyway
        scale = self.policy.coarse_size / max(h, w)
        # All the coarse passes in one call: the engine may run several at once.
        coarse = self._infer(
            [frames[i] for i in indices], self.policy.coarse_size, self.threshold, recurring=True
        )
        for i, found in zip(indices, coarse):
            start, after = span[i]
            if after not in brackets:
                first = previous if start < 0 else results[start]
                brackets[after] = Bracket.of(first, results[after])  # type: ignore[arg-type]
            t = (i - start) / (after - start)
            found = self._add_small_faces(frames[i], found, brackets[after].search(t), scale)
            results[i] = self._recover(frames[i], found, brackets[after].expected(t))

    def expect(self, height: int, width: int) -> None:
        """Have the models for frames of this size start compiling, or loading back from the
        cache, in the background: the keyframes' native pass first, as the first keyframe
        waits for it (unless the small-face policy reads such frames in tiles), then the
        coarse pass. `detect` calls it when a stream starts or changes size; the pipeline
        calls it earlier, with a video's first decoded frame (BatchDetection). Asking
        again for a size is free."""
        if self._prepare is None or not self.policy.applies_to(height, width):
            return
        if self.small_faces is None or self.small_faces.reads_whole(height, width):
            self._prepare(height, width, None)
        self._prepare(height, width, self.policy.coarse_size, recurring=True)

    def _keyframe(self, frame: np.ndarray, known: Detections | None) -> Detections:
        """A full-resolution look; with a small-face policy, the faces of the keyframe
        before are evidence too (a face found once is worth a closer look again)."""
        if self.small_faces is None:
            return self._infer([frame], None, self.threshold)[0]
        return self.small_faces.detect([frame], None if known is None else [known.xyxy])[0]

    def _full(self, frame: np.ndarray) -> Detections:
        if self.small_faces is not None:
            return self.small_faces.native([frame], self.threshold)[0]
        return self._infer([frame], None, self.threshold)[0]

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
            return self._full(frame)
        # Whole faces seen at full resolution replace the coarse pass's rougher boxes of them.
        return patch(found, *in_windows(self._infer, frame, windows, self.threshold))

    def _recover(self, frame: np.ndarray, found: Detections, expected: np.ndarray) -> Detections:
        """With a small-face policy: its closer look at the small faces the keyframes hold
        that this frame's passes did not find, while that costs no more network input than
        the coarse pass. A crowd of such faces would cost a keyframe's closer looks on every
        frame; it keeps the scan's cost, and its faces are kept by the keyframes and the
        temporal filter."""
        if self.small_faces is None or not len(expected):
            return found
        sizes = longer_side(expected)
        missing = expected[sizes < self.small_faces.policy.small_face]
        if len(missing) and len(found):
            missing = missing[max_iou(missing, found.xyxy) < SAME_FACE_IOU]
        h, w = frame.shape[:2]
        regions = self.small_faces.regions(missing, w, h)
        area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in regions)
        budget = self.policy.coarse_size**2 * min(h, w) / max(h, w)
        if not regions or area * self.small_faces.policy.factor**2 > budget:
            return found
        return fuse([found, self.small_faces.closer_look(frame, regions)])
