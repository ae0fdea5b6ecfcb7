import threading

import cv2
import numpy as np
import pytest

from veil import hide
from veil.detections import Detections
from veil.detectors import DetectorOptions
from veil.detectors.base import Detector
from veil.detectors.centerface import CenterFace
from veil.frame import Frame
from veil.pipeline import BatchDetection, DeadlineDetection, FrameLoop, JobOptions, Pipeline
from veil.tracking import TrackingOptions

from media import ASTRONAUT_FACE, mean_abs_diff, read_video, write_video


def small_faces(astronaut, n, size=(960, 540), scale=0.3, step=4):
    """Frames larger than the coarse pass with a face small enough to need full-resolution crops."""
    small = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        frame = np.full((size[1], size[0], 3), 110, np.uint8)
        x0 = 300 + step * i
        frame[200 : 200 + small.shape[0], x0 : x0 + small.shape[1]] = small
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def pipeline():
    """Without tracking, so the threaded loop can be compared with a plain sequential one."""
    return Pipeline(
        JobOptions(
            detector=DetectorOptions(threads=1, full_every=8), tracking=TrackingOptions(mode="none")
        )
    )


def sequential_reference(pipeline, images):
    """What the threaded loop must reproduce: one scanner, batches in order, hiding after."""
    scanner = pipeline.detector.stream()
    out, per_frame = [], []
    for i in range(0, len(images), scanner.batch_size):
        batch = images[i : i + scanner.batch_size]
        for image, dets in zip(batch, scanner.detect(batch)):
            out.append(hide.apply(image, dets, pipeline.options.anonymize))
            per_frame.append(dets)
    return out, per_frame


def test_threaded_frames_equal_a_sequential_reference(pipeline, astronaut):
    images = small_faces(astronaut, 19)
    expected, expected_dets = sequential_reference(pipeline, images)
    frames = [Frame(i, i / 25, image.copy()) for i, image in enumerate(images)]
    got = list(pipeline.iter_anonymized(iter(frames), 25.0))
    assert [f.index for f, _ in got] == list(range(19))
    for (frame, dets), want, want_dets in zip(got, expected, expected_dets):
        assert np.array_equal(frame.image, want), f"frame {frame.index} differs"
        assert dets == want_dets
    assert all(len(d) >= 1 for _, d in got)


def test_live_frames_leave_without_waiting_for_a_batch(pipeline, astronaut):
    """The keyframe scan batches 8 frames for files; a live frame leaves when it is pushed."""
    detection = DeadlineDetection(pipeline, max_latency=None)
    loop = FrameLoop(pipeline, detection, fps=25.0)
    try:
        out = [
            loop.push(Frame(i, i / 25, im.copy())) for i, im in enumerate(small_faces(astronaut, 5))
        ]
    finally:
        detection.close()
    assert [[item.index for item in ready] for ready in out] == [[0], [1], [2], [3], [4]]
    assert all(len(ready[0].detections) >= 1 for ready in out)


def test_video_with_small_faces_is_hidden_on_every_frame(tmp_path, astronaut, pipeline):
    images = small_faces(astronaut, 12)
    src = write_video(tmp_path / "small.mp4", images, fps=25)
    result = pipeline.process(src, tmp_path / "small_out.mp4")
    after, _ = read_video(result.output)
    decoded, _ = read_video(src)
    x1, y1, x2, y2 = (np.array(ASTRONAUT_FACE) * 0.3).astype(int)
    for i, (b, a, d) in enumerate(zip(images, after, decoded)):
        face = (
            slice(200 + y1 + 10, 200 + y2 - 10),
            slice(300 + 4 * i + x1 + 8, 300 + 4 * i + x2 - 8),
        )
        assert mean_abs_diff(b[face], a[face]) > 8, f"frame {i} face not hidden"
        assert (
            mean_abs_diff(d[450:], a[450:]) < 4
        )  # the background only goes through the codec again


def test_full_resolution_every_frame_option_runs_one_frame_per_call(astronaut):
    calls = []
    det = CenterFace(DetectorOptions(full_every=1, threads=1))
    infer = det.infer
    det.infer = lambda frames, max_size, threshold: (
        calls.append(len(frames)) or infer(frames, max_size, threshold)
    )
    frames = [Frame(i, i / 25, image) for i, image in enumerate(small_faces(astronaut, 3))]
    got = list(
        Pipeline(JobOptions(detector=det.options), detector=det).iter_anonymized(iter(frames), 25.0)
    )
    assert len(got) == 3
    assert calls == [1, 1, 1]


class WaitsForTheLoop(Detector):
    """Holds its second batch until the consumer has received a frame of the first: only a
    loop that hides one batch while the next is detected lets that happen."""

    preferred_batch = 4

    def __init__(self) -> None:
        self.calls, self.received, self.overlapped = 0, threading.Event(), False
        self.threads: set[str] = set()

    def detect(self, frames):
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls == 2:
            self.overlapped = self.received.wait(timeout=20)
        return [Detections.empty() for _ in frames]


def test_the_next_batch_is_detected_while_the_loop_hides_the_one_before(astronaut):
    detector = WaitsForTheLoop()
    pipeline = Pipeline(JobOptions(tracking=TrackingOptions(mode="none")), detector=detector)
    frames = [Frame(i, i / 25, astronaut.copy()) for i in range(12)]
    got = []
    for frame, _ in pipeline.iter_anonymized(iter(frames), 25.0):
        got.append(frame.index)
        detector.received.set()
    assert got == list(range(12))
    assert detector.overlapped
    assert threading.current_thread().name not in detector.threads


class FaceOnEvenFrames(Detector):
    """The astronaut's face at full score on even frames, nothing on odd ones (which the
    gap filler then fills)."""

    def __init__(self) -> None:
        self.frames = 0

    def detect(self, frames):
        out = []
        for _ in frames:
            face = Detections(np.array([ASTRONAUT_FACE]), score=[0.9])
            out.append(face if self.frames % 2 == 0 else Detections.empty())
            self.frames += 1
        return out


def test_confident_faces_are_hidden_while_frames_wait_for_the_look_ahead(astronaut):
    # Extended 10 frames back, a track starting later could still reach every frame pushed.
    options = JobOptions(tracking=TrackingOptions(extend=10))
    pipeline = Pipeline(options, detector=FaceOnEvenFrames())
    loop = FrameLoop(pipeline, BatchDetection(pipeline), fps=25.0)
    planes = cv2.cvtColor(astronaut, cv2.COLOR_BGR2YUV_I420)
    x1, y1, x2, y2 = ASTRONAUT_FACE
    frames = [Frame(i, i / 25, yuv=planes.copy()) for i in range(10)]
    out = []
    for frame in frames:
        out += loop.push(frame)
    assert out == []  # the look-ahead holds all ten frames
    for frame in frames[:8]:  # every batch but the last has been detected
        changed = mean_abs_diff(frame.yuv[y1:y2, x1:x2], planes[y1:y2, x1:x2]) > 10
        assert changed == (frame.index % 2 == 0), frame.index
    out += loop.flush()
    assert [a.frame.index for a in out] == list(range(10))
    for a in out:  # odd frames get the filled box at release; even ones keep theirs
        assert mean_abs_diff(a.frame.image[y1:y2, x1:x2], astronaut[y1:y2, x1:x2]) > 10
        assert len(a.detections) == 1


def test_boxes_released_otherwise_than_promised_are_all_hidden_again(astronaut):
    """A filter whose released boxes do not start with the confident ones handed in (here it
    moves them) still gets every released box hidden: the loop hides them all at release."""

    class Moves:
        def __init__(self):
            self.held = []

        def push(self, frame, detections):
            self.held.append((frame.index, detections.with_(xyxy=detections.xyxy + 200)))
            return []

        def flush(self):
            return self.held

    pipeline = Pipeline(JobOptions(), detector=FaceOnEvenFrames())
    loop = FrameLoop(pipeline, BatchDetection(pipeline), fps=25.0)
    loop._temporal = Moves()
    planes = cv2.cvtColor(astronaut, cv2.COLOR_BGR2YUV_I420)
    x1, y1, x2, y2 = np.array(ASTRONAUT_FACE) + 200
    out = []
    for i in range(4):
        out += loop.push(Frame(i, i / 25, yuv=planes.copy()))
    out += loop.flush()
    for a in out[::2]:
        assert mean_abs_diff(a.frame.image[y1:y2, x1:x2], astronaut[y1:y2, x1:x2]) > 10
