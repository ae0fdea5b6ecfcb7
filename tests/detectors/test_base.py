"""The detector contract: defaults, every backend under it, composites keeping the keyframe scan,
options that check themselves, and the shared detector cache."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from veil.boxes import box_iou
from veil.detections import Detections
from veil.detectors import (
    CACHE_SIZE,
    Detector,
    DetectorOptions,
    create_detector,
    detector_for,
)
from veil.detectors.blazeface import BlazeFace, BlazeFaceFast
from veil.detectors.centerface import CenterFace
from veil.detectors.composite import Composite
from veil.detectors.hog_people import HogPeople
from veil.detectors.onnx_models import OnnxModel
from veil.detectors.ppocr_text import PpocrText
from veil.detectors.presets import PresetDetector
from veil.detectors.selfie_segmentation import SelfieSegmentation
from veil.errors import OptionError
from veil.frame import Frame
from veil.pipeline import JobOptions, Pipeline
from veil.tracking import TrackingOptions, detector_options

from media import ASTRONAUT_FACE


class Nothing(Detector):
    """A user's own detector that writes only `detect`, recording the frame sizes it is given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def detect(self, frames):
        self.shapes += [f.shape[:2] for f in frames]
        return [Detections.empty() for _ in frames]


class CountingCenterFace(CenterFace):
    """The real CenterFace, logging the frame size and input cap of every network pass."""

    def __init__(self, options: DetectorOptions) -> None:
        super().__init__(options)
        self.passes: list[tuple[tuple[int, int], int | None]] = []

    def infer(self, frames, max_size, threshold, floor=None, **kwargs):
        self.passes += [(f.shape[:2], max_size) for f in frames]
        return super().infer(frames, max_size, threshold, floor, **kwargs)

    def full_resolution(self, shape: tuple[int, int]) -> int:
        return sum(1 for s, cap in self.passes if s == shape and cap is None)


def hd_pan(astronaut: np.ndarray, n: int, step: int = 6) -> tuple[list[np.ndarray], list]:
    """1920x1080 frames with the astronaut panning right, and the face box in each."""
    h, w = astronaut.shape[:2]
    frames, faces = [], []
    for i in range(n):
        frame = np.full((1080, 1920, 3), 90, np.uint8)
        x0, y0 = 600 + step * i, 300
        frame[y0 : y0 + h, x0 : x0 + w] = astronaut
        frames.append(frame)
        faces.append(np.array(ASTRONAUT_FACE, np.float32) + [x0, y0, x0, y0])
    return frames, faces


def test_a_detector_writes_detect_and_gets_the_rest():
    own = Nothing()
    assert own.stream() is None
    assert own.preferred_batch == 1
    assert (own.backend, own.device, own.precision) == ("python", "cpu", "fp32")
    with pytest.raises(TypeError):
        Detector()  # type: ignore[abstract]


@pytest.mark.parametrize(
    "backend",
    [
        CenterFace,
        PresetDetector,
        HogPeople,
        SelfieSegmentation,
        BlazeFace,
        BlazeFaceFast,
        PpocrText,
        OnnxModel,
        Composite,
    ],
)
def test_every_backend_is_a_detector(backend):
    assert issubclass(backend, Detector)


def test_backends_say_what_they_run_with():
    face = create_detector(DetectorOptions(backend="onnxruntime", threads=1))
    assert (face.backend, face.device, face.precision) == ("onnxruntime", "cpu", "fp32")
    half = create_detector(DetectorOptions(backend="onnxruntime", precision="fp16", threads=1))
    assert half.precision == "fp16"
    both = create_detector(DetectorOptions(backend="onnxruntime", targets="face,person", threads=1))
    assert both.backend == "onnxruntime+opencv"
    assert both.device == "cpu"


def test_composite_batches_as_its_hungriest_part():
    big = Nothing()
    big.preferred_batch = 8
    assert Composite({"face": Nothing(), "person": big}).preferred_batch == 8


def test_composite_without_scans_detects_each_batch():
    assert Composite({"face": Nothing(), "person": Nothing()}).stream() is None


def test_face_and_person_targets_keep_the_keyframe_scan():
    both = create_detector(DetectorOptions(targets=("face", "person"), threads=1))
    stream = both.stream()
    assert stream is not None
    assert stream.batch_size == DetectorOptions.full_every


def test_composite_scans_faces_at_full_resolution_on_keyframes_only(astronaut):
    """face,person through the pipeline on a 1080p clip: CenterFace reads full resolution on the
    keyframes only, the person detector sees every frame whole, and no face is missed."""
    options = DetectorOptions(targets=("face", "person"), threads=1, full_every=8)
    net = CountingCenterFace(options)
    person = Nothing()
    composite = Composite({"face": PresetDetector(options, net=net), "person": person})
    frames, faces = hd_pan(astronaut, 16)
    job = JobOptions(detector=options, tracking=TrackingOptions(mode="none"))
    out = list(
        Pipeline(job, detector=composite).iter_anonymized(
            (Frame(i, i / 25, f.copy()) for i, f in enumerate(frames)), 25.0
        )
    )
    assert len(out) == 16
    # Batches of 8 end on keyframes: frames 0 and 7 in the first, 15 in the second.
    assert net.full_resolution((1080, 1920)) == 3
    assert person.shapes == [(1080, 1920)] * 16
    for (_, dets), face in zip(out, faces):
        assert len(dets) > 0
        # ASTRONAUT_FACE is a loose hand box (hair to chin) around CenterFace's tighter one, so
        # their IoU sits near 0.5 and a pixel of arithmetic noise (bf16) crosses it; "found" is
        # the detection centred inside the label and overlapping it.
        best = dets[int(box_iou(face, dets.xyxy).argmax())].xyxy[0]
        centre = (best[:2] + best[2:]) / 2
        assert face[0] < centre[0] < face[2]
        assert face[1] < centre[1] < face[3]
        assert box_iou(face, best[None]).max() > 0.4


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"targets": ("face", "cars")}, "--targets: invalid choice 'cars'"),
        ({"targets": ()}, "--targets: name at least one"),
        ({"person": "yolo"}, "--person: invalid choice 'yolo'"),
        ({"quality": "ultra"}, "--quality: invalid choice 'ultra'"),
        ({"precision": "int4"}, "--precision: invalid choice 'int4'"),
        ({"device": "tpu"}, "--device: invalid choice 'tpu'"),
        ({"name": "nope"}, "unknown detector 'nope'"),
        ({"name": "onnx"}, "unknown detector 'onnx'"),
        ({"name": "hog"}, "not a face detector"),
        ({"threshold": 1.5}, "--threshold"),
        ({"threshold": -0.1}, "--threshold"),
        ({"threshold": "high"}, "--threshold"),
        ({"max_size": 0}, "--max-size"),
        ({"max_size": -640}, "--max-size"),
        ({"full_every": 0}, "--full-every"),
        ({"full_every": 2.5}, "--full-every"),
        ({"threads": -1}, "--threads"),
    ],
)
def test_options_check_themselves_with_one_line(changes, words):
    with pytest.raises(OptionError, match=words) as caught:
        DetectorOptions(**changes)
    assert "\n" not in str(caught.value)


def test_options_accept_a_comma_separated_target_list():
    options = DetectorOptions(targets="face, text")
    assert options.targets == ("face", "text")
    assert options == DetectorOptions(targets=("face", "text"))
    assert DetectorOptions(name="onnx:model.onnx").name == "onnx:model.onnx"


def test_equal_options_share_one_detector():
    first = detector_for(DetectorOptions(threshold=0.31, threads=1))
    assert detector_for(DetectorOptions(threshold=0.31, threads=1)) is first
    assert detector_for(DetectorOptions(threshold=0.32, threads=1)) is not first


def test_the_tracker_lowered_threshold_is_part_of_the_key():
    user = DetectorOptions(threshold=0.34, threads=1)
    tracked = detector_options(TrackingOptions(low_threshold=0.12), user)
    assert tracked.threshold == pytest.approx(0.12)
    assert detector_for(tracked) is not detector_for(user)
    assert detector_for(tracked).options.threshold == pytest.approx(0.12)
    untracked = detector_options(TrackingOptions(mode="none"), user)
    assert detector_for(untracked) is detector_for(user)


def test_threads_asking_at_once_load_one_detector():
    options = DetectorOptions(threshold=0.33, threads=1)
    start = threading.Barrier(6)
    got: list[Detector] = []

    def ask() -> None:
        start.wait()
        got.append(detector_for(options))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 6
    assert all(d is got[0] for d in got)


def test_cache_keeps_the_most_recent_settings():
    people = DetectorOptions(targets=("person",), threshold=0.05)
    oldest = detector_for(people)
    for i in range(1, CACHE_SIZE + 1):
        detector_for(replace(people, threshold=0.05 + i / 100))
    assert detector_for(people) is not oldest
