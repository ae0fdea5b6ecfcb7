"""The default detection policy: a native-resolution pass, plus upscaled passes only where it
sees small-face evidence, with large images read in tiles.

Most faces a detector misses are small: CenterFace reads the frame on a 4-pixel
grid, and a face of 10-20 pixels covers a handful of cells. Doubling the frame
finds most of them (on wider_dev, recall under 16 px goes from 0.73 to 0.91 with
`--quality max`, `veil eval`, docs/accuracy.md), but doubling a whole frame costs
four native passes.
The network already says where it is worth it: a small face it cannot resolve
still raises its heat map, just not to the detection threshold, and a small face
it does find is rarely alone (crowds, audiences, stands). So:

1. One native pass, decoded down to `evidence` (far under the threshold).
2. Every candidate under `small_face` pixels, found or not, is evidence: windows
   of `context` times its size around it (merged, snapped to the network's grid
   at the upscaled scale) are read again at `factor` times the resolution.
3. The upscaled passes keep only small faces (larger ones are resolved at native
   resolution already); both passes are fused (`fuse`), so a face found by
   either keeps its best score.

A frame with no small candidate costs one pass; a crowd costs up to what `max`
costs. On WIDER crowd photos the default reads 1.7 times the network input of one
native pass and a fifth of what `max` reads (`benchmarks/preset_speed.py`).
`evidence` (0.03) lies far under the threshold (0.2) because a missed window is
a leak and a spare one only costs time.

Memory stays bounded whatever the frame size: no network input exceeds
`tile_side` on its longer side. Frames over `whole_pixels` are read as an image
pyramid: at native resolution in tiles that overlap by `min_overlap`, so any
face no larger than the overlap lies whole inside some tile, then the frame at
half the size in the same way (and so on until it fits one tile; each tile is
downscaled as it is read from a view of the frame, so no level is held whole), where a
face too large for the overlap below is at least half the overlap, a size the
network finds easily. The levels cost 4/3 of one native pass, and a face is
always read at its native size or at most halved while it is larger than
`min_overlap / 2`. A face cut by a tile border is taken from the tile or level
that holds it whole; its cut parts elsewhere are dropped when a whole box
contains them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..boxes import box_area, longer_side, max_iou, nms
from ..detections import Detections
from .windows import Window, crop_windows, cut_by_edge, split

# infer(frames, max_size, threshold, floor=None, *, recurring=False): CenterFace.infer's call.
Infer = Callable[..., list[Detections]]

# Overlap at which two boxes from different windows are the same face.
SAME_FACE_IOU = 0.3
# Share of a cut box that must lie inside a whole box for the cut box to be that face's part.
PART_OF = 0.5
# Overlap at which boxes from passes at different scales are fused into one.
FUSION_IOU = 0.5
# Landmark order is left eye, right eye, nose, left mouth, right mouth; a mirror swaps sides.
MIRROR_LANDMARKS = [1, 0, 2, 4, 3]


@dataclass(frozen=True)
class SmallFacePolicy:
    """evidence: weakest native heat peak that asks for a closer look (None: look
    everywhere, as `--quality max` does). small_face: longer side in pixels under
    which a candidate is evidence and an upscaled detection is kept (larger faces
    are resolved at native resolution). factor: upscale of the closer look.
    context: window side as a multiple of the candidate's size (room for the faces
    around it); min_window: smallest window side in pixels. mirror: also run the
    native pass on the mirrored frame (max). tile_side: longest side of any network
    input (onnxruntime's CPU arena takes about 200 MiB per input megapixel and keeps
    what it took, so 768 px keeps inference near a tenth of the 1.5 GB a 100 MP photo
    may use; the decoded photo and its output take 600 MB of it).
    whole_pixels: frames up to this many pixels run whole at native resolution
    (1440p does; one call is cheaper than tiles and pyramid levels). min_overlap:
    tile overlap, the largest face a tile must hold whole (faces of 64-128 px are
    found both in tiles and at the level above, so no size falls between).
    align: the network's coarsest stride."""

    evidence: float | None = 0.03
    small_face: float = 40.0
    factor: float = 2.0
    context: float = 4.0
    min_window: int = 64
    mirror: bool = False
    tile_side: int = 768
    whole_pixels: int = 4_000_000
    min_overlap: int = 128
    align: int = 32


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
    the best member's. The overlaps are box_iou's values, computed inline on a
    growing array of fused boxes: a crowd keyframe fuses about a thousand boxes,
    and a box_iou call per box took a fifth of a second.
    """
    merged = Detections.merge(list(parts))
    if len(merged) < 2:
        return merged
    order = np.argsort(-merged.score, kind="stable")
    boxes, scores = merged.xyxy[order], merged.score[order]
    lms = None if merged.landmarks is None else merged.landmarks[order]
    areas = box_area(boxes)
    members: list[list[int]] = []
    fused = np.zeros_like(boxes)
    fused_area = np.zeros_like(areas)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        n = len(members)
        if n:
            f = fused[:n]
            w = np.maximum(np.minimum(x2, f[:, 2]) - np.maximum(x1, f[:, 0]), 0)
            h = np.maximum(np.minimum(y2, f[:, 3]) - np.maximum(y1, f[:, 1]), 0)
            inter = w * h
            union = areas[i] + fused_area[:n] - inter
            ious = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                members[best].append(i)
                weight = scores[members[best]]
                fused[best] = (boxes[members[best]] * weight[:, None]).sum(0) / weight.sum()
                fused_area[best] = box_area(fused[best])[0]
                continue
        members.append([i])
        fused[n], fused_area[n] = boxes[i], areas[i]
    fused = fused[: len(members)]
    out_score = np.array([scores[m].max() for m in members], np.float32)
    out_lm = None
    if lms is not None:
        out_lm = np.stack(
            [(lms[m] * scores[m][:, None, None]).sum(0) / scores[m].sum() for m in members]
        )
    class_id = np.array([merged.class_id[order][m[0]] for m in members], np.int32)
    return Detections(fused, score=out_score, class_id=class_id, landmarks=out_lm)


def in_windows(
    infer: Infer,
    frame: np.ndarray,
    windows: Sequence[Window],
    threshold: float,
    factor: float = 1.0,
    floor: float | None = None,
    quantum: int = 1,
) -> tuple[Detections, Detections]:
    """Detections in each window of the frame (resized by `factor` first), in frame pixels:
    those whole inside their window, and those touching a window edge inside the frame.
    floor: weak heat peaks down to it as well (CenterFace.infer). quantum: crops are padded
    with black (as the network pads its input) to multiples of it, so that many windows
    give few input shapes: onnxruntime's arena keeps memory for every shape it has seen."""
    h, w = frame.shape[:2]
    whole, cut = [], []
    for window in windows:
        x1, y1, x2, y2 = window
        crop = frame[y1:y2, x1:x2]
        if factor != 1.0:
            # Read from the view: a large window is never copied whole before it shrinks.
            size = (max(1, round((x2 - x1) * factor)), max(1, round((y2 - y1) * factor)))
            smooth = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
            crop = cv2.resize(crop, size, interpolation=smooth)
        else:
            crop = np.ascontiguousarray(crop)
        ch, cw = crop.shape[:2]
        if quantum > 1:
            crop = cv2.copyMakeBorder(
                crop, 0, -ch % quantum, 0, -cw % quantum, cv2.BORDER_CONSTANT, value=0
            )
        dets = (
            infer([crop], None, threshold)
            if floor is None
            else infer([crop], None, threshold, floor)
        )[0]
        if not len(dets):
            continue
        if factor != 1.0:
            dets = dets.scaled((x2 - x1) / cw, (y2 - y1) / ch)
        dets = dets.with_(
            xyxy=dets.xyxy + np.array([x1, y1, x1, y1], np.float32),
            landmarks=None
            if dets.landmarks is None
            else dets.landmarks + np.array([x1, y1], np.float32),
        )
        edge = cut_by_edge(dets.xyxy, window, w, h)
        whole.append(dets[~edge])
        cut.append(dets[edge])
    return Detections.merge(whole), Detections.merge(cut)


def contained(parts: Detections, boxes: Detections) -> np.ndarray:
    """Per box of `parts`, whether at least PART_OF of it lies inside one of `boxes`."""
    if not len(parts) or not len(boxes):
        return np.zeros(len(parts), bool)
    a, b = parts.xyxy, boxes.xyxy
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    return (inter / np.maximum(parts.area[:, None], 1e-6)).max(axis=1) >= PART_OF


def patch(coarse: Detections, whole: Detections, cut: Detections) -> Detections:
    """A coarse pass corrected by closer looks at parts of the frame.

    Whole faces seen in windows replace the coarse pass's rougher boxes of them;
    cut ones only add faces nothing else has boxed (a part of a face is still
    worth hiding when no window holds all of it).
    """
    if len(whole):
        whole = whole[nms(whole.xyxy, whole.score, SAME_FACE_IOU)]
        if len(coarse):
            coarse = coarse[max_iou(coarse.xyxy, whole.xyxy) < SAME_FACE_IOU]
    if len(cut):
        cut = cut[nms(cut.xyxy, cut.score, SAME_FACE_IOU)]
        seen = Detections.merge([coarse, whole])
        if len(seen):
            cut = cut[~contained(cut, seen) & (max_iou(cut.xyxy, seen.xyxy) < SAME_FACE_IOU)]
    return Detections.merge([coarse, whole, cut])


class SmallFaces:
    """Detects faces with the policy above through a network's `infer(frames, max_size,
    threshold)` (CenterFace.infer, or any backend with the same call)."""

    def __init__(
        self, infer: Infer, threshold: float, policy: SmallFacePolicy = SmallFacePolicy()
    ) -> None:
        self._infer = infer
        self.threshold = threshold
        self.policy = policy

    def detect(
        self, frames: Sequence[np.ndarray], known: Sequence[np.ndarray] | None = None
    ) -> list[Detections]:
        """known: per frame, boxes of faces seen just before (a video's previous keyframe);
        the small ones are evidence too, as a face's heat peak flickers around the
        evidence threshold from frame to frame."""
        frames = list(frames)
        if not frames:
            return []
        p = self.policy
        floor = p.evidence if p.evidence is not None and p.evidence < self.threshold else None
        native = self.native(frames, self.threshold, floor)
        passes = [native]
        if p.mirror:
            flipped = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
            width = frames[0].shape[1]
            passes.append([mirror(d, width) for d in self.native(flipped, self.threshold)])
        out = []
        for i, frame in enumerate(frames):
            found = native[i]
            small = np.maximum(found.width, found.height) < p.small_face
            if p.evidence is not None:
                small &= found.score >= p.evidence
            evidence = found.xyxy[small]
            if known is not None and len(known[i]):
                boxes = np.asarray(known[i], np.float32).reshape(-1, 4)
                sizes = longer_side(boxes)
                evidence = np.concatenate([evidence, boxes[sizes < p.small_face]])
            parts = [d[i] for d in passes]
            parts[0] = found[found.score >= self.threshold]
            h, w = frame.shape[:2]
            parts.append(self.closer_look(frame, self.regions(evidence, w, h)))
            out.append(fuse(parts))
        return out

    def native(
        self, frames: list[np.ndarray], threshold: float, floor: float | None = None
    ) -> list[Detections]:
        """One pass at native resolution, in tiles when the frames are large; with a floor,
        weak heat peaks down to it as well (scores under the threshold)."""
        if self.reads_whole(*frames[0].shape[:2]):
            if floor is None:
                return self._infer(frames, None, threshold)
            return self._infer(frames, None, threshold, floor)
        return [self.tiled(frame, threshold, floor) for frame in frames]

    def reads_whole(self, height: int, width: int) -> bool:
        """Whether `native` reads frames of this size whole (else in tiles)."""
        return height * width <= self.policy.whole_pixels

    def tiled(self, frame: np.ndarray, threshold: float, floor: float | None = None) -> Detections:
        """An image pyramid read in tiles, coarsest level first: each level's tiles find the
        faces that fit in their overlap, the level at half its size the larger ones. Tiles
        are downscaled from views of the frame, so no level is ever held whole."""
        p = self.policy
        h, w = frame.shape[:2]
        scales, s = [], 1.0
        while max(h, w) * s > p.tile_side:
            scales.append(s)
            s /= 2
        whole = (0, 0, w, h)
        found = in_windows(self._infer, frame, [whole], threshold, s, floor if s == 1 else None)[0]
        weak = Detections.empty()
        for s in reversed(scales):
            k = round(1 / s)  # tiles at this level, in frame pixels
            tiles = split(whole, p.tile_side * k, p.min_overlap * k, p.align * k)
            inside, cut = in_windows(
                self._infer, frame, tiles, threshold, s, floor if s == 1 else None, p.tile_side
            )
            if s == 1:
                weak = Detections.merge(
                    [inside[inside.score < threshold], cut[cut.score < threshold]]
                )
                inside, cut = inside[inside.score >= threshold], cut[cut.score >= threshold]
            # Faces under half the overlap lie whole in a tile of this level, at twice the pixels.
            coarse = found[longer_side(found.xyxy) >= p.min_overlap * k / 2]
            found = patch(coarse, inside, cut)
        return Detections.merge([found, weak])

    def regions(self, evidence: np.ndarray, width: int, height: int) -> list[Window]:
        """Where to look closer: windows of `context` times each evidence box's size, merged
        and snapped to the network's grid at the upscaled scale (the whole frame without
        an evidence threshold)."""
        p = self.policy
        if p.evidence is None:
            return [(0, 0, width, height)]
        if not len(evidence):
            return []
        step = max(1, round(p.align / p.factor))
        return crop_windows(evidence, width, height, p.context, p.min_window, step)

    def closer_look(self, frame: np.ndarray, regions: Sequence[Window]) -> Detections:
        """Small faces found by the upscaled passes over the regions, each split so that no
        network input exceeds `tile_side`. In a frame large enough to be tiled, the inputs
        are padded to multiples of a quarter tile (at most 16 shapes; see in_windows)."""
        p = self.policy
        if not regions:
            return Detections.empty()
        h, w = frame.shape[:2]
        quantum = p.tile_side // 4 if h * w > p.whole_pixels else 1
        side = int(p.tile_side / p.factor)
        step = max(1, round(p.align / p.factor))
        overlap = math.ceil(2 * p.small_face / step) * step
        windows = [tile for region in regions for tile in split(region, side, overlap, step)]
        whole, cut = in_windows(
            self._infer, frame, windows, self.threshold, p.factor, quantum=quantum
        )
        found = patch(Detections.empty(), whole, cut)
        return found[np.maximum(found.width, found.height) < p.small_face]
