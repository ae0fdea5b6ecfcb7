"""The worker pool's retention sweep."""

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
