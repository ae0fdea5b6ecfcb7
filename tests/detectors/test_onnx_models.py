"""--detector onnx:PATH: tiny graphs that emit each family's output layout for the astronaut's face.

Each graph's outputs are constants encoded the way the real model encodes a
detection (anchors, strides, priors, letterbox), written here from the
format's description, so a decoder that misreads the format misses the face.
The graphs read their input (times zero), so the whole preprocessing runs.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from veil.boxes import box_iou
from veil.cli import main
from veil.detections import FACE, PERSON
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.onnx_models import prepare, retinaface, scrfd, yolo, yunet
from veil.detectors.onnx_models.yolo import parse_classes
from veil.errors import DetectorError, OptionError
from veil.io.images import read_image, write_image

from media import ASTRONAUT_FACE, astronaut_face_hidden, read_video, run_veil, write_video

SIDE = 640
SCALE = SIDE / 512  # the 512x512 astronaut fills a 640x640 input
BOX = np.array(ASTRONAUT_FACE, np.float64)
# Eyes, nose tip, mouth corners of the astronaut, frame pixels.
POINTS = np.array([[205, 100], [252, 100], [228, 130], [208, 160], [250, 160]], np.float64)


def save_model(
    path,
    outputs: dict[str, np.ndarray],
    size: tuple[int | str, int | str] = (SIDE, SIDE),
    metadata: dict[str, str] | None = None,
):
    """A graph with one image input; its outputs are these arrays plus 0 x the input's mean."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    for name, value in outputs.items():
        inits.append(helper.make_tensor(f"{name}_c", TensorProto.FLOAT, value.shape, value.ravel()))
        nodes.append(helper.make_node("Add", [f"{name}_c", "nothing"], [name]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *size])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, v.shape) for n, v in outputs.items()],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def face_in_input() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face's centre, size and landmarks in 640x640 input pixels."""
    box = BOX * SCALE
    return (box[:2] + box[2:]) / 2, box[2:] - box[:2], POINTS * SCALE


# -- encoders: one detection of the astronaut's face in each family's own terms ------------------


def yolov5_face() -> dict[str, np.ndarray]:
    centre, size, points = face_in_input()
    rows = np.zeros((25200, 16), np.float32)
    rows[:, :4] = [320, 320, 10, 10]
    rows[7000] = [*centre, *size, 0.9, *points.ravel(), 0.95]
    return {"output": rows[None]}


def ultralytics_pose(transposed: bool = False) -> dict[str, np.ndarray]:
    """[1, 4 + 1 + 5 x 3, 8400]: box, face score, keypoints (x, y, visibility)."""
    centre, size, points = face_in_input()
    cols = np.zeros((20, 8400), np.float32)
    cols[:4] = np.array([320, 320, 10, 10])[:, None]
    cols[5:] = np.tile([300.0, 300.0, 0.5], 5)[:, None]  # keypoints of the empty candidates
    visible = np.concatenate([points, np.full((5, 1), 0.9)], axis=1).ravel()
    cols[:, 4000] = [*centre, *size, 0.85, *visible]
    return {"output0": cols.T[None] if transposed else cols[None]}


def scrfd_outputs(batched: bool, keypoints: bool = True) -> dict[str, np.ndarray]:
    """Scores, distances and keypoint offsets for strides 8/16/32, 2 anchors per location;
    the face sits on anchor 1 of the stride-16 location nearest its centre."""
    centre, size, points = face_in_input()
    out: dict[str, np.ndarray] = {}
    for stride in (8, 16, 32):
        n = (SIDE // stride) ** 2 * 2
        score, dist, kps = np.zeros((n, 1)), np.ones((n, 4)), np.zeros((n, 10))
        if stride == 16:
            col, row = np.round(centre / stride).astype(int)
            i = (row * (SIDE // stride) + col) * 2 + 1
            anchor = np.array([col, row]) * stride
            box = np.concatenate([centre - size / 2, centre + size / 2])
            score[i] = 0.88
            dist[i] = np.concatenate([anchor - box[:2], box[2:] - anchor]) / stride
            kps[i] = ((points - anchor) / stride).ravel()
        for name, value in (("score", score), ("bbox", dist), ("kps", kps)):
            if name != "kps" or keypoints:
                out[f"{name}_{stride}"] = (value[None] if batched else value).astype(np.float32)
    return out


def retinaface_outputs(logits: bool = False) -> dict[str, np.ndarray]:
    """loc/conf/landms over the priors of a 640x640 input; the face on the 64 px prior (far from
    its size, so both variances matter) of the stride-16 location nearest its centre."""
    centre, size, points = face_in_input()
    counts = [(SIDE // s) ** 2 * 2 for s in (8, 16, 32)]
    total = sum(counts)
    loc, conf, landms = (
        np.zeros((total, 4)),
        np.tile([0.99, 0.01], (total, 1)),
        np.zeros((total, 10)),
    )
    col, row = np.floor(centre / 16).astype(int)
    i = counts[0] + (row * (SIDE // 16) + col) * 2
    prior_c, prior_s = (np.array([col, row]) + 0.5) * 16, 64.0
    loc[i] = [*((centre - prior_c) / (0.1 * prior_s)), *(np.log(size / prior_s) / 0.2)]
    conf[i] = [0.08, 0.92]
    landms[i] = ((points - prior_c) / (0.1 * prior_s)).ravel()
    if logits:
        conf = np.log(conf) + 3.0
    return {
        "output": loc[None].astype(np.float32),
        "outputt": conf[None].astype(np.float32),
        "outputtt": landms[None].astype(np.float32),
    }


def yunet_outputs() -> dict[str, np.ndarray]:
    """2023mar: cls/obj/bbox/kps per stride, one row per cell; the face in the stride-16 cell
    holding its centre."""
    centre, size, points = face_in_input()
    out: dict[str, np.ndarray] = {}
    for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            value = np.zeros(((SIDE // stride) ** 2, width))
            if stride == 16:
                cell = np.floor(centre / stride)
                i = int(cell[1] * (SIDE // stride) + cell[0])
                value[i] = {
                    "cls": [0.9],
                    "obj": [0.8],
                    "bbox": [*(centre / stride - cell), *np.log(size / stride)],
                    "kps": (points / stride - cell).ravel(),
                }[kind]
            out[f"{kind}_{stride}"] = value[None].astype(np.float32)
    return out


def yunet_scattered_outputs(seed: int = 0) -> dict[str, np.ndarray]:
    """2023mar outputs with one random detection per stride, in cells far apart."""
    rng = np.random.default_rng(seed)
    out = yunet_outputs()
    corners = {8: (5, 6), 16: (30, 8), 32: (4, 15)}  # (column, row) per stride
    for stride, (col, row) in corners.items():
        i = row * (SIDE // stride) + col
        out[f"cls_{stride}"][0, i] = rng.uniform(0.6, 1.0)
        out[f"obj_{stride}"][0, i] = rng.uniform(0.6, 1.0)
        out[f"bbox_{stride}"][0, i] = [*rng.uniform(0, 1, 2), *rng.uniform(0.5, 1.5, 2)]
        out[f"kps_{stride}"][0, i] = rng.uniform(-1, 2, 10)
    return out


def yunet_2022_outputs() -> dict[str, np.ndarray]:
    """2022mar: loc [N, 14], conf [N, 2], iou [N, 1] over priors at steps 8/16/32/64 (feature
    maps 80, 40, 20, 10 for 640); the face on the 192 px prior of the step-64 cell holding its
    centre (OpenCV's variances: 0.1 for centres, width and landmarks, 0.2 for height)."""
    centre, size, points = face_in_input()
    sizes = [3, 2, 2, 3]
    counts = [(SIDE // s) ** 2 * k for s, k in zip((8, 16, 32, 64), sizes)]
    total = sum(counts)
    loc, conf, iou = np.zeros((total, 14)), np.tile([1.0, 0.0], (total, 1)), np.zeros((total, 1))
    col, row = np.floor(centre / 64).astype(int)
    i = sum(counts[:3]) + (row * (SIDE // 64) + col) * 3 + 1
    prior_c, prior_s = (np.array([col, row]) + 0.5) * 64, 192.0
    loc[i, :4] = [*((centre - prior_c) / (0.1 * prior_s)), *(np.log(size / prior_s) / [0.1, 0.2])]
    loc[i, 4:] = ((points - prior_c) / (0.1 * prior_s)).ravel()
    conf[i], iou[i] = [0.1, 0.9], [0.85]
    return {k: v.astype(np.float32) for k, v in (("loc", loc), ("conf", conf), ("iou", iou))}


ULTRALYTICS_FACE = {"names": "{0: 'face'}", "kpt_shape": "[5, 3]", "imgsz": "[640, 640]"}
# name: (encoder, metadata, layout class, the face's score as the family combines it)
LAYOUTS = {
    "yolov5-face": (yolov5_face, {}, yolo.YoloV5Face, 0.9 * 0.95),
    "yolov8-face": (ultralytics_pose, ULTRALYTICS_FACE, yolo.Ultralytics, 0.85),
    "yolov8-face-transposed-no-metadata": (
        lambda: ultralytics_pose(transposed=True),
        {},
        yolo.Ultralytics,
        0.85,
    ),
    "scrfd-kps": (lambda: scrfd_outputs(batched=False), {}, scrfd.Scrfd, 0.88),
    "scrfd-batched": (lambda: scrfd_outputs(batched=True), {}, scrfd.Scrfd, 0.88),
    "retinaface": (retinaface_outputs, {}, retinaface.RetinaFace, 0.92),
    "yunet-2023": (yunet_outputs, {}, yunet.YuNet, math.sqrt(0.9 * 0.8)),
    "yunet-2022": (yunet_2022_outputs, {}, yunet.YuNet2022, math.sqrt(0.9 * 0.85)),
}


@pytest.fixture(params=sorted(LAYOUTS))
def layout_model(request, tmp_path):
    encode, metadata, kind, score = LAYOUTS[request.param]
    path = save_model(tmp_path / f"{request.param}.onnx", encode(), metadata=metadata)
    return path, kind, score


def test_each_layout_finds_the_face_and_its_landmarks(layout_model, astronaut):
    path, kind, score = layout_model
    detector = create_detector(DetectorOptions(name=f"onnx:{path}", threshold=0.5))
    assert isinstance(detector.layout, kind)
    dets = detector.detect([astronaut])[0]
    assert len(dets) == 1
    # Encoded exactly, so the box comes back all but exactly (0.7 would pass some misreadings).
    assert box_iou(dets.xyxy, BOX[None])[0, 0] > 0.95
    assert np.isclose(dets.score[0], score, atol=1e-3)
    assert dets.class_id.tolist() == [FACE]
    assert dets.landmarks is not None
    assert np.abs(dets.landmarks[0] - POINTS).max() < 2


def test_each_layout_hides_the_face_through_the_cli(layout_model, astronaut, tmp_path):
    path, _, _ = layout_model
    src, out = tmp_path / "astronaut.png", tmp_path / "hidden.png"
    write_image(astronaut, src)
    proc = run_veil(src, "-o", out, "-q", "--detector", f"onnx:{path}")
    assert proc.returncode == 0, proc.stderr
    assert astronaut_face_hidden(astronaut, read_image(out).image)


def test_scrfd_without_keypoints_and_in_any_output_order(tmp_path, astronaut):
    outputs = scrfd_outputs(batched=True, keypoints=False)
    shuffled = {name: outputs[name] for name in sorted(outputs, key=lambda n: (n[-2:], n))}
    path = save_model(tmp_path / "scrfd.onnx", shuffled)
    dets = create_detector(DetectorOptions(name=f"onnx:{path}", threshold=0.5)).detect([astronaut])
    assert box_iou(dets[0].xyxy, BOX[None])[0, 0] > 0.95
    assert dets[0].landmarks is None


def ultralytics_rows(kind: str) -> np.ndarray:
    """A person (class 1 of 3) at the face: end-to-end rows [x1, y1, x2, y2, score, class] or
    YOLOv5 rows [cx, cy, w, h, objectness, 3 class scores]."""
    centre, size, _ = face_in_input()
    if kind == "end2end":
        rows = np.zeros((300, 6), np.float32)
        rows[0] = [*(centre - size / 2), *(centre + size / 2), 0.7, 1]
    else:
        rows = np.zeros((25200, 8), np.float32)
        rows[:, :4] = [320, 320, 10, 10]
        rows[9000] = [*centre, *size, 0.9, 0.1, 0.8, 0.05]
    return rows[None]


@pytest.mark.parametrize(
    "kind, metadata, score",
    [
        ("end2end", {"end2end": "True", "names": "{0: 'a', 1: 'b', 2: 'c'}"}, 0.7),
        ("yolov5", {"stride": "32", "names": "{0: 'a', 1: 'b', 2: 'c'}"}, 0.72),
    ],
)
def test_other_ultralytics_layouts(tmp_path, astronaut, kind, metadata, score):
    path = save_model(tmp_path / "u.onnx", {"output0": ultralytics_rows(kind)}, metadata=metadata)
    options = DetectorOptions(name=f"onnx:{path}", threshold=0.5, classes="1=person")
    dets = create_detector(options).detect([astronaut])[0]
    assert dets.class_id.tolist() == [PERSON]
    assert box_iou(dets.xyxy, BOX[None])[0, 0] > 0.95
    assert np.isclose(dets.score[0], score, atol=1e-3)


def test_yunet_agrees_with_opencvs_own_decoder(tmp_path, astronaut):
    """OpenCV's FaceDetectorYN is the reference YuNet decoder: same graph, same faces."""
    import cv2

    path = save_model(tmp_path / "yunet.onnx", yunet_scattered_outputs())
    image = cv2.resize(astronaut, (SIDE, SIDE))  # the input size, so no letterbox differs
    ok, faces = cv2.FaceDetectorYN.create(str(path), "", (SIDE, SIDE), 0.5, 0.3).detect(image)
    assert ok
    reference = faces[np.argsort(-faces[:, 14])]
    dets = create_detector(DetectorOptions(name=f"onnx:{path}", threshold=0.5)).detect([image])[0]
    order = np.argsort(-dets.score)
    assert len(dets) == len(reference) == 4
    xywh = np.concatenate([dets.xyxy[:, :2], dets.xyxy[:, 2:] - dets.xyxy[:, :2]], axis=1)
    assert np.allclose(xywh[order], reference[:, :4], atol=0.01)
    assert np.allclose(dets.landmarks[order].reshape(-1, 10), reference[:, 4:14], atol=0.01)
    assert np.allclose(dets.score[order], reference[:, 14], atol=1e-4)


def test_dynamic_input_runs_at_the_family_size_or_max_size(tmp_path, astronaut):
    """A dynamic YOLO input gets the frame at 640 on its longer side, or at --max-size."""
    wide = np.hstack([astronaut, astronaut])  # 512x1024: 320x640 at the default size
    box = BOX * 0.625
    cols = np.array([[*(box[:2] + box[2:]) / 2, *(box[2:] - box[:2]), 0.9]], np.float32).T
    path = save_model(tmp_path / "dyn.onnx", {"output0": cols[None]}, size=("height", "width"))
    found = create_detector(DetectorOptions(name=f"onnx:{path}", threshold=0.5)).detect([wide])[0]
    assert box_iou(found.xyxy, BOX[None])[0, 0] > 0.95
    half = DetectorOptions(name=f"onnx:{path}", threshold=0.5, max_size=320)
    doubled = create_detector(half).detect([wide])[0]  # same input box, half the input scale
    assert box_iou(doubled.xyxy, BOX[None] * 2)[0, 0] > 0.95


@pytest.mark.parametrize(
    "convention, pixel, pad",
    [
        (yolo.convention, lambda bgr: bgr[::-1] / 255.0, 114 / 255.0),
        (lambda g: scrfd.CONVENTION, lambda bgr: (bgr[::-1] - 127.5) / 128, -127.5 / 128),
        (
            lambda g: retinaface.RetinaFace(0, 1, 2).convention,
            lambda bgr: bgr - [104.0, 117.0, 123.0],
            -104.0,
        ),
        (lambda g: yunet.CONVENTION, lambda bgr: bgr, 0.0),
    ],
)
def test_preprocessing_follows_each_family(convention, pixel, pad):
    from veil.detectors.onnx_models.common import Graph, Tensor

    conv = convention(Graph(Tensor("images", (1, 3, SIDE, SIDE)), (), {}))
    frame = np.zeros((320, 640, 3), np.uint8)
    frame[:] = (10, 100, 200)  # BGR
    blob, scale, (left, top) = prepare(frame, conv, (SIDE, SIDE), None)
    assert scale == (1.0, 1.0)
    assert top == (160 if conv.centred else 0)
    assert np.allclose(blob[0, :, top + 5, 5], pixel(np.array([10.0, 100.0, 200.0])), atol=1e-4)
    assert np.allclose(blob[0, 0, (top + 330) % SIDE, 5], pad, atol=1e-4)


def test_unknown_layout_is_one_line_naming_the_shapes(tmp_path, astronaut):
    path = save_model(tmp_path / "odd.onnx", {"heat": np.zeros((1, 7, 3, 3), np.float32)})
    with pytest.raises(DetectorError, match=r"heat\[1, 7, 3, 3\]"):
        create_detector(DetectorOptions(name=f"onnx:{path}"))
    src = tmp_path / "a.png"
    write_image(astronaut, src)
    proc = run_veil(src, "-o", tmp_path / "out.png", "--detector", f"onnx:{path}")
    assert proc.returncode == DetectorError.exit_code
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "images[1, 3, 640, 640]" in proc.stderr
    assert not (tmp_path / "out.png").exists()


def test_scores_outside_0_1_are_an_error_at_load(tmp_path):
    """A RetinaFace exported in its training phase gives logits, not probabilities."""
    path = save_model(tmp_path / "logits.onnx", retinaface_outputs(logits=True))
    with pytest.raises(DetectorError, match="not 0..1"):
        create_detector(DetectorOptions(name=f"onnx:{path}"))


def test_wrong_prior_count_is_an_error(tmp_path):
    outputs = retinaface_outputs()
    path = save_model(tmp_path / "short.onnx", outputs, size=(SIDE // 2, SIDE))
    with pytest.raises(DetectorError, match="priors"):
        create_detector(DetectorOptions(name=f"onnx:{path}"))


@pytest.mark.parametrize("name", ["hog", "selfie", "text", "onnx:", "dlib"])
def test_only_face_detectors_fill_the_face_slot(name):
    with pytest.raises(OptionError):
        create_detector(DetectorOptions(name=name))


def test_cli_refuses_a_person_detector_as_face_detector(tmp_path, astronaut):
    src, out = tmp_path / "a.png", tmp_path / "out.png"
    write_image(astronaut, src)
    proc = run_veil(src, "-o", out, "--detector", "hog")
    assert proc.returncode == OptionError.exit_code
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--targets face,person --person hog" in proc.stderr
    assert not out.exists()


def test_live_runs_an_onnx_model(tmp_path, astronaut):
    path = save_model(tmp_path / "yunet.onnx", yunet_outputs())
    clip = write_video(tmp_path / "still.mp4", [astronaut] * 10, fps=10)
    rec = tmp_path / "rec.mkv"
    # Generous deadline and buffer: on a loaded machine no frame is blurred whole or dropped,
    # so every recorded frame shows the model's own work.
    timing = ["--max-latency", "60000", "--buffer", "100", "--no-reconnect"]
    args = ["-o", rec, "-q", "--detector", f"onnx:{path}", *timing]
    proc = run_veil("live", clip, *args, timeout=180)
    assert proc.returncode == 0, proc.stderr
    images, _ = read_video(rec)
    assert images
    assert all(astronaut_face_hidden(astronaut, image, background=8) for image in images)


# -- ultralytics class selection (the generic YOLO path) -------------------------------------------

# Two candidate boxes in 64x64 input pixels (cx, cy, w, h).
BOXES = np.array([[[16.0, 48.0], [16.0, 40.0], [16.0, 8.0], [16.0, 8.0]]], np.float32)


def tiny_yolo(path, size: int = 64):
    """Output [1, 6, 2]: two fixed boxes; class 0 scores the mean brightness, class 1 0.9 - that."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
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
    # Letterboxed: scale 0.25, 16 px grey bands top and bottom.
    white = np.full((128, 256, 3), 255, np.uint8)
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


def test_cli_hides_what_the_model_finds(tmp_path, astronaut):
    model = tiny_yolo(tmp_path / "tiny.onnx")
    src = tmp_path / "a.png"
    write_image(astronaut, src)
    out = tmp_path / "out.png"
    args = ["--detector", f"onnx:{model}", "--classes", "1=face", "--method", "fill"]
    code = main([str(src), "-o", str(out), "-q", *args, "--shape", "rect", "--mask-scale", "1"])
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
    with pytest.raises(OptionError, match="2 classes"):
        create_detector(DetectorOptions(name=f"onnx:{tiny_yolo(tmp_path / 't.onnx')}", classes="5"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot load ONNX model"):
        create_detector(DetectorOptions(name=f"onnx:{bad}"))
    with pytest.raises(DetectorError, match="not found"):
        create_detector(DetectorOptions(name=f"onnx:{tmp_path / 'missing.onnx'}"))


def test_prior_geometry_matches_the_published_counts():
    """16800 RetinaFace priors and 23500 YuNet 2022 priors for a 640x640 input."""
    maps = tuple((math.ceil(SIDE / s),) * 2 for s in retinaface.STEPS)
    assert len(retinaface.priors(maps, retinaface.STEPS, retinaface.MIN_SIZES)) == 16800
    yunet_priors = retinaface.priors(
        yunet.prior_maps(SIDE, SIDE), yunet.PRIOR_STEPS, yunet.PRIOR_SIZES
    )
    assert len(yunet_priors) == 23500
