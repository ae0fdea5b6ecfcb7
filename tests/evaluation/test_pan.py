import dataclasses

import numpy as np
import pytest

from veil.evaluation.datasets import Dataset, LabelledImage
from veil.evaluation.pan import PanRun, changed_share, pan_clip, pan_dataset, run_veil_pan
from veil.hide import AnonymizeOptions
from veil.io.video import VideoSource
from veil.pipeline import JobOptions

from media import ASTRONAUT_FACE, crowd_bgr, write_video


def test_changed_share_counts_pixels_moved_beyond_the_noise_level():
    a = np.zeros((20, 40, 3), np.uint8)
    b = a.copy()
    b[:, :10] = 200  # strongly changed
    b[:, 10:20] = 3  # within encoder noise
    boxes = np.array([[0, 0, 20, 20], [20, 0, 40, 20], [-5, -5, 10, 30]], np.float32)
    assert changed_share(a, b, boxes).tolist() == pytest.approx([0.5, 0.0, 1.0])


def test_pan_clip_moves_the_labels_with_the_photo(tmp_path, astronaut):
    boxes = np.array([ASTRONAUT_FACE], np.float32)
    truths = pan_clip(astronaut, boxes, tmp_path / "pan.mp4", size=(640, 360), frames=6, step=5)
    assert len(truths) == 6
    with VideoSource(tmp_path / "pan.mp4") as source:
        frames = [f.image for f in source.frames()]
    assert len(frames) == 6
    assert frames[0].shape == (360, 640, 3)
    for i, truth in enumerate(truths):
        assert len(truth) == 1, f"frame {i}: the face is whole in the frame"
        assert truth[0, 0] - truths[0][0, 0] == pytest.approx(5 * i)
    # The photo's pixels move with the labels (the face's centre column follows it).
    x = int((truths[0][0, 0] + truths[0][0, 2]) / 2)
    y = int((truths[0][0, 1] + truths[0][0, 3]) / 2)
    later = frames[4][y - 10 : y + 10, x + 20 - 10 : x + 20 + 10].astype(int)
    assert np.abs(later - frames[0][y - 10 : y + 10, x - 10 : x + 10].astype(int)).mean() < 8


def test_pan_run_counts_covered_face_frames(tmp_path):
    crowd, faces = crowd_bgr(rows=1)
    frames = [crowd] * 3
    plain = write_video(tmp_path / "plain.mp4", frames)
    hidden = [f.copy() for f in frames]
    for image in hidden:
        for x1, y1, x2, y2 in faces[:4].astype(int):
            image[y1:y2, x1:x2] = 255 - image[y1:y2, x1:x2]
    hidden = write_video(tmp_path / "hidden.mp4", hidden)
    run = PanRun("test")
    run.add(hidden, plain, dict.fromkeys(range(3), faces))
    summary = run.summary()
    assert summary["face_frames"] == 3 * len(faces)
    assert summary["covered"] == pytest.approx(4 / len(faces))


def test_veil_pan_run_covers_the_faces_it_hides(tmp_path, astronaut):
    photos = Dataset(
        "one",
        tmp_path,
        images=[
            LabelledImage(tmp_path / "astronaut.png", np.array([ASTRONAUT_FACE]), np.zeros((0, 4)))
        ],
    )
    import cv2

    cv2.imwrite(str(tmp_path / "astronaut.png"), astronaut)
    videos = pan_dataset(photos, tmp_path, size=(640, 480), frames=6)
    assert len(videos.videos) == 1
    options = JobOptions()
    hidden = run_veil_pan(videos, options, tmp_path).summary()
    assert hidden["face_frames"] == 6
    assert hidden["covered"] == 1.0
    assert hidden["cpu_seconds"] > 0
    off = dataclasses.replace(options, anonymize=AnonymizeOptions(method="pixelate", strength=200))
    assert run_veil_pan(videos, off, tmp_path).summary()["covered"] < 1.0
