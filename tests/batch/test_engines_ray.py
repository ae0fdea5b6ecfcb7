"""veil batch as Ray tasks on a local Ray instance: same outputs as the local pool."""

from __future__ import annotations

import json

import pytest

from veil.batch.command import main as batch_main

from batch_media import audio_packets, journal_rows, make_tree, video_frames
from media import ROOT

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT / "src")}},
    )
    yield
    ray.shutdown()


def test_ray_matches_local_pool(tmp_path):
    source = tmp_path / "in"
    files = make_tree(source, images=3, video=True, bad=True)
    common = [str(source), "-q", "--threads", "1", "--method", "pixelate"]
    assert batch_main([*common, "-o", str(tmp_path / "local"), "--workers", "2"]) == 1
    assert batch_main([*common, "-o", str(tmp_path / "ray"), "--engine", "ray"]) == 1

    summary = json.loads((tmp_path / "ray" / "veil-batch-summary.json").read_text())
    assert summary["engine"] == "ray"
    assert summary["processed"] == 4
    assert summary["failed"] == 1
    assert "not a readable image" in summary["failures"][0]["error"]
    for rel in files:
        if rel.endswith("broken.jpg"):
            continue
        local, remote = tmp_path / "local" / rel, tmp_path / "ray" / rel
        if rel.endswith(".mov"):
            a, b = video_frames(local), video_frames(remote)
            assert len(a) == len(b) == 15
            assert all((x == y).all() for x, y in zip(a, b))
            assert audio_packets(remote) == audio_packets(local) > 50
        else:
            assert local.read_bytes() == remote.read_bytes(), rel

    # the journal works the same: a rerun on Ray skips everything done
    before = journal_rows(tmp_path / "ray" / "veil-batch.sqlite")
    assert batch_main([*common, "-o", str(tmp_path / "ray"), "--engine", "ray"]) == 1
    after = journal_rows(tmp_path / "ray" / "veil-batch.sqlite")
    assert {k for k in after if after[k]["updated"] != before[k]["updated"]} == {"day0/broken.jpg"}


def test_address_only_with_ray(tmp_path):
    from veil.cli import main

    assert (
        main(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "--address", "127.0.0.1:1"]) == 2
    )
