import cv2
import numpy as np
import pytest

import veil
from veil.boxes import grow_box, scale_box
from veil.detections import Detections
from veil.errors import OptionError
from veil.hide import AnonymizeOptions, apply, apply_i420, blur_whole_frame
from veil.hide.masks import coverage, region_for, region_mask
from veil.hide.methods import parse_color

from media import astronaut_face, mean_abs_diff, skip_without_reid

FACE = Detections(np.array([[182, 58, 270, 178]], np.float32), score=np.array([0.93]))


def face_and_background(before, after, box=(182, 58, 270, 178), margin=40):
    x1, y1, x2, y2 = box
    # The inner face (eyes, nose, mouth) and everything far away from the mask.
    inner = (slice(y1 + 20, y2 - 20), slice(x1 + 15, x2 - 15))
    far = np.ones(before.shape[:2], bool)
    far[max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin] = False
    return mean_abs_diff(before[inner], after[inner]), np.abs(
        before[far].astype(int) - after[far]
    ).max()


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
def test_face_changes_background_does_not(astronaut, method):
    out = apply(astronaut, FACE, AnonymizeOptions(method=method))
    changed, background = face_and_background(astronaut, out)
    assert changed > 12, f"{method} barely changed the face ({changed:.1f})"
    assert background == 0
    assert not np.shares_memory(out, astronaut)


def test_blur_removes_detail(astronaut):
    out = apply(astronaut, FACE, AnonymizeOptions(method="blur"))
    x1, y1, x2, y2 = 200, 80, 250, 160
    lap_before = cv2.Laplacian(
        cv2.cvtColor(astronaut[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F
    ).var()
    lap_after = cv2.Laplacian(cv2.cvtColor(out[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert lap_after < lap_before / 50


def test_pixelate_is_blocky(astronaut):
    out = apply(astronaut, FACE, AnonymizeOptions(method="pixelate", shape="rect", mask_scale=1.0))
    crop = out[70:170, 190:260]
    assert len(np.unique(crop.reshape(-1, 3), axis=0)) < 60


def test_fill_colour(astronaut):
    out = apply(astronaut, FACE, AnonymizeOptions(method="fill", color=parse_color("#ff0000")))
    assert out[118, 226].tolist() == [0, 0, 255]


def test_none_leaves_pixels_and_draws_boxes(astronaut):
    same = apply(astronaut, FACE, AnonymizeOptions(method="none"))
    assert np.array_equal(same, astronaut)
    drawn = apply(
        astronaut, FACE, AnonymizeOptions(method="none", draw_boxes=True, draw_scores=True)
    )
    assert not np.array_equal(drawn, astronaut)


def test_ellipse_leaves_corners_rect_covers_them(astronaut):
    opts = dict(method="fill", mask_scale=1.0, color=(255, 255, 255))
    ell = apply(astronaut, FACE, AnonymizeOptions(shape="ellipse", **opts))
    rect = apply(astronaut, FACE, AnonymizeOptions(shape="rect", **opts))
    assert np.array_equal(ell[59, 183], astronaut[59, 183])
    assert rect[59, 183].tolist() == [255, 255, 255]
    assert ell[118, 226].tolist() == [255, 255, 255]


def test_mask_scale_grows_about_centre():
    grown = scale_box(np.array([[10, 10, 30, 50]]), 1.5)
    assert grown[0].tolist() == [5, 0, 35, 60]


def test_boxes_at_the_edge_and_outside_are_safe(astronaut):
    dets = Detections(
        np.array([[-50, -50, 40, 40], [500, 500, 700, 700], [600, 600, 700, 700]], np.float32)
    )
    out = apply(astronaut, dets, AnonymizeOptions(method="fill", color=(255, 255, 255)))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[511, 511].tolist() == [255, 255, 255]
    assert region_for(np.array([600, 600, 700, 700]), 512, 512) is None


def test_feather_only_extends_outward():
    region = region_for(np.array([20, 20, 60, 60]), 100, 100, feather=8)
    hard = region_mask(region, "rect")
    soft = region_mask(region, "rect", feather=8)
    assert (soft[hard > 0.5] == 1).all()
    assert soft.sum() > hard.sum()


def test_coverage_matches_what_is_hidden(astronaut):
    cov = coverage(astronaut.shape[:2], FACE.xyxy, "ellipse", AnonymizeOptions.mask_scale)
    out = apply(astronaut, FACE, AnonymizeOptions(method="fill", color=(1, 2, 3)))
    painted = (out == [1, 2, 3]).all(axis=2)
    assert (painted == cov).mean() > 0.999


def test_overlay_image_with_alpha(astronaut, tmp_path):
    emoji = np.zeros((64, 64, 4), np.uint8)
    cv2.circle(emoji, (32, 32), 30, (0, 220, 255, 255), -1)  # opaque disc, transparent corners
    path = tmp_path / "emoji.png"
    cv2.imwrite(str(path), emoji)
    out = apply(
        astronaut,
        FACE,
        AnonymizeOptions(method="image", overlay_path=str(path), shape="rect", mask_scale=1.0),
    )
    assert out[118, 226].tolist() == [0, 220, 255]
    # The transparent corner shows a blurred face, not the original pixels.
    assert mean_abs_diff(out[60:70, 184:194], astronaut[60:70, 184:194]) > 3


def test_whole_frame_fallback_hides_everything(astronaut):
    out = blur_whole_frame(astronaut)
    assert mean_abs_diff(out, astronaut) > 20


def test_whole_frame_fallback_defeats_recognition_of_a_close_up():
    """The fallback's hardest case is a face that fills the frame (a webcam close-up); dlib's
    face recognition must place it beyond its same-person distance (a frame blurred with sigma
    5% of its size is still within it)."""
    skip_without_reid()
    from veil.evaluation.reid import SAME_PERSON, Embedder

    embedder = Embedder()
    face = astronaut_face(embedder)
    x1, y1, x2, y2 = face.box
    half = max(x2 - x1, y2 - y1) / 0.9 / 2  # the face spans 90% of the frame
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    close_up = np.ascontiguousarray(
        face.image[int(cy - half) : int(cy + half), int(cx - half) : int(cx + half)]
    )
    found = embedder.find(close_up)
    assert len(found) == 1
    original = embedder.face(close_up, found[0])
    attempt = embedder.attempt(original, blur_whole_frame(close_up))
    assert attempt.distance > SAME_PERSON, attempt


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="smudge"), "--method: invalid choice 'smudge'"),
        (dict(shape="star"), "--shape: invalid choice 'star'"),
        (dict(mask_scale=0.5), "mask-scale"),
        (dict(method="image"), "needs --overlay"),
        (dict(method="image", overlay_path="/nonexistent.png"), "cannot read overlay"),
    ],
)
def test_bad_options_are_user_errors(kwargs, message):
    with pytest.raises(veil.VeilError, match=message):
        AnonymizeOptions(**kwargs)


def test_parse_color():
    assert parse_color("#102030") == (0x30, 0x20, 0x10)
    assert parse_color("1,2,3") == (3, 2, 1)
    assert parse_color("white") == (255, 255, 255)
    with pytest.raises(ValueError):
        parse_color("#12")


def test_public_anonymize_function(astronaut):
    out = veil.anonymize(astronaut, FACE, method="pixelate", shape="rect", mask_scale=1.0)
    assert mean_abs_diff(out[70:170, 190:260], astronaut[70:170, 190:260]) > 5
    assert np.array_equal(out[300:], astronaut[300:])
    with pytest.raises(OptionError):
        veil.anonymize(astronaut, FACE, method="bogus")


# -- hiding on decoded I420 planes ------------------------------------------------------------
TWO_FACES = Detections(
    np.array([[182, 58, 270, 178], [230, 120, 300, 210], [20, 400, 61, 447]], np.float32),
    score=np.array([0.93, 0.8, 0.5]),
)


@pytest.mark.parametrize(
    "options",
    [
        AnonymizeOptions(),
        AnonymizeOptions(method="pixelate"),
        AnonymizeOptions(method="fill", shape="rect"),
        AnonymizeOptions(feather=6),
    ],
)
def test_i420_hides_what_apply_hides(astronaut, options):
    yuv = cv2.cvtColor(astronaut, cv2.COLOR_BGR2YUV_I420)
    decoded = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
    expected = apply(decoded, TWO_FACES, options)
    hidden = yuv.copy()
    apply_i420(hidden, TWO_FACES, options)
    out = cv2.cvtColor(hidden, cv2.COLOR_YUV2BGR_I420)
    x1, y1, x2, y2 = 200, 80, 250, 160  # inside the first face's mask
    assert mean_abs_diff(out[y1:y2, x1:x2], expected[y1:y2, x1:x2]) < 1.5


def test_i420_leaves_planes_outside_the_hidden_regions_as_decoded(astronaut):
    yuv = cv2.cvtColor(astronaut, cv2.COLOR_BGR2YUV_I420)
    hidden = yuv.copy()
    apply_i420(hidden, TWO_FACES, AnonymizeOptions())
    far = np.ones((512, 512), bool)
    for x1, y1, x2, y2 in grow_box(TWO_FACES.xyxy, 1.35):  # the default mask_scale is 1.3
        far[max(0, int(y1) - 2) : int(y2) + 3, max(0, int(x1) - 2) : int(x2) + 3] = False
    assert np.array_equal(hidden[:512][far], yuv[:512][far])


def test_i420_hides_overlapping_faces_in_order(astronaut):
    """Overlapping regions share one block: the second blurs the first's result, as in apply."""
    yuv = cv2.cvtColor(astronaut, cv2.COLOR_BGR2YUV_I420)
    expected = apply(cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420), TWO_FACES[:2])
    hidden = yuv.copy()
    apply_i420(hidden, TWO_FACES[:2])
    out = cv2.cvtColor(hidden, cv2.COLOR_YUV2BGR_I420)
    overlap = (slice(140, 180), slice(240, 268))
    assert mean_abs_diff(out[overlap], expected[overlap]) < 1.5


def test_i420_refuses_a_copy_it_could_not_write_back(astronaut):
    yuv = cv2.cvtColor(astronaut, cv2.COLOR_BGR2YUV_I420)
    with pytest.raises(ValueError):
        apply_i420(yuv[:, ::1][::-1], TWO_FACES, AnonymizeOptions())


@pytest.mark.parametrize("layout", ["grey", "grey1", "bgra"])
def test_greyscale_and_bgra_come_back_in_their_layout(astronaut, layout):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    alpha = np.full(astronaut.shape[:2] + (1,), 77, np.uint8)
    frame = {
        "grey": grey,
        "grey1": grey[:, :, None],
        "bgra": np.concatenate([astronaut, alpha], axis=2),
    }[layout]
    out = veil.anonymize(frame, FACE)
    assert out.shape == frame.shape
    assert mean_abs_diff(out[80:160, 200:250], frame[80:160, 200:250]) > 12
    assert np.array_equal(out[300:], frame[300:])  # alpha and the rest untouched


def test_greyscale_inplace_writes_into_the_frame(astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    out = apply(grey, FACE, AnonymizeOptions(method="fill"), inplace=True)
    assert out is grey
    assert grey[118, 226] == 0


def test_a_picture_of_another_shape_is_a_user_error(astronaut):
    with pytest.raises(veil.VeilError, match="got shape"):
        veil.anonymize(np.zeros((4, 4, 2), np.uint8), FACE)


def test_mosaic_size_sets_the_cell_in_pixels(astronaut):
    def colours(cells: int) -> int:
        opts = AnonymizeOptions(method="pixelate", shape="rect", mask_scale=1.0, mosaic_size=cells)
        face = apply(astronaut, FACE, opts)[58:178, 182:270]
        return len(np.unique(face.reshape(-1, 3), axis=0))

    fine, coarse = colours(8), colours(30)
    assert fine > coarse
    assert coarse <= 4 * 5  # 88 x 120 px in 30 px cells
