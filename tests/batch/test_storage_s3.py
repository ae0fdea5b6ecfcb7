"""veil batch against S3: a real S3 API served by moto on 127.0.0.1, reached through fsspec/s3fs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from veil.batch.command import main as batch_main

from batch_media import (
    audio_packets,
    face_hidden,
    journal_rows,
    make_tree,
    small_astronaut,
    video_frames,
)

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def bucket(endpoint, tmp_path, request):
    fs = s3fs.S3FileSystem(
        key="testing", secret="testing", endpoint_url=endpoint, skip_instance_cache=True
    )
    name = "veil-" + request.node.name.replace("_", "-")[:40].lower()
    fs.mkdir(name)
    files = make_tree(tmp_path / "src")
    for rel, path in files.items():
        fs.put(str(path), f"{name}/raw/{rel}")
    return fs, name, files


def storage_args(endpoint: str) -> list[str]:
    return [
        "--storage-option",
        f"endpoint_url={endpoint}",
        "--storage-option",
        "key=testing",
        "--storage-option",
        "secret=testing",
    ]


def test_s3_prefix_to_s3_prefix_and_rerun(tmp_path, endpoint, bucket):
    fs, name, files = bucket
    journal = tmp_path / "journal.sqlite"
    args = [
        f"s3://{name}/raw/",
        "-o",
        f"s3://{name}/anon",
        "--workers",
        "2",
        "-q",
        "--journal",
        str(journal),
        "--summary",
        str(tmp_path / "summary.json"),
        "--export",
        "json",
        *storage_args(endpoint),
    ]
    assert batch_main(args) == 1  # the broken file fails, the rest is uploaded
    written = sorted(p.split("/anon/", 1)[1] for p in fs.find(f"{name}/anon"))
    assert written == sorted(
        [
            "clips/walk.json",
            "clips/walk.mov",
            "day0/photo0.json",
            "day0/photo0.jpg",
            "day0/photo2.json",
            "day0/photo2.jpg",
            "day1/photo1.json",
            "day1/photo1.png",
        ]
    )
    local = tmp_path / "down"
    fs.get(f"{name}/anon/", str(local), recursive=True)
    photo = cv2.imread(str(local / "day0" / "photo0.jpg"))
    assert photo.shape == (256, 256, 3)
    assert face_hidden(small_astronaut(), photo)
    assert len(video_frames(local / "clips" / "walk.mov")) == 15
    assert audio_packets(local / "clips" / "walk.mov") > 50
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processed"] == 4
    assert summary["failed"] == 1
    assert summary["failures"][0]["error"].startswith(f"s3://{name}/raw/day0/broken.jpg")
    rows = journal_rows(journal)
    assert rows["day0/photo0.jpg"]["target"] == f"s3://{name}/anon/day0/photo0.jpg"

    fs.pipe(f"{name}/raw/day0/broken.jpg", cv2.imencode(".jpg", small_astronaut())[1].tobytes())
    fs.rm(f"{name}/anon/day1/photo1.png")
    assert batch_main(args) == 0
    again = journal_rows(journal)
    redone = {k for k in again if again[k]["updated"] != rows[k]["updated"]}
    assert redone == {"day0/broken.jpg", "day1/photo1.png"}
    fs.invalidate_cache()
    assert fs.exists(f"{name}/anon/day0/broken.jpg")
    assert fs.exists(f"{name}/anon/day1/photo1.png")


def test_s3_manifest_to_local_folder(tmp_path, endpoint, bucket):
    fs, name, files = bucket
    fs.pipe(
        f"{name}/lists/today.csv",
        f"path,note\ns3://{name}/raw/day0/photo0.jpg,a\ns3://{name}/raw/clips/walk.mov,b\n".encode(),
    )
    out = tmp_path / "out"
    assert (
        batch_main(
            [
                f"s3://{name}/lists/today.csv",
                "-o",
                str(out),
                "--workers",
                "1",
                "-q",
                *storage_args(endpoint),
            ]
        )
        == 0
    )
    assert (out / "day0" / "photo0.jpg").is_file()
    assert (out / "clips" / "walk.mov").is_file()
    before = cv2.imread(str(files["day0/photo0.jpg"]))
    after = cv2.imread(str(out / "day0" / "photo0.jpg"))
    assert not np.array_equal(before, after)
    assert face_hidden(small_astronaut(), after)


def test_local_folder_to_s3(tmp_path, endpoint, bucket):
    fs, name, files = bucket
    files["day0/broken.jpg"].unlink()
    source = files["day0/photo0.jpg"].parents[1]
    assert (
        batch_main(
            [
                str(source),
                "-o",
                f"s3://{name}/from-disk/",
                "--workers",
                "1",
                "-q",
                "--journal",
                str(tmp_path / "j.sqlite"),
                *storage_args(endpoint),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "j-summary.json").read_text())["processed"] == 4
    assert sorted(p.split("/from-disk/", 1)[1] for p in fs.find(f"{name}/from-disk")) == [
        "clips/walk.mov",
        "day0/photo0.jpg",
        "day0/photo2.jpg",
        "day1/photo1.png",
    ]
