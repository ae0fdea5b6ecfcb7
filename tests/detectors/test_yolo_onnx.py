"""--detector onnx:PATH plumbing with a tiny model in the ultralytics output layout, built here."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from veil.cli import main
from veil.detections import FACE, PERSON
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.yolo_onnx import parse_classes
from veil.errors import DetectorError, OptionError
from veil.io.images import read_image, write_image

# Two candidate boxes in 64x64 input pixels (cx, cy, w, h).
BOXES = np.array([[[16.0, 48.0], [16.0, 40.0], [16.0, 8.0], [16.0, 8.0]]], np.float32)  # [1, 4, 2]


def tiny_yolo(path, size: int = 64):
    """Output [1, 6, 2]: two fixed boxes; class 0 scores = mean image brightness, class 1 = 0.9 - that."""
    mean = helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0)
    nodes = [
        mean,
        helper.make_node("Reshape", ["mean", "shape111"], ["m"]),
        helper.make_node("Mul", ["m", "ones"], ["cls0"]),
        helper.make_node("Sub", ["nine", "cls0"], ["cls1"]),
        helper.make_node("Concat", ["boxes", "cls0", "cls1"], ["output0"], axis=1),
    ]
    inits = [
        helper.make_tensor("shape111", TensorProto.INT64, [3], [1, 1, 1]),
        helper.make_tensor("ones", TensorProto.FLOAT, [1, 1, 2], [1.0, 1.0]),
        helper.make_tensor("nine", TensorProto.FLOAT, [1, 1, 2], [0.9, 0.9]),
        helper.make_tensor("boxes", TensorProto.FLOAT, [1, 4, 2], BOXES.ravel().tolist()),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_decodes_letterboxed_boxes_back_to_frame_pixels(tmp_path):
    model = tiny_yolo(tmp_path / "tiny.onnx")
    white = np.full(
        (128, 256, 3), 255, np.uint8
    )  # letterboxed: scale 0.25, 16 px grey bands top and bottom
    det = create_detector(DetectorOptions(name=f"onnx:{model}", threshold=0.5, classes="0=person"))
    dets = det.detect([white])[0]
    assert dets.class_id.tolist() == [PERSON, PERSON]
    boxes = dets.xyxy[np.argsort(dets.xyxy[:, 0])]
    # Input pixels -> frame: subtract the 16 px band, divide by 0.25; box 0 is clipped at the top.
    assert np.allclose(boxes[0], [32, 0, 96, 32], atol=1)
    assert np.allclose(boxes[1], [176, 80, 208, 112], atol=1)
    black = np.zeros((128, 256, 3), np.uint8)
    dark = create_detector(DetectorOptions(name=f"onnx:{model}", threshold=0.5)).detect([black])[0]
    # A black frame (grey bands lift the mean a little) flips the scores to class 1, both boxes.
    assert dark.class_id.tolist() == [1, 1]
    assert len(dark) == 2


def test_cli_hides_what_the_model_finds(tmp_path, astronaut):
    model = tiny_yolo(tmp_path / "tiny.onnx")
    src = tmp_path / "a.png"
    write_image(astronaut, src)
    out = tmp_path / "out.png"
    code = main(
        [
            str(src),
            "-o",
            str(out),
            "-q",
            "--detector",
            f"onnx:{model}",
            "--classes",
            "1=face",
            "--method",
            "fill",
            "--shape",
            "rect",
            "--mask-scale",
            "1",
            "-t",
            "0.3",
        ]
    )
    assert code == 0
    img = read_image(out).image
    # 512x512 -> scale 0.125: box 1 (cx 48, cy 40, 8x8) is x 352..416, y 288..352 in the frame.
    assert (img[300:340, 360:410] == 0).all()
    assert np.array_equal(img[400:], astronaut[400:])
    assert np.array_equal(img[:60], astronaut[:60])


def test_classes_and_bad_model_errors(tmp_path):
    assert parse_classes("0,2") == {0: 0, 2: 2}
    assert parse_classes("0=person, 3=face") == {0: PERSON, 3: FACE}
    with pytest.raises(OptionError):
        parse_classes("car=0")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot load ONNX model"):
        create_detector(DetectorOptions(name=f"onnx:{bad}"))
    with pytest.raises(DetectorError, match="not found"):
        create_detector(DetectorOptions(name=f"onnx:{tmp_path / 'missing.onnx'}"))
