"""The SQLite job store: reopening after a restart marks running jobs interrupted."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from veil.web.store import CANCELLED, DONE, INTERRUPTED, QUEUED, RUNNING, JobStore  # noqa: E402


def test_store_survives_reopen_and_marks_interrupted(tmp_path):
    store = JobStore(tmp_path)
    ids = [store.new_id() for _ in range(3)]
    for job_id, name in zip(ids, ("a.jpg", "b.mp4", "c.jpg")):
        store.add(job_id, name, "image", {"method": "blur"})
    store.update(ids[0], status=DONE, output="result.jpg", boxes=2)
    assert store.set_status_if(ids[1], QUEUED, RUNNING)
    assert not store.set_status_if(ids[1], QUEUED, CANCELLED)
    store.close()
    reopened = JobStore(tmp_path)
    requeue = reopened.recover()
    states = {job.id: job.status for job in reopened.list()}
    assert states == {ids[0]: DONE, ids[1]: INTERRUPTED, ids[2]: QUEUED}
    assert [job.id for job in requeue] == [ids[2]]
    assert reopened.get(ids[0]).public()["has_result"] is True
    reopened.close()


def test_a_job_list_from_before_sessions_is_opened(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, "
        "status TEXT NOT NULL, options TEXT NOT NULL, created REAL NOT NULL, finished REAL, "
        "error TEXT, output TEXT, review TEXT, frames INTEGER NOT NULL DEFAULT 0, "
        "boxes INTEGER NOT NULL DEFAULT 0)"
    )
    old.execute(
        "INSERT INTO jobs (id, name, kind, status, options, created) "
        "VALUES ('a' , 'old.jpg', 'image', 'done', '{}', 1.0)"
    )
    old.commit()
    old.close()
    store = JobStore(tmp_path)
    store.add(store.new_id(), "new.jpg", "image", {}, owner="me")
    assert [job.name for job in store.list("me")] == ["new.jpg"]
    assert [job.name for job in store.list()] == ["old.jpg", "new.jpg"]
    assert "owner" not in store.list()[0].public()
    store.close()
