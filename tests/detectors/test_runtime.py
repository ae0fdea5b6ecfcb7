"""The runtime layer: OpenVINO and onnxruntime find the same faces, `auto` falls back when OpenVINO
is missing, INT8 is quantized once and cached, and float32 stays available."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest

from veil.detectors import DetectorOptions, create_detector, runtime
from veil.detectors.centerface import _dynamic_model_bytes, bundled_model_path
from veil.detectors.runtime import (
    full_precision_layers,
    half_precision,
    native_bf16,
    rgb_planes,
)
from veil.errors import OptionError
from veil.io.images import read_image

from media import ENV, assert_astronaut_found, assert_same_faces, compile_by_use, veil_log

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="openvino is not installed"
)
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="PyTorch is not installed"
)
needs_nncf = pytest.mark.skipif(
    importlib.util.find_spec("nncf") is None, reason="nncf is not installed"
)


@pytest.fixture(scope="module")
def reference():
    """Today's path: onnxruntime, float32."""
    return create_detector(DetectorOptions(backend="onnxruntime", precision="fp32"))


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    """An INT8 detector quantized into a fresh cache folder, with what it logged."""
    cache = tmp_path_factory.mktemp("cache")
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        with veil_log() as lines:
            detector = create_detector(DetectorOptions(precision="int8"))
        yield detector, lines, cache
    finally:
        if saved is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = saved


def detector_for(precision: str, int8):
    return (
        int8[0]
        if precision == "int8"
        else create_detector(DetectorOptions(backend="openvino", precision=precision))
    )


def test_options_name_the_runtime_and_reject_unknown_ones():
    assert DetectorOptions().backend == "auto"
    with pytest.raises(OptionError, match="--backend: invalid choice"):
        DetectorOptions(backend="tensorflow")
    with pytest.raises(OptionError, match="openvino backend"):
        DetectorOptions(backend="onnxruntime", precision="int8")


def test_bf16_only_where_the_cpu_computes_it():
    offered = ["BF16", "FP32", "INT8"]
    assert native_bf16(offered, frozenset({"avx512f", "amx_bf16"}), "x86_64")
    assert native_bf16(offered, frozenset({"avx512f", "avx512_bf16"}), "AMD64")
    # OpenVINO's own list is trusted only where the OS does not list the CPU's flags.
    assert not native_bf16(offered, frozenset({"avx512f", "avx512_vnni"}), "x86_64")
    assert native_bf16(offered, None, "AMD64")
    assert not native_bf16(["FP32", "INT8"], frozenset({"amx_bf16"}), "x86_64")
    assert not native_bf16(offered, None, "arm64")


@needs_openvino
def test_auto_runs_openvino_on_this_cpu(astronaut):
    det = create_detector(DetectorOptions())
    assert det.net.backend == "openvino"
    assert det.net.precision in ("bf16", "int8", "fp32")
    assert (det.backend, det.device) == ("openvino", "cpu")
    assert det.stream() is not None  # a CPU: the keyframe scan applies
    assert_astronaut_found(det.detect([astronaut])[0])


@pytest.mark.parametrize(
    ("backend", "precision"),
    [
        ("onnxruntime", "fp32"),
        ("onnxruntime", "fp16"),
        pytest.param("openvino", "fp32", marks=needs_openvino),
        pytest.param("openvino", "fp16", marks=needs_openvino),
        pytest.param("openvino", "bf16", marks=needs_openvino),
    ],
)
def test_each_precision_keeps_the_astronaut_found(backend, precision, astronaut):
    det = create_detector(DetectorOptions(backend=backend, precision=precision))
    assert (det.backend, det.precision) == (backend, precision)
    assert_astronaut_found(det.detect([astronaut])[0])


@needs_openvino
@needs_nncf
def test_int8_keeps_the_astronaut_found(int8, astronaut):
    assert (int8[0].backend, int8[0].precision) == ("openvino", "int8")
    assert_astronaut_found(int8[0].detect([astronaut])[0])


@needs_openvino
@pytest.mark.parametrize(
    "precision", ["fp32", "fp16", "bf16", pytest.param("int8", marks=needs_nncf)]
)
def test_backends_find_the_same_faces_on_the_test_photos(
    precision, reference, astronaut, camera, request
):
    det = detector_for(precision, request.getfixturevalue("int8") if precision == "int8" else None)
    assert det.net.backend == "openvino"
    assert det.net.precision == precision
    for image in (astronaut, camera):
        expected, found = reference.detect([image])[0], det.detect([image])[0]
        if precision == "int8":
            # 8-bit activations move the heat map's faint peaks, which the small-face policy
            # looks at again: a faint candidate may come or go there, never a sure face.
            assert (found.score >= 0.5).sum() == (expected.score >= 0.5).sum()
        else:
            assert len(found) == len(expected)
        assert_same_faces(expected, found, precision)


@needs_openvino
@pytest.mark.shared_data
@pytest.mark.parametrize("precision", ["fp32", "bf16", pytest.param("int8", marks=needs_nncf)])
def test_backends_find_the_same_faces_in_crowd_photos(precision, reference, shared_data, request):
    det = detector_for(precision, request.getfixturevalue("int8") if precision == "int8" else None)
    photos = sorted((shared_data / "wider_dev" / "images").rglob("*.jpg"))[:4]
    photos += sorted((shared_data / "dlib_pascal_faces" / "images").rglob("*.jpg"))[:2]
    assert len(photos) == 6
    for path in photos:
        image = read_image(path).image
        assert_same_faces(reference.detect([image])[0], det.detect([image])[0], precision)


def test_rgb_planes_are_the_frames_channels_reversed_as_floats(astronaut):
    """What onnxruntime and INT8 calibration give the network: RGB planes, 0..255."""
    frames = np.stack([astronaut[:64, :96], astronaut[64:128, 96:192]])
    planes = rgb_planes(frames)
    assert planes.shape == (2, 3, 64, 96) and planes.dtype == np.float32
    assert np.array_equal(planes, frames[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32))


@needs_openvino
def test_both_runtimes_are_handed_the_frames_as_they_are(reference):
    """CenterFace's engines take padded BGR frames (its network reads RGB planes): the blobs'
    dims are the same on both runtimes, any batch and size, three channels last."""
    openvino = create_detector(DetectorOptions(backend="openvino", precision="fp32")).net.engine
    assert reference.net.engine.input_shape == openvino.input_shape == [None, None, None, 3]


@needs_openvino
def test_fp32_stays_float32(reference, astronaut):
    """Forced float32 gives onnxruntime's numbers; bfloat16 visibly does not (so this can fail)."""
    blob = reference.net.preprocess([astronaut], None)[0]
    expected = reference.net.engine.run(blob)
    full = create_detector(DetectorOptions(backend="openvino", precision="fp32")).net.engine.run(
        blob
    )
    half = create_detector(DetectorOptions(precision="bf16")).net.engine.run(blob)
    assert max(np.abs(a - b).max() for a, b in zip(expected, full)) < 1e-3
    assert max(np.abs(a - b).max() for a, b in zip(expected, half)) > 1e-3


@needs_openvino
@needs_nncf
@pytest.mark.slow
def test_int8_model_is_quantized_once_then_read_from_the_cache(int8, astronaut):
    det, lines, cache = int8
    assert sum("quantizing" in line for line in lines) == 1
    folder = cache / "veil" / "models"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert [p.name for p in files] == ["model.bin", "model.xml"]
    assert not list(folder.glob(".veil-partial-*"))
    written = [p.stat().st_mtime_ns for p in files]
    with veil_log() as again:
        second = create_detector(DetectorOptions(precision="int8"))
    assert not [line for line in again if "quantizing" in line]
    assert [p.stat().st_mtime_ns for p in files] == written
    assert second.net.precision == "int8"
    first_faces, second_faces = det.detect([astronaut])[0], second.detect([astronaut])[0]
    assert np.array_equal(first_faces.xyxy, second_faces.xyxy)


READ_BACK_INT8 = """
import sys
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.centerface import CenterFace

def refuse(self):
    raise AssertionError("calibration blobs made for a cached model")

CenterFace.calibration = refuse
det = create_detector(DetectorOptions(precision="int8"))
print(det.net.precision, "nncf" in sys.modules)
"""


@needs_openvino
@needs_nncf
@pytest.mark.slow
def test_a_cached_int8_model_loads_without_nncf_or_calibration_photos(int8):
    """Importing NNCF and making and hashing the calibration blobs took 0.8 s of every INT8
    run's start: the cache is found by the calibration's key alone."""
    env = {**ENV, "XDG_CACHE_HOME": str(int8[2])}
    run = subprocess.run(
        [sys.executable, "-c", READ_BACK_INT8], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["int8", "False"]
    assert "quantizing" not in run.stderr


@needs_openvino
def test_int8_runs_its_unquantized_layers_in_bfloat16_where_the_cpu_computes_it(monkeypatch):
    capabilities = runtime.openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    with_bf16 = frozenset({"avx512f", "avx512_bf16"})
    monkeypatch.setattr(runtime, "cpu_flags", lambda: with_bf16)
    assert runtime._hint("int8") == ("bf16" if native_bf16(capabilities, with_bf16) else "f32")
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    assert runtime._hint("int8") == "f32"
    assert (runtime._hint("fp32"), runtime._hint("bf16")) == ("f32", "bf16")


@needs_openvino
def test_compiled_shapes_are_kept_within_their_pixel_budget(monkeypatch):
    """A keyframe scan cycles through more shapes than a few: the budget is in input pixels,
    and what goes first is the shape used longest ago."""
    monkeypatch.setattr(runtime, "STATIC_PIXELS", 38_000)
    engine = create_detector(
        DetectorOptions(backend="openvino", precision="fp32", threads=1)
    ).net.engine
    shapes = [(1, 96, 128, 3), (1, 64, 64, 3), (1, 96, 96, 3)]  # 25600 pixels: all kept
    for shape in shapes:
        compile_by_use(engine, shape)
    assert engine.compiled_shapes == shapes
    engine.run(np.zeros(shapes[0], np.uint8))  # now the least recently used is 64x64
    compile_by_use(engine, (1, 128, 128, 3))  # 41984 pixels: 64x64 goes, 37888 stay
    assert engine.compiled_shapes == [shapes[2], shapes[0], (1, 128, 128, 3)]


@needs_openvino
def test_other_shapes_run_shape_agnostic_until_they_earn_their_own_compilation():
    engine = create_detector(
        DetectorOptions(backend="openvino", precision="fp32", threads=1)
    ).net.engine
    frame = np.zeros((1, 96, 128, 3), np.uint8)
    crop = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), np.uint8)
    engine.run(frame)
    assert engine.compiled_shapes == [frame.shape]
    first = engine.run(crop)
    assert crop.shape not in engine.compiled_shapes
    compile_by_use(engine, crop.shape)
    again = engine.run(crop)
    assert max(np.abs(a - b).max() for a, b in zip(first, again)) < 1e-3


@needs_openvino
def test_the_ends_of_the_network_stay_in_float_under_int8():
    net = create_detector(DetectorOptions(backend="openvino", precision="fp32")).net
    # The convolution reading the image, and the four heads (score, size, offset, landmarks).
    assert len(full_precision_layers(net.engine.model)) == 5


HIDE_OPENVINO = """
import importlib.abc, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "openvino":
            raise ImportError("No module named 'openvino'")

sys.meta_path.insert(0, Hide())
from veil.detectors import DetectorOptions, create_detector
from veil.errors import DetectorError
from veil.io.images import read_image

det = create_detector(DetectorOptions())
print(det.net.backend, det.net.precision, len(det.detect([read_image(sys.argv[1]).image])[0]))
try:
    create_detector(DetectorOptions(backend="openvino"))
except DetectorError as exc:
    print("explicit:", exc)
"""


def test_auto_falls_back_to_onnxruntime_without_openvino(tmp_path, astronaut):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut)
    run = subprocess.run(
        [sys.executable, "-c", HIDE_OPENVINO, str(photo)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    auto, explicit = run.stdout.splitlines()
    assert auto == "onnxruntime fp32 1"
    assert "pip install 'veil[openvino]'" in explicit
    lines = run.stderr.splitlines()
    assert len(lines) == 1
    assert "running it on onnxruntime" in lines[0]


def test_half_precision_graph_keeps_float32_at_its_edges():
    model = onnx.load_from_string(_dynamic_model_bytes(str(bundled_model_path())))
    half_precision(model)
    onnx.checker.check_model(model)
    edges = list(model.graph.input) + list(model.graph.output)
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in edges)
    weights = [i for i in model.graph.initializer if i.dims]
    assert weights
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)


@pytest.mark.parametrize(
    "backend",
    [
        "onnxruntime",
        pytest.param("openvino", marks=needs_openvino),
        pytest.param("torch", marks=needs_torch),
    ],
)
def test_text_detector_runs_on_the_chosen_backend_with_the_same_map(backend, camera):
    pytest.importorskip("rapidocr_onnxruntime")
    from veil.detectors.ppocr_text import PpocrText

    det = PpocrText(DetectorOptions(backend=backend))
    assert (det.backend, det.precision, det.device) == (backend, "fp32", "cpu")
    blob = np.ascontiguousarray(
        ((cv2.resize(camera, (512, 512)).astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)
    )[None]
    reference = PpocrText(DetectorOptions(backend="onnxruntime")).engine.run(blob)[0]
    assert np.abs(det.engine.run(blob)[0] - reference).max() < 1e-3


@needs_openvino
def test_int8_without_calibration_photos_runs_float32_and_says_so():
    pytest.importorskip("rapidocr_onnxruntime")
    from veil.detectors.ppocr_text import PpocrText

    with veil_log() as lines:
        det = PpocrText(DetectorOptions(precision="int8"))
    assert (det.backend, det.precision) == ("openvino", "fp32")
    assert sum("INT8 needs calibration photos" in line for line in lines) == 1


COUNT_TELEMETRY = """
import sys
import openvino_telemetry

def record(self, *args, **kwargs):
    print("telemetry", flush=True)

openvino_telemetry.Telemetry.__init__ = record
from veil.detectors import DetectorOptions, create_detector
from veil.io.images import read_image

det = create_detector(DetectorOptions(precision=sys.argv[2]))
print(det.net.backend, det.net.precision, len(det.detect([read_image(sys.argv[1]).image])[0]))
"""


@needs_openvino
@pytest.mark.parametrize("precision", ["bf16", pytest.param("int8", marks=needs_nncf)])
def test_openvino_and_nncf_send_no_usage_reports(precision, tmp_path, astronaut):
    """OpenVINO's convert_model and NNCF's quantize report usage to Google Analytics unless
    openvino_telemetry is kept out; nothing of veil's may leave the machine."""
    # An empty cache folder: INT8 is quantized here, where NNCF runs (a cached model loads
    # without it).
    env = {**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut)
    run = subprocess.run(
        [sys.executable, "-c", COUNT_TELEMETRY, str(photo), precision],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"openvino {precision} 1"]


def test_auto_runs_float32_on_onnxruntime():
    """OpenVINO's float32 measured no faster than onnxruntime's, so auto keeps it there."""
    det = create_detector(DetectorOptions(precision="fp32", threads=1))
    assert (det.backend, det.precision) == ("onnxruntime", "fp32")


@needs_openvino
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_recurring_blobs_run_several_at_once_with_the_outputs_of_one_at_a_time(
    astronaut, precision
):
    """run_many's recurring shape gets a model with a stream per thread; each blob's outputs
    are run's, in the order given, with more blobs than streams."""
    engine = create_detector(
        DetectorOptions(backend="openvino", precision=precision, threads=2)
    ).net.engine
    if precision == "bf16" and engine.precision != "bf16":
        pytest.skip("this CPU has no hardware bfloat16")
    rng = np.random.default_rng(0)
    small = cv2.resize(astronaut, (128, 96), interpolation=cv2.INTER_AREA)
    blobs = [small[None]]
    blobs += [rng.integers(0, 256, (1, 96, 128, 3), np.uint8) for _ in range(4)]
    one_by_one = [engine.run(blob) for blob in blobs]
    assert engine.parallel_shapes == []
    assert [len(o) for o in engine.run_many(iter(blobs))] == [4] * 5  # not recurring: run's way
    assert engine.parallel_shapes == []
    together = engine.run_many(iter(blobs), recurring=True)
    assert engine.parallel_shapes == [(1, 96, 128, 3)]
    assert len(together) == len(blobs)
    for alone, parallel in zip(one_by_one, together):
        for a, b in zip(alone, parallel):
            assert a.shape == b.shape
            assert np.abs(a - b).max() < (1e-3 if precision == "fp32" else 0.05)
    assert engine.run_many(iter([]), recurring=True) == []


@needs_openvino
def test_run_many_waits_for_its_requests_when_the_blobs_fail():
    """A generator that fails half way, or a blob of another shape, leaves no request running
    on memory about to be freed, and the engine keeps working."""
    engine = create_detector(
        DetectorOptions(backend="openvino", precision="fp32", threads=2)
    ).net.engine
    blob = np.zeros((1, 64, 64, 3), np.uint8)

    def failing():
        yield from (blob, blob, blob)
        raise RuntimeError("frame unreadable")

    with pytest.raises(RuntimeError, match="unreadable"):
        engine.run_many(failing(), recurring=True)
    with pytest.raises(ValueError, match="of one shape"):
        engine.run_many([blob, np.zeros((1, 96, 96, 3), np.uint8)], recurring=True)
    expected = engine.run(blob)
    again = engine.run_many([blob] * 3, recurring=True)
    assert all(np.array_equal(a, b) for outputs in again for a, b in zip(outputs, expected))
