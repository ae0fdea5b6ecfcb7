"""The PyTorch backend: each operation it runs gives onnxruntime's result, the face detector
finds the same faces in float32 and float16, and what it cannot run is said when the model
loads (an error where it was asked for by name, onnxruntime after one line where not)."""

from __future__ import annotations

import platform
import subprocess
import sys

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from veil.detectors import DetectorOptions, create_detector, runtime
from veil.errors import DetectorError, OptionError
from veil.io.images import read_image

from media import ASTRONAUT_FACE, ENV, assert_astronaut_found, assert_same_faces, veil_log

torch = pytest.importorskip("torch")

from veil.detectors.torch_graph import OPS, Program, TorchEngine, Unsupported  # noqa: E402

RNG = np.random.default_rng(7)
# What --backend auto runs veil's face detector on with this CPU.
CPU_CHOICE = "openvino" if platform.machine().lower() in runtime.X86_64 else "onnxruntime"


def weight(name: str, *shape: int, scale: float = 0.3) -> TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def ints(name: str, *values: int) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def floats(name: str, *values: float) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.float32), name)


def graph(nodes, inits=(), *, shape=(1, 4, 9, 11), opset: int = 13) -> bytes:
    """One float input x of `shape`, output y."""
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        list(inits),
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def node(op: str, inputs, **attrs):
    return helper.make_node(op, list(inputs), ["y"], **attrs)


# (id, nodes, initializers, input shape, opset): a graph per operation and the attribute
# cases that need care (asymmetric pads, opset-dependent inputs, rounding of resizes).
CASES = [
    ("conv", [node("Conv", "xwb", pads=[1, 1, 1, 1])], [weight("w", 6, 4, 3, 3), weight("b", 6)]),
    (
        "conv-asymmetric-strided-grouped",
        [node("Conv", "xw", pads=[0, 1, 2, 1], strides=[2, 2], group=2, dilations=[1, 2])],
        [weight("w", 4, 2, 3, 3)],
    ),
    (
        "conv-transpose",
        [node("ConvTranspose", "xwb", strides=[2, 2], kernel_shape=[2, 2])],
        [weight("w", 4, 3, 2, 2), weight("b", 3)],
    ),
    (
        "conv-transpose-pads",
        [node("ConvTranspose", "xw", strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 1])],
        [weight("w", 4, 2, 3, 3)],
    ),
    (
        "batch-norm",
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
        [weight("s", 4), weight("b", 4), weight("m", 4), floats("v", 0.5, 1, 2, 3)],
    ),
    (
        "max-pool",
        [node("MaxPool", "x", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        [],
    ),
    (
        "max-pool-asymmetric-ceil",
        [node("MaxPool", "x", kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 0], ceil_mode=1)],
        [],
    ),
    ("global-average-pool", [node("GlobalAveragePool", "x")], []),
    ("relu", [node("Relu", "x")], []),
    ("leaky-relu", [node("LeakyRelu", "x", alpha=0.2)], []),
    ("prelu", [node("PRelu", "xs")], [weight("s", 4, 1, 1)]),
    ("sigmoid", [node("Sigmoid", "x")], []),
    ("hard-sigmoid", [node("HardSigmoid", "x", alpha=0.3, beta=0.4)], []),
    ("hard-swish", [node("HardSwish", "x")], [], (1, 4, 9, 11), 14),
    ("tanh", [node("Tanh", "x")], []),
    ("exp", [node("Exp", "x")], []),
    ("clip-inputs", [node("Clip", ["x", "lo", "hi"])], [floats("lo", -0.5), floats("hi", 0.7)]),
    ("clip-max-only", [node("Clip", ["x", "", "hi"])], [floats("hi", 0.1)]),
    ("clip-attributes", [node("Clip", "x", min=-0.2, max=0.3)], [], (1, 4, 9, 11), 6),
    ("add-broadcast", [node("Add", "xb")], [weight("b", 4, 1, 1)]),
    ("sub", [node("Sub", "xb")], [weight("b", 11)]),
    ("mul", [node("Mul", "xb")], [weight("b", 1, 4, 1, 1)]),
    ("div", [node("Div", "xb")], [floats("b", 2.0, -4.0, 0.5, 8.0, 1.0, 3.0, 2.0, 5.0, 1, 2, 4)]),
    (
        "concat-constant",
        [
            helper.make_node("Constant", [], ["c"], value=weight("cv", 1, 2, 9, 11)),
            node("Concat", "xc", axis=1),
        ],
        [],
    ),
    (
        "resize-nearest-2x",
        [node("Resize", ["x", "", "s"], mode="nearest")],
        [floats("s", 1, 1, 2, 2)],
    ),
    (
        "resize-nearest-sizes",
        [
            node(
                "Resize",
                ["x", "", "", "n"],
                mode="nearest",
                nearest_mode="floor",
                coordinate_transformation_mode="asymmetric",
            )
        ],
        [ints("n", 1, 4, 14, 30)],
    ),
    (
        "resize-linear-half-pixel",
        [node("Resize", ["x", "", "s"], mode="linear")],
        [floats("s", 1, 1, 1.5, 2)],
    ),
    (
        "resize-linear-align-corners",
        [
            node(
                "Resize",
                ["x", "r", "s"],
                mode="linear",
                coordinate_transformation_mode="align_corners",
            )
        ],
        [floats("r"), floats("s", 1, 1, 2, 3)],
    ),
    (
        "resize-opset-10-scales",
        [node("Resize", "xs", mode="nearest")],
        [floats("s", 1, 1, 2, 3)],
        (1, 4, 9, 11),
        10,
    ),
    (
        "upsample",
        [node("Upsample", "xs", mode="nearest")],
        [floats("s", 1, 1, 2, 2)],
        (1, 4, 9, 11),
        9,
    ),
    ("reshape", [node("Reshape", "xs")], [ints("s", 0, 2, -1)]),
    ("flatten", [node("Flatten", "x", axis=2)], []),
    ("transpose", [node("Transpose", "x", perm=[0, 2, 3, 1])], []),
    ("softmax", [node("Softmax", "x", axis=1)], []),
    ("softmax-opset-11-coerced", [node("Softmax", "x", axis=1)], [], (1, 4, 9, 11), 11),
    ("identity-dropout", [helper.make_node("Dropout", ["x"], ["d"]), node("Identity", "d")], []),
]


def case_params():
    for case in CASES:
        name, nodes, inits, *rest = case
        shape, opset = rest if rest else ((1, 4, 9, 11), 13)
        yield pytest.param(nodes, inits, shape, opset, id=name)


@pytest.mark.parametrize(("nodes", "inits", "shape", "opset"), list(case_params()))
def test_each_operation_gives_onnxruntimes_result(nodes, inits, shape, opset):
    model = graph(nodes, inits, shape=shape, opset=opset)
    x = RNG.standard_normal(shape).astype(np.float32)
    expected = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    program = Program(model, torch, device="cpu", dtype=torch.float32)
    with torch.inference_mode():
        found = program(torch.from_numpy(x.copy()))
    assert found[0].shape == expected[0].shape
    np.testing.assert_allclose(found[0].numpy(), expected[0], rtol=1e-4, atol=1e-4)


def test_every_operation_is_covered_by_a_case():
    covered = {n.op_type for _, nodes, *_ in CASES for n in nodes} - {"Constant"}
    assert covered == set(OPS)


def test_an_activation_never_overwrites_a_view_of_a_value_still_read():
    model = graph(
        [
            helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
            helper.make_node("Reshape", ["a", "s"], ["v"]),
            helper.make_node("Relu", ["v"], ["r"]),  # v's last reader, but v is a's memory
            helper.make_node("Reshape", ["r", "back"], ["r4"]),
            helper.make_node("Sub", ["a", "r4"], ["y"]),  # a read after the Relu
        ],
        [weight("w", 4, 4, 3, 3), ints("s", 1, -1), ints("back", 1, 4, 9, 11)],
    )
    x = RNG.standard_normal((1, 4, 9, 11)).astype(np.float32)
    expected = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    program = Program(model, torch, device="cpu", dtype=torch.float32)
    assert program.steps[2].op is OPS["Relu"]
    with torch.inference_mode():
        found = program(torch.from_numpy(x))
    np.testing.assert_allclose(found[0].numpy(), expected[0], rtol=1e-4, atol=1e-4)
    assert np.abs(expected[0]).max() > 0.1  # the negative half of a survives


def test_values_are_dropped_after_their_last_reader_and_activations_reuse_their_input():
    model = graph(
        [
            helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("Add", ["r", "x"], ["y"]),
            # x is read twice and is the caller's: its activation must not overwrite it.
            helper.make_node("Relu", ["x"], ["unused"]),
        ],
        [weight("w", 4, 4, 3, 3)],
    )
    program = Program(model, torch, device="cpu", dtype=torch.float32)
    drops = {step.op_type + ":" + ",".join(step.outputs): step.drop for step in program.steps}
    assert drops == {"Conv:a": [], "Relu:r": ["a"], "Add:y": ["r"], "Relu:unused": ["x"]}
    relu, last_relu = program.steps[1], program.steps[3]
    assert relu.op is not OPS["Relu"]  # in place: its input is read for the last time
    assert last_relu.op is OPS["Relu"]  # the graph's input stays the caller's
    x = torch.from_numpy(RNG.standard_normal((1, 4, 9, 11)).astype(np.float32))
    before = x.clone()
    with torch.inference_mode():
        program(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize(
    ("nodes", "inits", "message"),
    [
        ([node("Gelu", "x")], [], "does not run the Gelu operation"),
        (
            [helper.make_node("Shape", ["x"], ["s"]), node("Reshape", "xs")],
            [],
            "does not run the Shape operation",
        ),
        (
            [helper.make_node("Relu", ["x"], ["s"]), node("Reshape", "xs")],
            [],
            "Reshape reads a shape or scale computed at run time",
        ),
        ([node("Conv", "xw", auto_pad="SAME_UPPER")], [weight("w", 4, 4, 3, 3)], "auto_pad"),
        ([node("Resize", ["x", "", "s"], mode="cubic")], [floats("s", 1, 1, 2, 2)], "cubic"),
        (
            [node("Resize", ["x", "r", "s"], coordinate_transformation_mode="tf_crop_and_resize")],
            [floats("r", 0, 0, 0.1, 0.1, 1, 1, 0.9, 0.9), floats("s", 1, 1, 2, 2)],
            "tf_crop_and_resize",
        ),
    ],
    ids=["unknown-op", "shape-arithmetic", "computed-shape", "auto-pad", "cubic", "crop-resize"],
)
def test_what_it_cannot_run_is_refused_when_the_model_loads(nodes, inits, message):
    model = graph(nodes, inits, opset=20 if nodes[0].op_type == "Gelu" else 13)
    options = DetectorOptions(backend="torch")
    with pytest.raises(Unsupported, match=message):
        TorchEngine(model, options, name="test model")
    with pytest.raises(DetectorError, match=message):
        runtime.load_engine(model, options, name="test model")


def test_auto_falls_back_to_onnxruntime_after_one_line():
    """What `--backend auto` does where it chose PyTorch for a GPU and the model needs more."""
    model = graph([node("Resize", ["x", "", "s"], mode="cubic")], [floats("s", 1, 1, 2, 2)])
    with veil_log() as lines:
        engine = runtime._torch_engine(
            model, DetectorOptions(), name="test model", outputs=None, measured=False
        )
    assert engine is None
    assert len(lines) == 1
    assert "test model: the torch backend does not run" in lines[0]
    assert lines[0].endswith("running it on onnxruntime")


@pytest.fixture(scope="module")
def reference():
    return create_detector(DetectorOptions(backend="onnxruntime", precision="fp32"))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_the_face_detector_finds_the_same_faces(precision, reference, astronaut, camera):
    """float16 is what a GPU runs ("auto" there); the CPU runs it too, so it is checked here."""
    det = create_detector(DetectorOptions(backend="torch", precision=precision))
    assert (det.backend, det.precision, det.device) == ("torch", precision, "cpu")
    assert det.provider == "PyTorch CPU"
    assert_astronaut_found(det.detect([astronaut])[0])
    for image in (astronaut, camera):
        expected, found = reference.detect([image])[0], det.detect([image])[0]
        assert len(found) == len(expected)
        assert_same_faces(expected, found, precision)


def test_a_batch_gives_each_frames_own_outputs(reference, astronaut):
    net = create_detector(DetectorOptions(backend="torch")).net
    frames = [astronaut, astronaut[:, ::-1].copy(), np.zeros_like(astronaut)]
    blob = net.preprocess(frames, None)[0]
    batch = net.engine.run(blob)
    for i in range(len(frames)):
        alone = reference.net.engine.run(blob[i : i + 1])
        for b, a in zip(batch, alone):
            np.testing.assert_allclose(b[i : i + 1], a, atol=2e-3)


def test_convolutions_skip_cudnn_during_a_run_only(astronaut):
    """cuDNN plans each new input shape for seconds on a GPU (TorchEngine): a run turns it
    off and puts the process's setting back afterwards."""
    engine = create_detector(DetectorOptions(backend="torch")).net.engine
    seen = []

    class Spy:  # the program, noting cuDNN's setting whenever it runs
        def __getattr__(self, name):
            return getattr(program, name)

        def __call__(self, x):
            seen.append(torch.backends.cudnn.enabled)
            return program(x)

    program, engine.program = engine.program, Spy()
    assert torch.backends.cudnn.enabled
    engine.run(np.zeros((1, 64, 64, 3), np.uint8))
    assert seen == [False] and torch.backends.cudnn.enabled
    engine.cudnn = True  # what benchmarks/gpu.py compares against
    engine.run(np.zeros((1, 64, 64, 3), np.uint8))
    assert seen == [False, True]


@pytest.mark.shared_data
def test_the_face_detector_finds_the_same_faces_in_crowd_photos(reference, shared_data):
    det = create_detector(DetectorOptions(backend="torch"))
    photos = sorted((shared_data / "wider_dev" / "images").rglob("*.jpg"))[:4]
    photos += sorted((shared_data / "dlib_pascal_faces" / "images").rglob("*.jpg"))[:2]
    assert len(photos) == 6
    for path in photos:
        image = read_image(path).image
        assert_same_faces(reference.detect([image])[0], det.detect([image])[0], "fp32")


def test_reduced_precisions_of_openvino_are_refused():
    with pytest.raises(OptionError, match="bf16 runs on the openvino backend, not torch"):
        DetectorOptions(backend="torch", precision="bf16")


def test_cuda_without_a_gpu_runs_on_the_cpu_and_says_so():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with veil_log() as lines:
        det = create_detector(DetectorOptions(backend="torch", device="cuda"))
    assert det.device == "cpu"
    assert det.precision == "fp32"
    assert any("PyTorch" in line and "running on the CPU" in line for line in lines)
    # --backend auto --device cuda: no GPU for onnxruntime or PyTorch, so onnxruntime's CPU.
    assert runtime._auto_backend(DetectorOptions(device="cuda"), True) == "onnxruntime"
    assert runtime._auto_backend(DetectorOptions(device="auto"), True) == CPU_CHOICE


def test_a_gpu_goes_to_pytorch_where_onnxruntime_has_no_provider_for_it(monkeypatch):
    """The choice alone (no GPU here to run it): what PyTorch reports is replaced."""
    from veil.detectors import torch_graph

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    monkeypatch.setattr(torch_graph, "torch_cuda", lambda: True)
    for device in ("cuda", "auto"):
        for precision in ("auto", "fp32", "fp16"):
            options = DetectorOptions(device=device, precision=precision)
            assert runtime._auto_backend(options, True) == "torch"
            assert runtime._auto_backend(options, False) == "torch"
    # The CPU's choice stays the CPU's, and OpenVINO's precisions stay OpenVINO's.
    assert runtime._auto_backend(DetectorOptions(), True) == CPU_CHOICE
    assert runtime._auto_backend(DetectorOptions(device="cuda", precision="bf16"), True) == (
        "openvino"
    )


HIDE_TORCH = """
import sys
sys.modules["torch"] = None
from veil.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_pytorch_the_torch_backend_is_a_one_line_error(tmp_path, astronaut):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut)
    run = subprocess.run(
        [sys.executable, "-c", HIDE_TORCH, str(photo), "--backend", "torch", "-q"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "pip install torch" in lines[0]
    assert not list(tmp_path.glob("*anonymized*"))


def test_the_command_runs_a_photo_on_pytorch(tmp_path, astronaut):
    photo = tmp_path / "astronaut.png"
    cv2.imwrite(str(photo), astronaut)
    out = tmp_path / "out.png"
    run = subprocess.run(
        [sys.executable, "-m", "veil", str(photo), "-o", str(out), "--backend", "torch"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    changed = np.abs(cv2.imread(str(out)).astype(int) - astronaut).sum(axis=2) > 24
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert changed[y1:y2, x1:x2].mean() > 0.5  # the face is hidden
    changed[y1 - 40 : y2 + 40, x1 - 40 : x2 + 40] = False
    assert changed.mean() < 0.001  # and nothing far from it
