import json

import cv2
import numpy as np
import pytest

from veil.cli import main

from media import panning_frames, write_video

ASTRONAUT = [178, 55, 272, 182]
CAMERA = [200, 115, 260, 200]


@pytest.fixture(scope="module")
def image_set(tmp_path_factory, astronaut, camera):
    """Three labelled photos: two ordinary faces and one 16-pixel face on a large canvas."""
    root = tmp_path_factory.mktemp("faces")
    (root / "images").mkdir()
    canvas = np.full((1280, 1280, 3), (90, 110, 100), np.uint8)
    canvas[600:664, 500:564] = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA)
    small = [round(v * 64 / 512 + o, 1) for v, o in zip(ASTRONAUT, (500, 600, 500, 600))]
    for name, image in (("astronaut", astronaut), ("camera", camera), ("crowd", canvas)):
        cv2.imwrite(str(root / "images" / f"{name}.png"), image)
    labels = {
        "images/astronaut.png": [ASTRONAUT],
        "images/camera.png": [CAMERA],
        "images/crowd.png": [small],
    }
    (root / "annotations.json").write_text(json.dumps(labels))
    return root


def run_eval(tmp_path, *args):
    out = tmp_path / "report.json"
    assert main(["eval", *map(str, args), "--threads", "2", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_eval_scores_images(tmp_path, image_set, capsys):
    report = run_eval(tmp_path, image_set)
    rows = report["datasets"][image_set.name]["results"]
    assert len(rows) == 1
    row = rows[0]
    assert row["system"] == "veil balanced"
    assert row["faces"] == 3
    assert row["images"] == 3
    assert row["recall"] == 1.0
    assert row["ap50"] == pytest.approx(1.0)
    assert row["precision"] == 1.0
    assert row["leak_rate"] == 0.0
    assert {b: v["faces"] for b, v in row["buckets"].items()} == {
        "<16": 1,
        "16-32": 0,
        "32-64": 0,
        ">64": 2,
    }
    assert row["fps"] > 0
    assert row["frames"] == 3
    printed = capsys.readouterr().out
    assert "veil balanced" in printed
    assert "R<16" in printed


def test_eval_quality_and_deface(tmp_path, image_set):
    report = run_eval(tmp_path, image_set, "--quality", "fast", "--compare", "deface")
    fast, deface = report["datasets"][image_set.name]["results"]
    assert fast["system"] == "veil fast"
    assert deface["system"] == "deface"
    assert fast["buckets"]["<16"]["recall"] == 0.0
    assert fast["buckets"][">64"]["recall"] == 1.0
    assert fast["recall"] == pytest.approx(2 / 3)
    assert deface["buckets"][">64"]["recall"] == 1.0
    assert deface["mask_scale"] == pytest.approx(1.6)


def test_hard_subset_ignores_other_faces(tmp_path, image_set):
    root = tmp_path / "wider_like"
    root.mkdir()
    (root / "images").symlink_to(image_set / "images")
    labels = json.loads((image_set / "annotations.json").read_text())
    (root / "annotations.json").write_text(json.dumps(labels))
    hard = {k: v for k, v in labels.items() if "crowd" not in k}
    (root / "annotations_hard_subset.json").write_text(json.dumps(hard))
    row = run_eval(tmp_path, root, "--quality", "fast")["datasets"]["wider_like"]["results"][0]
    assert row["faces"] == 2
    assert row["ignored_boxes"] == 1
    assert row["recall"] == 1.0
    assert (
        run_eval(tmp_path, root, "--subset", "all", "--quality", "fast")["datasets"]["wider_like"][
            "results"
        ][0]["faces"]
        == 3
    )


def test_eval_runs_videos_through_the_pipeline(tmp_path, astronaut):
    root = tmp_path / "clips"
    (root / "videos").mkdir(parents=True)
    n = 12
    write_video(root / "videos" / "pan.mp4", panning_frames(astronaut, n), fps=15)
    frames = [
        {
            "index": i,
            "boxes": [[ASTRONAUT[0] + 3 * i, ASTRONAUT[1], ASTRONAUT[2] + 3 * i, ASTRONAUT[3]]],
        }
        for i in range(0, n, 2)
    ]
    labels = {
        "videos/pan.mp4": {"fps": 15, "width": 512, "height": 512, "n_frames": n, "frames": frames}
    }
    (root / "video_annotations.json").write_text(json.dumps(labels))
    entry = run_eval(tmp_path, root, "--limit", "8")["datasets"]["clips"]
    row = entry["results"][0]
    assert entry["kind"] == "video"
    assert row["frames"] == 8
    assert row["images"] == 4
    assert row["faces"] == 4
    assert row["recall"] == 1.0
    assert row["leak_rate"] == 0.0
    assert row["ap50"] is None
    assert row["precision"] is None


def test_config_file_is_honoured_and_flags_win(tmp_path, image_set):
    config = tmp_path / "eval.toml"
    config.write_text('limit = 1\nquality = "max"\nmask-scale = 1.3\n')
    report = run_eval(tmp_path, image_set, "--config", config, "--quality", "fast")
    assert report["settings"]["limit"] == 1
    assert report["settings"]["mask_scale"] == 1.3
    assert report["datasets"][image_set.name]["results"][0]["system"] == "veil fast"
    assert report["datasets"][image_set.name]["results"][0]["images"] == 1


def test_unknown_dataset_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nowhere"), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("veil: error: no dataset folder")
    assert "\n" not in err
