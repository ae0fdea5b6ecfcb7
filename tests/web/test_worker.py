"""The worker pool: retention sweep, kept originals and detections, re-rendered versions."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi")

from veil.web.store import DONE, RUNNING, JobStore  # noqa: E402
from veil.web.worker import WorkerPool  # noqa: E402


def test_retention_sweep_deletes_old_results(tmp_path):
    store = JobStore(tmp_path)
    pool = WorkerPool(store, keep_seconds=3600)
    old, fresh, running = store.new_id(), store.new_id(), store.new_id()
    for job_id in (old, fresh, running):
        store.add(job_id, "x.jpg", "image", {})
        store.folder(job_id).mkdir()
        (store.folder(job_id) / "result.jpg").write_bytes(b"x")
    store.update(old, status=DONE, output="result.jpg", finished=time.time() - 7200)
    store.update(fresh, status=DONE, output="result.jpg")
    store.update(running, status=RUNNING)
    assert pool.sweep() == [old]
    assert not store.folder(old).exists()
    assert store.get(old) is None
    assert store.folder(fresh).exists()
    assert store.folder(running).exists()
    assert sorted(pool.sweep(now=time.time() + 7200)) == [fresh]
    store.close()


def wait_done(store: JobStore, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while store.get(job_id).status != DONE:
        assert time.monotonic() < deadline, store.get(job_id)
        time.sleep(0.1)


def test_a_video_keeps_original_and_detections_and_rerenders_new_versions(tmp_path, face_video):
    import json

    from veil.web.worker import DETECTIONS, versions

    store = JobStore(tmp_path / "data")
    pool = WorkerPool(store, keep_seconds=3600)
    job_id = store.new_id()
    store.folder(job_id).mkdir(parents=True)
    (store.folder(job_id) / "input.mp4").write_bytes(face_video.read_bytes())
    store.add(job_id, "clip.mp4", "video", {})
    pool.start()
    try:
        pool.submit(job_id)
        wait_done(store, job_id)
        folder = store.folder(job_id)
        first = store.get(job_id)
        assert (folder / "input.mp4").is_file()  # kept for the review page
        rows = json.loads((folder / DETECTIONS).read_text())
        assert {r["track_id"] for r in rows} == {1}
        # A file that does not fit the video: the job stays done, nothing new is written.
        (folder / DETECTIONS).write_text(json.dumps([{**rows[0], "frame": 999}]))
        assert pool.rerender(job_id)
        wait_done(store, job_id)
        assert store.get(job_id).error.startswith("re-render stopped: the detections file")
        assert versions(folder, ".mp4") == ["result.mp4"]
        (folder / DETECTIONS).write_text(json.dumps(rows[:5]))
        assert pool.rerender(job_id)
        wait_done(store, job_id)
        job = store.get(job_id)
        assert job.error is None
        assert job.output == "result-v2.mp4"
        assert job.boxes == 5
        assert job.finished == first.finished  # the job expires when it would have
        assert versions(folder, ".mp4") == ["result.mp4", "result-v2.mp4"]
        assert pool.sweep(now=time.time() + 7200) == [job_id]
        assert not folder.exists()
    finally:
        pool.close()
        store.close()
