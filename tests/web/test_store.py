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
