import cv2
import numpy as np
import pytest
import skimage.data

from veil.boxes import box_iou
from veil.detections import Detections
from veil.detectors import DetectorOptions
from veil.detectors.centerface import CenterFace, input_geometry
from veil.detectors.smallfaces import SmallFacePolicy, SmallFaces, fuse, mirror, patch
from veil.detectors.windows import split
from veil.hide import AnonymizeOptions
from veil.pipeline import JobOptions, Pipeline

from media import (
    ASTRONAUT_FACE,
    CAMERA_FACE,
    astronaut_bgr,
    crowd_bgr,
    hidden_faces,
    read_video,
    write_video,
)


@pytest.fixture(scope="module")
def net():
    return CenterFace(DetectorOptions(threads=2))


class Recorder:
    """The real network's infer, logging the input size of every call."""

    def __init__(self, net):
        self.net = net
        self.inputs: list[tuple[int, int]] = []

    def __call__(self, frames, max_size, threshold, floor=None, **kwargs):
        h, w = frames[0].shape[:2]
        _, _, _, ph, pw = input_geometry(h, w, max_size)
        self.inputs += [(ph, pw)] * len(frames)
        return self.net.infer(frames, max_size, threshold, floor, **kwargs)

    @property
    def pixels(self) -> int:
        return sum(h * w for h, w in self.inputs)


def found(faces, dets, iou=0.3):
    if not len(dets):
        return np.zeros(len(faces), bool)
    return box_iou(faces, dets.xyxy).max(axis=1) >= iou


def test_default_hides_small_faces_a_single_pass_misses(net):
    image, faces = crowd_bgr()
    single = Pipeline(JobOptions(), detector=net)
    default = Pipeline(JobOptions(detector=DetectorOptions(threads=2)))
    before = hidden_faces(image, single.anonymize_image(image.copy())[0], faces)
    after = hidden_faces(image, default.anonymize_image(image.copy())[0], faces)
    assert not np.any(before & ~after), "every face the single pass hid stays hidden"
    assert after.sum() > before.sum()


def test_closer_looks_find_what_the_doubled_frame_finds_at_a_fraction_of_its_cost(net):
    image, faces = crowd_bgr()
    everywhere, evidence = Recorder(net), Recorder(net)
    upscaled = SmallFaces(everywhere, 0.2, SmallFacePolicy(evidence=None)).detect([image])[0]
    looked = SmallFaces(evidence, 0.2).detect([image])[0]
    # Nearly all of them: windows split where the whole doubled frame is one input.
    assert found(faces, looked).sum() >= 0.95 * found(faces, upscaled).sum()
    assert evidence.pixels < everywhere.pixels / 2


def test_a_frame_without_small_candidates_costs_one_pass(net, camera):
    rec = Recorder(net)
    policy = SmallFacePolicy()
    native = net.infer([camera], None, 0.2, policy.evidence)[0]
    dets = SmallFaces(rec, 0.2, policy).detect([camera])[0]
    small = np.maximum(native.width, native.height) < policy.small_face
    assert not small.any(), "the portrait's face is large, and nothing small scores"
    assert len(rec.inputs) == 1
    assert found(np.array([CAMERA_FACE], np.float32), dets).all()


def test_large_image_is_read_in_bounded_tiles_and_finds_cut_and_small_faces(net):
    """A tiled frame (limits scaled down so the test stays small): a face cut by a tile
    border is found whole and once, a face larger than the tiles' overlap is found by the
    pyramid level at half size, and small faces still get their closer look."""
    policy = SmallFacePolicy(tile_side=768, whole_pixels=1_000_000)
    image = np.full((1200, 2400, 3), (90, 110, 100), np.uint8)
    crowd, small = crowd_bgr(rows=2)
    image[900:1060, 600:1880] = crowd[280:440]
    small = small + np.array([600, 620, 600, 620], np.float32)
    tiles = split((0, 0, 2400, 1200), policy.tile_side, policy.min_overlap, policy.align)
    faces = []
    for side, x in ((320, tiles[0][2] - 142), (720, tiles[1][2] - 320)):
        portrait = cv2.resize(astronaut_bgr(), (side, side), interpolation=cv2.INTER_AREA)
        image[40 : 40 + side, x : x + side] = portrait
        faces.append(np.array(ASTRONAUT_FACE, np.float32) * side / 512 + [x, 40, x, 40])
    faces = np.array(faces)
    assert faces[0, 0] < tiles[0][2] < faces[0, 2], "the first face is cut by a tile border"
    assert faces[0, 3] - faces[0, 1] < policy.min_overlap
    assert faces[1, 3] - faces[1, 1] > policy.min_overlap
    rec = Recorder(net)
    dets = SmallFaces(rec, 0.2, policy).detect([image])[0]
    assert max(max(h, w) for h, w in rec.inputs) <= policy.tile_side
    assert found(faces, dets, 0.5).all()
    for face in faces:
        assert (box_iou(face[None], dets.xyxy)[0] > 0.05).sum() == 1, "one box per face"
    tiles_only = SmallFaces(net.infer, 0.2, policy).native([image], 0.2)[0]
    assert found(small, dets).sum() > found(small, tiles_only).sum()


def weak_faces_pan(n=16, side=16, step=4):
    """1920x1080 frames of the rocket scene with three LFW faces of `side` px panning right:
    real faces a single native pass scores under the default threshold."""
    scene = cv2.resize(np.ascontiguousarray(skimage.data.rocket()[:, :, ::-1]), (1920, 1080))
    faces = [
        cv2.cvtColor((f * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        for f in skimage.data.lfw_subset()[:3]
    ]
    frames, boxes = [], []
    for i in range(n):
        frame, here = scene.copy(), []
        for k, face in enumerate(faces):
            x, y = 400 + 200 * k + step * i, 500
            frame[y : y + side, x : x + side] = cv2.resize(
                face, (side, side), interpolation=cv2.INTER_AREA
            )
            here.append([x, y, x + side, y + side])
        frames.append(frame)
        boxes.append(np.array(here, np.float32))
    return frames, boxes


def test_video_keeps_small_faces_seen_only_at_low_score_covered_in_every_frame(tmp_path, net):
    frames, faces = weak_faces_pan()
    for frame, boxes in zip(frames, faces):
        assert not found(boxes, net.infer([frame], None, 0.2)[0], iou=0.01).any(), (
            "a single native pass never scores these faces at the threshold"
        )
    clip = write_video(tmp_path / "weak.mp4", frames)

    def covered(detector, name):
        out = {}
        for method in ("blur", "none"):
            options = JobOptions(
                detector=DetectorOptions(threads=2), anonymize=AnonymizeOptions(method=method)
            )
            target = tmp_path / f"{name}_{method}.mp4"
            Pipeline(options, detector=detector).process(clip, target)
            out[method] = read_video(target)[0]
        return np.array([hidden_faces(a, b, f) for a, b, f in zip(out["none"], out["blur"], faces)])

    assert covered(None, "default").all(), "the default hides every face in every frame"
    single_pass = CenterFace(DetectorOptions(threads=2))
    assert not covered(single_pass, "single").all(), "one native pass leaves some visible"


def test_patch_keeps_whole_faces_and_drops_cut_parts_inside_them():
    coarse = Detections(np.array([[0, 0, 40, 40], [200, 200, 260, 260]]), score=[0.9, 0.8])
    whole = Detections(np.array([[2, 2, 42, 42]]), score=[0.95])
    cut = Detections(
        np.array([[200, 200, 230, 260], [500, 500, 520, 520]]), score=[0.7, 0.6]
    )  # half of the second coarse face; a face nothing else boxed
    out = patch(coarse, whole, cut)
    assert len(out) == 3
    assert out.score.tolist() == pytest.approx([0.8, 0.95, 0.6])


def test_fuse_merges_overlaps_and_keeps_the_rest():
    a = Detections(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), score=np.array([0.9, 0.4]))
    b = Detections(np.array([[2, 0, 12, 10], [100, 100, 110, 110]]), score=np.array([0.3, 0.8]))
    out = fuse([a, b])
    assert len(out) == 3
    order = np.argsort(out.xyxy[:, 0])
    merged = out[order[0]]
    assert merged.score[0] == pytest.approx(0.9)
    assert merged.xyxy[0, 0] == pytest.approx(2 * 0.3 / 1.2)  # score-weighted mean of 0 and 2
    assert sorted(np.round(out.score, 2)) == [0.4, 0.8, 0.9]


def fuse_by_definition(parts, threshold=0.5):
    """fuse's rule one box at a time through box_iou: join the first best-overlapping
    cluster, whose box becomes its members' score-weighted mean."""
    merged = Detections.merge(parts)
    order = np.argsort(-merged.score, kind="stable")
    boxes, scores = merged.xyxy[order], merged.score[order]
    members, fused = [], np.zeros((0, 4), np.float32)
    for i in range(len(boxes)):
        ious = box_iou(boxes[i : i + 1], fused)[0]
        if len(ious) and ious.max() >= threshold:
            best = int(np.argmax(ious))
            members[best].append(i)
            w = scores[members[best]]
            fused[best] = (boxes[members[best]] * w[:, None]).sum(0) / w.sum()
        else:
            members.append([i])
            fused = np.concatenate([fused, boxes[i : i + 1]])
    return fused, [scores[m].max() for m in members]


def test_fuse_matches_its_definition_on_a_crowd_of_passes():
    rng = np.random.default_rng(5)
    faces = rng.uniform(0, 1000, (400, 2))
    sides = rng.uniform(6, 40, 400)
    parts = []
    for _ in range(3):  # three passes, each seeing most faces with some jitter
        seen = rng.random(400) < 0.8
        centre = faces[seen] + rng.normal(0, 2, (seen.sum(), 2))
        half = (sides[seen] * rng.uniform(0.8, 1.2, seen.sum()))[:, None] / 2
        scores = np.round(rng.uniform(0.2, 1, seen.sum()), 2)  # ties
        parts.append(Detections(np.hstack([centre - half, centre + half]), score=scores))
    out = fuse(parts)
    boxes, scores = fuse_by_definition(parts)
    assert np.array_equal(out.xyxy, boxes)
    assert out.score.tolist() == pytest.approx(scores)
    assert 380 < len(out) < sum(len(p) for p in parts)


def test_mirror_maps_boxes_and_swaps_landmark_sides():
    lm = np.array([[[2, 3], [8, 3], [5, 5], [3, 8], [7, 8]]], np.float32)
    d = Detections(np.array([[1, 2, 9, 10]]), landmarks=lm)
    m = mirror(d, 100)
    assert np.allclose(m.xyxy, [[91, 2, 99, 10]])
    assert np.allclose(m.landmarks[0, 0], [92, 3])
    assert np.allclose(m.landmarks[0, 1], [98, 3])
    assert np.allclose(mirror(m, 100).xyxy, d.xyxy)
    assert np.allclose(mirror(m, 100).landmarks, lm)
