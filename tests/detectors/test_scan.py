import logging

import cv2
import numpy as np
import onnxruntime
import pytest

from veil.boxes import box_iou
from veil.detections import Detections
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.centerface import CenterFace
from veil.detectors.scan import KeyframeScanner, ScanPolicy, greedy_pairs, midway
from veil.detectors.smallfaces import SmallFacePolicy, SmallFaces

from media import ASTRONAUT_FACE


@pytest.fixture(scope="module")
def detector():
    return CenterFace(DetectorOptions(threads=1))


class Recorder:
    """The real detector's infer, with a log of which input size each frame ran at."""

    def __init__(self, detector):
        self.detector = detector
        self.calls: list[tuple[tuple[int, int], int | None, int]] = []

    def __call__(self, frames, max_size, threshold, **kwargs):
        self.calls.append((frames[0].shape[:2], max_size, len(frames)))
        return self.detector.infer(frames, max_size, threshold, **kwargs)

    def full_frames(self, shape):
        return sum(n for s, m, n in self.calls if s == shape and m is None)


def small_face_pan(astronaut, n, scale=0.4, step=5):
    """1920x1080 frames with the astronaut shrunk so the face is small, panning right."""
    small = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        frame = np.full((1080, 1920, 3), 90, np.uint8)
        x0, y0 = 700 + step * i, 500
        frame[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
        frames.append(frame)
    face = np.array(ASTRONAUT_FACE, np.float32) * scale
    return frames, [face + [700 + step * i, 500, 700 + step * i, 500] for i in range(n)]


def run(scanner, frames):
    out = []
    for i in range(0, len(frames), scanner.batch_size):
        out += scanner.detect(frames[i : i + scanner.batch_size])
    return out


def test_frames_within_the_coarse_size_always_run_at_full_resolution(detector, astronaut):
    rec = Recorder(detector)
    frames = [astronaut, np.roll(astronaut, 20, axis=1), np.roll(astronaut, 40, axis=1)]
    found = KeyframeScanner(rec, 0.2, ScanPolicy(coarse_size=640)).detect(frames)
    assert all(m is None for _, m, _ in rec.calls)
    for a, b in zip(found, detector.infer(frames, None, 0.2)):
        assert np.allclose(a.xyxy, b.xyxy, atol=0.5)


def test_full_every_one_is_full_resolution_on_every_frame(detector, astronaut):
    frames, _ = small_face_pan(astronaut, 3)
    rec = Recorder(detector)
    KeyframeScanner(rec, 0.2, ScanPolicy(full_every=1)).detect(frames)
    assert rec.full_frames((1080, 1920)) == 3


def test_small_moving_face_is_found_on_every_frame_with_few_full_passes(detector, astronaut):
    frames, faces = small_face_pan(astronaut, 16)
    rec = Recorder(detector)
    scanner = KeyframeScanner(rec, 0.2, ScanPolicy(full_every=8, coarse_size=640))
    found = run(scanner, frames)
    # Keyframes: first frame of the stream, then the last of each batch of 8.
    assert rec.full_frames((1080, 1920)) == 3
    assert any(m == 640 for _, m, _ in rec.calls)
    assert any(s[0] < 1080 for s, _, _ in rec.calls), (
        "small faces are searched in full-resolution crops"
    )
    for i, (dets, face) in enumerate(zip(found, faces)):
        assert len(dets) >= 1, f"frame {i}: face missed"
        assert box_iou(face, dets.xyxy).max() > 0.4, f"frame {i}: face missed"


def test_scan_matches_full_resolution_on_a_face_the_coarse_pass_misses(detector, astronaut):
    frames, faces = small_face_pan(astronaut, 8, scale=0.22)
    full = [detector.infer([f], None, 0.2)[0] for f in frames]
    coarse = [detector.infer([f], 640, 0.2)[0] for f in frames]

    def hits(dets):
        return sum(
            len(d) > 0 and box_iou(face, d.xyxy).max() >= 0.5 for d, face in zip(dets, faces)
        )

    assert hits(full) == 8
    assert hits(coarse) < 8  # the face is too small for a downscaled pass alone
    scan = KeyframeScanner(detector.infer, 0.2, ScanPolicy(full_every=8, coarse_size=640)).detect(
        frames
    )
    assert hits(scan) == 8


def test_crops_see_what_the_full_pass_sees(detector, astronaut):
    """Crops snap to the network's stride: a face inside one gets the full pass's box, unshifted."""
    frames, _ = small_face_pan(astronaut, 8, scale=0.22, step=7)
    full = [detector.infer([f], None, 0.2)[0] for f in frames]
    scan = KeyframeScanner(detector.infer, 0.2, ScanPolicy(full_every=8, coarse_size=640)).detect(
        frames
    )
    for i, (a, b) in enumerate(zip(scan, full)):
        assert len(b) == 1, f"frame {i}"
        assert len(a) >= 1, f"frame {i}"
        same = int(box_iou(b.xyxy, a.xyxy)[0].argmax())
        assert np.abs(a.xyxy[same] - b.xyxy[0]).max() < 0.5, f"frame {i}"
        assert abs(a.score[same] - b.score[0]) < 0.02, f"frame {i}"


def test_fast_pan_finds_a_small_face_on_its_path_between_keyframes(detector, astronaut):
    """At 40 px a frame the face is beyond a crop's margin around both keyframes most of the way."""
    frames, faces = small_face_pan(astronaut, 16, scale=0.22, step=40)

    def hits(dets):
        return [len(d) > 0 and box_iou(face, d.xyxy).max() >= 0.5 for d, face in zip(dets, faces)]

    full = hits([detector.infer([f], None, 0.2)[0] for f in frames])
    scan = hits(
        run(KeyframeScanner(detector.infer, 0.2, ScanPolicy(full_every=8, coarse_size=640)), frames)
    )
    assert sum(full) >= 14
    assert scan == full


def test_a_new_stream_starts_with_a_keyframe(detector, astronaut):
    frames, _ = small_face_pan(astronaut, 4)
    rec = Recorder(detector)
    scanner = KeyframeScanner(rec, 0.2, ScanPolicy(full_every=8))
    scanner.detect(frames)
    assert rec.full_frames((1080, 1920)) == 2  # first and last
    scanner.detect(frames)
    assert (
        rec.full_frames((1080, 1920)) == 3
    )  # the previous batch's last keyframe brackets this one


def test_midway_boxes_come_only_from_neighbours_whose_strong_boxes_agree():
    before = Detections(
        [[0, 0, 100, 100], [200, 0, 240, 40]], score=[0.9, 0.3], landmarks=np.zeros((2, 5, 2))
    )
    after = Detections(
        [[204, 2, 244, 42], [10, 0, 110, 100]], score=[0.5, 0.8], landmarks=np.full((2, 5, 2), 2)
    )
    mid = midway(before, after, 0.6)
    assert np.allclose(mid.xyxy, [[5, 0, 105, 100], [202, 1, 242, 41]])
    assert np.allclose(mid.score, [0.9, 0.5])  # the higher score of each pair
    assert np.allclose(mid.landmarks, 1)
    assert midway(before, after[:1], 0.6) is None  # a face came or went
    assert midway(before, after.with_(xyxy=after.xyxy + [0, 30, 0, 30]), 0.6) is None  # moved
    assert midway(before, after.with_(class_id=[0, 2]), 0.6) is None
    assert len(midway(before[:0], after[:0], 0.6)) == 0
    # Boxes under `strong` need not agree: unpaired, they are left out.
    weak_gone = midway(before, after[1:], 0.6, strong=0.5)
    assert np.allclose(weak_gone.xyxy, [[5, 0, 105, 100]])
    assert midway(before, after[:1], 0.6, strong=0.5) is None  # the strong face went


def face_scene(astronaut, n, present):
    """1920x1080 frames, the astronaut at half size where present(i)."""
    face = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        frame = np.full((1080, 1920, 3), 90, np.uint8)
        if present(i):
            frame[400:656, 800:1056] = face
        frames.append(frame)
    return frames


def coarse_frames(rec):
    return sum(n for _, m, n in rec.calls if m == 640)


def test_frames_between_two_agreeing_frames_take_their_midway_boxes(detector, astronaut):
    """Every other frame between keyframes is scanned; the frames between those, where both
    sides see the same faces, get the midway boxes without a pass of their own."""
    frames = face_scene(astronaut, 16, lambda i: True)
    rec = Recorder(detector)
    found = run(KeyframeScanner(rec, 0.2, ScanPolicy(full_every=8)), frames)
    # Keyframes 0, 7 and 15; of the 13 frames between, 6 are scanned and 7 take midway boxes.
    assert rec.full_frames((1080, 1920)) == 3
    assert coarse_frames(rec) == 6
    reference = detector.infer(frames[:1], None, 0.2)[0]
    for i, dets in enumerate(found):
        assert box_iou(reference.xyxy[:1], dets.xyxy).max() > 0.9, f"frame {i}"


def test_a_face_that_appears_between_two_scanned_frames_gets_its_own_pass(detector, astronaut):
    frames = face_scene(astronaut, 8, lambda i: i >= 3)
    rec = Recorder(detector)
    found = KeyframeScanner(rec, 0.2, ScanPolicy(full_every=8)).detect(frames)
    # Scanned: 2, 4 and 6; frames 2 and 4 disagree, so 3 gets its pass; 1 and 5 take midway.
    assert coarse_frames(rec) == 4
    assert [len(d) > 0 for d in found] == [False] * 3 + [True] * 5


def test_a_new_stream_announces_its_keyframes_then_its_coarse_pass(detector, astronaut):
    """Both models start loading before the first keyframe runs, the keyframe's first (it is
    waited for at once); frames the small-face policy reads in tiles announce no keyframe."""
    frames, _ = small_face_pan(astronaut, 3)
    told = []

    def prepare(height, width, max_size, *, recurring=False):
        told.append(((height, width), max_size, recurring, len(rec.calls)))

    rec = Recorder(detector)
    scanner = KeyframeScanner(rec, 0.2, ScanPolicy(full_every=8), prepare=prepare)
    scanner.detect(frames)
    assert told == [((1080, 1920), None, False, 0), ((1080, 1920), 640, True, 0)]
    scanner.detect(frames)  # the same stream: nothing new to announce
    assert len(told) == 2
    told.clear()
    infer = detector.infer
    tiles = SmallFaces(infer, 0.2, SmallFacePolicy(whole_pixels=1920 * 1080 - 1))
    KeyframeScanner(infer, 0.2, ScanPolicy(full_every=8), tiles, prepare=prepare).detect(frames)
    assert [max_size for _, max_size, _, _ in told] == [640]


def test_a_stream_is_told_which_scores_stand_on_their_own():
    """The tracker's weak detections (down to the detector's threshold) need not agree for a
    frame to take midway boxes; without a word from the pipeline every box must."""
    detector = create_detector(DetectorOptions(threshold=0.1))
    assert detector.stream(strong=0.3).strong == 0.3
    assert detector.stream().strong == 0.1


def test_detector_scans_videos_by_default_unless_switched_off_or_capped():
    assert create_detector(DetectorOptions()).stream().policy.full_every == 8
    # Every frame a keyframe: the small-face policy still follows the faces it found.
    assert create_detector(DetectorOptions(full_every=1)).stream().policy.full_every == 1
    assert create_detector(DetectorOptions(max_size=640)).stream() is None
    assert create_detector(DetectorOptions(quality="max")).stream() is None


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="a GPU is present"
)
def test_cuda_falls_back_to_cpu_with_one_warning_line(caplog, astronaut):
    with caplog.at_level(logging.WARNING, logger="veil"):
        det = create_detector(DetectorOptions(device="cuda"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "running on the CPU" in warnings[0]
    assert "\n" not in warnings[0]
    assert det.provider == "CPUExecutionProvider"
    assert len(det.detect([astronaut])[0]) == 1


def test_auto_device_is_quiet(caplog):
    with caplog.at_level(logging.WARNING, logger="veil"):
        create_detector(DetectorOptions(device="auto"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _greedy_one_by_one(cost):
    """The definition: cheapest candidate pair first, taken while its row and column are free."""
    rows, cols = np.nonzero(np.isfinite(cost))
    used_rows, used_cols, pairs = set(), set(), []
    for k in np.argsort(cost[rows, cols], kind="stable"):
        i, j = int(rows[k]), int(cols[k])
        if i not in used_rows and j not in used_cols:
            used_rows.add(i)
            used_cols.add(j)
            pairs.append((i, j))
    return np.array(pairs, np.int64).reshape(-1, 2)


def test_greedy_pairs_in_rounds_equal_greedy_one_pair_at_a_time():
    rng = np.random.default_rng(7)
    for trial in range(300):
        a, b = rng.integers(0, 25, size=2)
        cost = rng.uniform(0, 5, size=(a, b))
        cost[rng.uniform(size=(a, b)) < rng.uniform(0, 0.9)] = np.inf
        assert np.array_equal(greedy_pairs(cost), _greedy_one_by_one(cost)), trial
    # A crowd panning: 800 faces, each moved a little.
    before = rng.uniform(0, 1900, size=(800, 2))
    after = before + rng.normal(0, 3, size=(800, 2)) + [20, 0]
    cost = np.linalg.norm(before[:, None] - after[None], axis=2) / 20
    cost[cost > 24] = np.inf
    assert np.array_equal(greedy_pairs(cost), _greedy_one_by_one(cost))
