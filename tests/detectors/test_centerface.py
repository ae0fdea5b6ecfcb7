import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from veil.boxes import box_iou
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.centerface import CenterFace, bundled_model_path, gpu_padded, input_geometry
from veil.errors import OptionError

from media import ASTRONAUT_FACE, CAMERA_FACE, ENV


@pytest.fixture(scope="module")
def detector():
    return create_detector(DetectorOptions())


def inside(box, region, slack=10):
    x1, y1, x2, y2 = region
    return (
        box[0] >= x1 - slack
        and box[1] >= y1 - slack
        and box[2] <= x2 + slack
        and box[3] <= y2 + slack
    )


def test_weights_come_from_installed_package():
    path = bundled_model_path()
    assert path.name == "centerface.onnx"
    assert path.stat().st_size > 1_000_000


def test_finds_the_real_faces(detector, astronaut, camera):
    astro, cam = detector.detect([astronaut]) + detector.detect([camera])
    assert len(astro) == 1
    assert astro.score[0] > 0.8
    assert inside(astro.xyxy[0], ASTRONAUT_FACE)
    assert len(cam) >= 1
    assert inside(cam.xyxy[np.argmax(cam.score)], CAMERA_FACE)
    assert astro.landmarks.shape == (1, 5, 2)
    # Landmarks (eyes, nose, mouth corners) lie inside the face box.
    lm = astro.landmarks[0]
    assert (lm[:, 0] > astro.xyxy[0, 0]).all()
    assert (lm[:, 0] < astro.xyxy[0, 2]).all()


def test_batch_equals_single(detector, astronaut):
    shifted = np.roll(astronaut, 40, axis=1)
    batch = detector.detect([astronaut, shifted])
    singles = detector.detect([astronaut]) + detector.detect([shifted])
    for a, b in zip(batch, singles):
        assert np.allclose(a.xyxy, b.xyxy, atol=0.5)
    assert batch[1].xyxy[0, 0] == pytest.approx(batch[0].xyxy[0, 0] + 40, abs=3)


def test_non_square_frames_keep_aspect(detector, astronaut):
    wide = np.zeros((512, 1000, 3), np.uint8)
    wide[:, 300:812] = astronaut
    found = detector.detect([wide])[0]
    expected = np.array(ASTRONAUT_FACE, np.float32) + [300, 0, 300, 0]
    assert len(found) == 1
    assert inside(found.xyxy[0], expected)


def test_max_size_caps_input_and_boxes_stay_in_frame_pixels(astronaut):
    capped = create_detector(DetectorOptions(max_size=256))
    full = create_detector(DetectorOptions())
    a, b = capped.detect([astronaut])[0], full.detect([astronaut])[0]
    assert len(a) == 1
    assert box_iou(a.xyxy, b.xyxy)[0, 0] > 0.7
    assert input_geometry(1080, 1920, 960)[1:] == (540, 960, 544, 960)
    assert input_geometry(1080, 1920, None) == (1.0, 1080, 1920, 1088, 1920)


def test_the_engine_gets_frames_as_they_are_padded_with_black(astronaut):
    """The photo's pixels at their place (BGR, uint8), the padding to 32 px black whatever the
    freshly allocated blob held, and the cap's scale returned."""
    detector = CenterFace()
    frames = [astronaut[:300, :450], astronaut[100:400, 10:460, :].copy()]
    for _ in range(2):  # the second blob may reuse the first one's memory
        blob, scale = detector.preprocess(frames, None)
        assert blob.shape == (2, 320, 480, 3) and blob.dtype == np.uint8 and scale == 1.0
        for padded, frame in zip(blob, frames):
            assert np.array_equal(padded[:300, :450], frame)
            assert not padded[300:].any() and not padded[:, 450:].any()
        del blob
    capped, scale = detector.preprocess([astronaut], 256)
    assert capped.shape == (1, 256, 256, 3) and scale == 0.5


def test_nothing_on_a_blank_frame(detector):
    assert len(detector.detect([np.full((240, 320, 3), 127, np.uint8)])[0]) == 0


def test_unknown_detector_is_a_user_error():
    with pytest.raises(OptionError, match="unknown detector"):
        create_detector(DetectorOptions(name="nope"))


def test_fp16_finds_the_same_faces_as_fp32(astronaut, camera):
    """The float16 graph a GPU runs by default, checked here on the CPU, which can run it too."""
    single = create_detector(DetectorOptions(backend="onnxruntime", precision="fp32", threads=1))
    half = create_detector(DetectorOptions(backend="onnxruntime", precision="fp16", threads=1))
    assert half.net.precision == "fp16"
    assert create_detector(DetectorOptions(backend="onnxruntime")).net.precision == "fp32"
    for image in (astronaut, camera):
        full, low = single.detect([image])[0], half.detect([image])[0]
        assert len(full) == len(low)
        same = box_iou(full.xyxy, low.xyxy).argmax(axis=1)
        assert np.abs(full.xyxy - low.xyxy[same]).max() < 1.5
        assert np.abs(full.score - low.score[same]).max() < 0.02


def test_unknown_precision_is_a_user_error():
    with pytest.raises(OptionError, match="precision"):
        create_detector(DetectorOptions(precision="int4"))


def test_the_shape_dynamic_model_is_made_once_then_read_without_onnx(tmp_path):
    """The rewrite needs onnx, whose import costs more than the rest of a photo's start."""
    code = (
        "import sys\n"
        "from veil.detectors import DetectorOptions\n"
        "from veil.detectors.centerface import CenterFace\n"
        "from media import ASTRONAUT_FACE, astronaut_bgr\n"
        "net = CenterFace(DetectorOptions(backend=sys.argv[1]))\n"
        "found = net.detect([astronaut_bgr()])[0]\n"
        "print(len(found), 'onnx' in sys.modules)\n"
    )
    tests = str(Path(__file__).resolve().parents[1])
    env = {
        **ENV,
        "XDG_CACHE_HOME": str(tmp_path),
        "PYTHONPATH": ENV["PYTHONPATH"] + os.pathsep + tests,
    }
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, backend],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.split()
        for backend in ("onnxruntime", "onnxruntime", "openvino")
    ]
    assert runs == [["1", "True"], ["1", "False"], ["1", "False"]]
    assert [p.name.startswith("centerface-") for p in (tmp_path / "veil" / "models").iterdir()] == [
        True
    ]


def test_gpu_sizes_pad_small_inputs_and_batches_to_few_steps_and_keep_frames():
    assert gpu_padded(1, 32, 96) == (1, 128, 128)
    assert gpu_padded(3, 160, 288) == (4, 256, 384)
    assert gpu_padded(8, 512, 480) == (8, 512, 512)
    assert gpu_padded(6, 1088, 1920) == (8, 1088, 1920)  # a video's frames: one size anyway
    assert gpu_padded(9, 544, 64) == (16, 544, 128)


def test_the_gpu_path_pads_a_closer_look_and_finds_the_same_face(astronaut):
    """A GPU runs small inputs padded to GPU_STEPS in batches; cut back to the input's own
    outputs, the faces are the CPU path's."""
    cpu = CenterFace(DetectorOptions(backend="onnxruntime", precision="fp32"))
    gpu = CenterFace(DetectorOptions(backend="onnxruntime", precision="fp32"))
    gpu.engine.on_cpu = False  # the batch path a GPU takes, run here on the CPU
    x1, y1, x2, y2 = ASTRONAUT_FACE
    look = np.ascontiguousarray(astronaut[y1 - 40 : y2 + 50, x1 - 30 : x2 + 60])
    looks = [look, look[:, ::-1].copy(), look]
    blob, _ = gpu.preprocess(looks, None, gpu=True)
    h, w = look.shape[:2]
    assert blob.shape[:3] == gpu_padded(3, *input_geometry(h, w, None)[3:])
    assert blob.shape[:3] != (3, *input_geometry(h, w, None)[3:])  # padded past alignment
    assert not blob[:, h:].any() and not blob[:, :, w:].any() and not blob[3:].any()  # black
    expected, found = cpu.detect(looks), gpu.detect(looks)
    assert len(found) == 3
    for e, f in zip(expected, found):
        assert len(f) == len(e) == 1
        assert np.abs(f.xyxy - e.xyxy).max() < 1.0
        assert abs(f.score[0] - e.score[0]) < 0.02
