"""Filters between detection and hiding: face size, per-target scores, regions, one known face
kept."""

import cv2
import numpy as np
import pytest
from PIL import Image

from veil.cli import main
from veil.detections import FACE, PERSON, TEXT, Detections
from veil.errors import OptionError
from veil.filters import DetectionFilter, FilterOptions, parse_min_scores, parse_region
from veil.io.images import read_image

from media import ASTRONAUT_FACE, CAMERA_FACE, mean_abs_diff, skip_without_reid

FRAME = np.zeros((200, 400, 3), np.uint8)
DETS = Detections(
    [
        [10, 10, 20, 20],
        [50, 50, 150, 150],
        [300, 20, 340, 60],
        [200, 100, 260, 190],
        [0, 150, 40, 190],
    ],
    score=[0.9, 0.9, 0.3, 0.4, 0.8],
    class_id=[FACE, FACE, FACE, PERSON, TEXT],
)


def kept(options: FilterOptions, dets: Detections = DETS) -> list[list[float]]:
    return DetectionFilter(options)([FRAME], [dets])[0].xyxy.tolist()


class _Counted(list):
    """Frames that count which of them were read."""

    def __init__(self, frames):
        super().__init__(frames)
        self.read = []

    def __getitem__(self, index):
        self.read.append(index)
        return super().__getitem__(index)


def test_only_frames_with_detections_are_read_and_none_without_a_filter():
    """The video scan converts a frame to BGR when it is first read, so the filters read only
    the frames they have detections to judge on."""
    frames, empty = _Counted([FRAME] * 3), Detections(np.zeros((0, 4)))
    found = [empty, DETS, empty]
    assert DetectionFilter(FilterOptions())(frames, found) is found and frames.read == []
    filtered = DetectionFilter(FilterOptions(min_face=30))(frames, found)
    assert frames.read == [1]
    assert [len(d) for d in filtered] == [0, len(DETS) - 1, 0]


def test_parse_region_forms_and_errors():
    assert parse_region("1,2,30,40") == ((1, 2), (30, 2), (30, 40), (1, 40))
    assert parse_region("0,0;1,0;0.5,1") == ((0, 0), (1, 0), (0.5, 1))
    for bad in ("1,2,3", "5,5,1,1", "0,0;1,1", "a,b,c,d"):
        with pytest.raises(OptionError):
            parse_region(bad)
    assert parse_min_scores("person=0.5,text=0.7") == (("person", 0.5), ("text", 0.7))
    with pytest.raises(OptionError):
        parse_min_scores(["car=0.5"])


def test_face_size_range_only_touches_faces():
    boxes = kept(FilterOptions(min_face=15, max_face=80))
    assert [10, 10, 20, 20] not in boxes
    assert [50, 50, 150, 150] not in boxes
    assert [300, 20, 340, 60] in boxes
    assert [200, 100, 260, 190] in boxes
    assert [0, 150, 40, 190] in boxes
    with pytest.raises(OptionError):
        FilterOptions(min_face=50, max_face=10)


def test_score_floor_per_target():
    boxes = kept(FilterOptions(min_score=(("person", 0.5), ("face", 0.2))))
    assert len(boxes) == 4
    assert [200, 100, 260, 190] not in boxes


def test_include_and_exclude_regions_rect_polygon_fraction():
    # Include: any overlap counts, so a box touching the region is still hidden.
    boxes = kept(FilterOptions(include=(parse_region("0,0,60,60"),)))
    assert boxes == [[10, 10, 20, 20], [50, 50, 150, 150]]
    # The same region as fractions of the 400x200 frame.
    assert kept(FilterOptions(include=(parse_region("0,0,0.15,0.3"),))) == boxes
    # Exclude: a triangle holding the right half of the frame's top; the face at 300,20 is inside.
    triangle = parse_region("200,0;400,0;400,100")
    boxes = kept(FilterOptions(exclude=(triangle,)))
    assert [300, 20, 340, 60] not in boxes
    assert len(boxes) == 4
    # Half a box inside is not enough to leave it visible.
    assert len(kept(FilterOptions(exclude=(parse_region("0,0,90,200"),)))) == 3


@pytest.fixture()
def photo(tmp_path, astronaut):
    path = tmp_path / "portrait.jpg"
    Image.fromarray(astronaut[:, :, ::-1]).save(path, quality=95)
    return path


def face_changed(path, reference, box) -> float:
    x1, y1, x2, y2 = box
    img = read_image(path).image
    return mean_abs_diff(
        img[y1 + 40 : y2 - 40, x1 + 20 : x2 - 20], reference[y1 + 40 : y2 - 40, x1 + 20 : x2 - 20]
    )


def test_cli_regions_leave_the_face_or_hide_it(photo, astronaut, tmp_path):
    out = tmp_path / "out.png"
    assert main([str(photo), "-o", str(out), "-q", "--exclude-region", "150,20,300,220"]) == 0
    assert face_changed(out, astronaut, ASTRONAUT_FACE) < 3
    assert (
        main(
            [
                str(photo),
                "-o",
                str(out),
                "-q",
                "--overwrite",
                "--include-region",
                "0,0.6;0.3,0.6;0.3,1;0,1",
            ]
        )
        == 0
    )
    assert face_changed(out, astronaut, ASTRONAUT_FACE) < 3
    assert (
        main([str(photo), "-o", str(out), "-q", "--overwrite", "--include-region", "0.3,0,0.6,0.5"])
        == 0
    )
    assert face_changed(out, astronaut, ASTRONAUT_FACE) > 12
    assert main([str(photo), "-o", str(out), "-q", "--overwrite", "--min-face-size", "300"]) == 0
    assert face_changed(out, astronaut, ASTRONAUT_FACE) < 3


def two_people(astronaut, camera):
    return np.ascontiguousarray(np.concatenate([camera, astronaut], axis=1))


@pytest.fixture()
def reference_photo(tmp_path, astronaut):
    """Another picture of the astronaut: mirrored, smaller, brighter, recompressed."""
    skip_without_reid()
    ref = cv2.convertScaleAbs(
        cv2.resize(cv2.flip(astronaut, 1), None, fx=0.7, fy=0.7), alpha=1.1, beta=10
    )
    path = tmp_path / "me.jpg"
    cv2.imwrite(str(path), ref, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return path


def test_keep_face_keeps_the_reference_person_and_hides_another(
    tmp_path, astronaut, camera, reference_photo
):
    scene = two_people(astronaut, camera)
    src = tmp_path / "scene.png"
    cv2.imwrite(str(src), scene)
    out = tmp_path / "out.png"
    assert main([str(src), "-o", str(out), "-q", "--keep-face", str(reference_photo)]) == 0
    ax1, ay1, ax2, ay2 = ASTRONAUT_FACE
    assert face_changed(out, scene, (ax1 + 512, ay1, ax2 + 512, ay2)) < 3
    assert face_changed(out, scene, CAMERA_FACE) > 8
    # Uncertain matches stay hidden: a tolerance no real match meets hides both.
    assert (
        main(
            [
                str(src),
                "-o",
                str(out),
                "-q",
                "--overwrite",
                "--keep-face",
                str(reference_photo),
                "--keep-tolerance",
                "0.05",
            ]
        )
        == 0
    )
    assert face_changed(out, scene, (ax1 + 512, ay1, ax2 + 512, ay2)) > 12


def test_keep_face_hides_both_when_two_faces_match_equally(tmp_path, astronaut, reference_photo):
    scene = np.ascontiguousarray(np.concatenate([astronaut, astronaut], axis=1))
    src = tmp_path / "twins.png"
    cv2.imwrite(str(src), scene)
    out = tmp_path / "out.png"
    assert main([str(src), "-o", str(out), "-q", "--keep-face", str(reference_photo)]) == 0
    ax1, ay1, ax2, ay2 = ASTRONAUT_FACE
    assert face_changed(out, scene, ASTRONAUT_FACE) > 12
    assert face_changed(out, scene, (ax1 + 512, ay1, ax2 + 512, ay2)) > 12


def test_keep_face_needs_a_face_in_the_reference(tmp_path, photo):
    pytest.importorskip("dlib")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((100, 100, 3), 128, np.uint8))
    assert main([str(photo), "-o", str(tmp_path / "o.png"), "-q", "--keep-face", str(blank)]) == 2
