"""Person and text detectors on real images, the composite, and outline masks in hiding."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from veil.detections import FACE, PERSON, TEXT, Detections
from veil.detectors import DetectorOptions, create_detector
from veil.detectors.scan import KeyframeScanner
from veil.errors import OptionError
from veil.hide import AnonymizeOptions, apply

from media import ASTRONAUT_FACE

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def vtest_frame(index: int = 0) -> np.ndarray:
    if not (OPENCV_DATA / "vtest.avi").is_file():
        pytest.skip("vtest.avi comes with Debian's opencv-doc package (not installed)")
    cap = cv2.VideoCapture(str(OPENCV_DATA / "vtest.avi"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def plate_photo(camera: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A white licence plate with black characters drawn onto the real camera photo."""
    image = camera.copy()
    x1, y1, x2, y2 = 250, 380, 470, 440
    cv2.rectangle(image, (x1, y1), (x2, y2), (235, 235, 235), -1)
    cv2.rectangle(image, (x1, y1), (x2, y2), (20, 20, 20), 2)
    cv2.putText(
        image,
        "AB 123 CD",
        (x1 + 12, y2 - 16),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.1,
        (10, 10, 10),
        3,
        cv2.LINE_AA,
    )
    return image, (x1, y1, x2, y2)


def inside(box, outer, slack: float = 10) -> bool:
    return (
        box[0] >= outer[0] - slack
        and box[1] >= outer[1] - slack
        and box[2] <= outer[2] + slack
        and box[3] <= outer[3] + slack
    )


def test_hog_finds_pedestrians_in_vtest():
    frame = vtest_frame(0)
    dets = create_detector(DetectorOptions(targets=("person",))).detect([frame])[0]
    confident = dets[dets.score >= 0.3]
    assert len(confident) >= 3
    assert set(confident.class_id.tolist()) == {PERSON}
    # Pedestrians are upright: boxes taller than wide, far smaller than the frame.
    assert np.all(confident.height > confident.width)
    assert np.all(confident.height < frame.shape[0] / 2)


def test_selfie_outline_follows_the_astronaut(astronaut):
    pytest.importorskip("mediapipe")
    dets = create_detector(DetectorOptions(targets=("person",), person="selfie")).detect(
        [astronaut]
    )[0]
    assert len(dets) >= 1
    assert dets.mask is not None
    body = dets[int(np.argmax(dets.area))]
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert body.mask[0, (y1 + y2) // 2, (x1 + x2) // 2]  # the face is part of the person
    assert not body.mask[0, 30, 480]  # the wall behind is not
    assert 0.2 < body.mask[0].mean() < 0.9


def test_text_detector_finds_a_rendered_plate(camera):
    pytest.importorskip("rapidocr_onnxruntime")
    image, plate = plate_photo(camera)
    dets = create_detector(DetectorOptions(targets=("text",))).detect([image])[0]
    on_plate = [b for b in dets.xyxy if inside(b, plate)]
    assert on_plate, dets.xyxy
    assert all(c == TEXT for c in dets.class_id)
    clean = create_detector(DetectorOptions(targets=("text",))).detect([camera])[0]
    assert not any(inside(b, plate) for b in clean.xyxy)


def test_a_composite_stream_passes_the_frame_size_on_to_its_scans(monkeypatch):
    told = []
    monkeypatch.setattr(KeyframeScanner, "expect", lambda self, h, w: told.append((h, w)))
    stream = create_detector(DetectorOptions(targets=("face", "person"))).stream()
    stream.expect(720, 1280)
    assert told == [(720, 1280)]  # the face scan; the person detector has nothing to prepare


def test_composite_merges_targets_with_class_ids(camera, astronaut):
    pytest.importorskip("rapidocr_onnxruntime")
    image, plate = plate_photo(camera)
    image[20:220, 20:200] = cv2.resize(astronaut[30:230, 150:330], (180, 200))
    dets = create_detector(DetectorOptions(targets=("face", "text"))).detect([image])[0]
    assert {FACE, TEXT} <= set(dets.class_id.tolist())
    face = dets[dets.class_id == FACE]
    assert any(inside(b, (20, 20, 200, 220)) for b in face.xyxy)


def test_unknown_target_is_one_line_error():
    with pytest.raises(OptionError, match="--targets: invalid choice 'cars'"):
        create_detector(DetectorOptions(targets=("face", "cars")))


def test_outline_mask_hides_the_shape_not_the_box(astronaut):
    h, w = astronaut.shape[:2]
    outline = np.zeros((1, h, w), bool)
    cv2.circle(outline[0].view(np.uint8), (256, 256), 100, 1, -1)
    dets = Detections([[156, 156, 356, 356]], class_id=[PERSON], mask=outline)
    out = apply(astronaut, dets, AnonymizeOptions(method="fill", color=(0, 255, 0), mask_scale=1.0))
    assert (out[256, 256] == (0, 255, 0)).all()
    assert (out[160, 160] == astronaut[160, 160]).all()  # box corner, outside the circle
    grown = apply(
        astronaut, dets, AnonymizeOptions(method="fill", color=(0, 255, 0), mask_scale=1.3)
    )
    assert (grown[256, 256 + 120] == (0, 255, 0)).all()  # grown by (1.3 - 1) x the size
    no_outline = dets.with_(mask=np.zeros_like(outline))
    boxed = apply(
        astronaut,
        no_outline,
        AnonymizeOptions(method="fill", color=(0, 255, 0), shape="rect", mask_scale=1.0),
    )
    assert (boxed[160, 160] == (0, 255, 0)).all()


def test_cli_hides_plate_and_body_outline(tmp_path, camera, astronaut):
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("mediapipe")
    from veil.cli import main
    from veil.io.images import read_image

    def filled_red(image: np.ndarray, name: str, *targets: str) -> np.ndarray:
        src, out = tmp_path / f"{name}.png", tmp_path / f"{name}_out.png"
        cv2.imwrite(str(src), image)
        args = [str(src), "-o", str(out), "-q", "--method", "fill", "--color", "red", *targets]
        assert main(args) == 0
        return read_image(out).image

    image, (x1, y1, x2, y2) = plate_photo(camera)
    hidden = filled_red(image, "plate", "--targets", "text")
    assert (hidden[y1 + 20 : y2 - 20, x1 + 40 : x2 - 40] == (0, 0, 255)).mean() > 0.9
    assert np.array_equal(hidden[:200], image[:200])

    body = filled_red(
        astronaut, "astronaut", "--targets", "person", "--person", "selfie", "--mask-scale", "1.0"
    )
    assert (body[300, 100] == (0, 0, 255)).all()
    assert (body[120, 220] == (0, 0, 255)).all()  # suit and face
    # The wall beside the head is left alone.
    assert np.array_equal(body[30, 480], astronaut[30, 480])
