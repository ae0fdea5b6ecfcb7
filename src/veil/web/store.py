"""The job list, kept in SQLite so a restart loses no finished result.

Each job owns one folder under `<data>/jobs/<id>/` named by the server; the
database holds the display name, the options, the state and the output's file
name inside that folder. Progress (frames done) changes many times a second and
lives only in memory; everything else is written through at once.

Each job is filed under its owner (a hash of the browser session that created it), so
each session lists only its own jobs. The folders are 0700 and the files 0600: on a shared
machine no other account can read the results or the job list.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
    "interrupted",
)
FINAL_STATES = (DONE, FAILED, CANCELLED, INTERRUPTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    options TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    error TEXT,
    output TEXT,
    review TEXT,
    frames INTEGER NOT NULL DEFAULT 0,
    boxes INTEGER NOT NULL DEFAULT 0,
    owner TEXT
)
"""
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


@dataclass
class Job:
    id: str
    name: str
    kind: str
    status: str
    options: dict[str, Any]
    created: float
    finished: float | None = None
    error: str | None = None
    output: str | None = None
    review: str | None = None
    frames: int = 0
    boxes: int = 0
    owner: str | None = field(default=None, compare=False)
    done_frames: int = field(default=0, compare=False)
    total_frames: int | None = field(default=None, compare=False)

    def public(self) -> dict[str, Any]:
        """What the API shows: no server paths, only names and states."""
        data = asdict(self)
        data["has_result"] = self.status == DONE and self.output is not None
        data["has_audit"] = data["has_result"] and bool(self.options.get("audit"))
        data["has_review"] = self.review is not None
        for private in ("output", "review", "owner"):
            data.pop(private)
        return data


class JobStore:
    """Thread-safe job list; `version` grows on every change so listeners can poll cheaply."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.jobs_dir = self.root / "jobs"
        private_dir(self.jobs_dir)
        database = self.root / "jobs.sqlite3"
        database.touch(PRIVATE_FILE)
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "owner" not in columns:  # a job list from before sessions: its jobs have no owner
            self._db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
        for path in self.root.glob("jobs.sqlite3*"):
            path.chmod(PRIVATE_FILE)
        self._lock = threading.Lock()
        self._progress: dict[str, tuple[int, int | None]] = {}
        self.version = 0

    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def make_folder(self, job_id: str) -> Path:
        """The job's own folder, created private."""
        return private_dir(self.folder(job_id))

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def add(
        self, job_id: str, name: str, kind: str, options: dict[str, Any], owner: str | None = None
    ) -> Job:
        job = Job(job_id, name, kind, QUEUED, options, time.time(), owner=owner)
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, name, kind, status, options, created, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.name, job.kind, job.status, json.dumps(options), job.created, owner),
            )
            self.version += 1
        return job

    def update(self, job_id: str, **fields: Any) -> None:
        if not fields:
            return
        if fields.get("status") in FINAL_STATES:
            fields.setdefault("finished", time.time())
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {columns} WHERE id = ?", (*fields.values(), job_id))
            self.version += 1

    def set_status_if(self, job_id: str, expected: str, status: str, **fields: Any) -> bool:
        """Atomically move a job from `expected` to `status`; False if it was elsewhere."""
        fields = {"status": status, **fields}
        if status in FINAL_STATES:
            fields.setdefault("finished", time.time())
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            cur = self._db.execute(
                f"UPDATE jobs SET {columns} WHERE id = ? AND status = ?",
                (*fields.values(), job_id, expected),
            )
            changed = cur.rowcount == 1
            if changed:
                self.version += 1
        return changed

    def set_progress(self, job_id: str, done: int, total: int | None) -> None:
        with self._lock:
            self._progress[job_id] = (done, total)
            self.version += 1

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return self._job(row) if row else None

    def list(self, owner: str | None = None) -> list[Job]:
        """All jobs, oldest first; only those of `owner` when one is given."""
        with self._lock:
            if owner is None:
                rows = self._db.execute("SELECT * FROM jobs ORDER BY created").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM jobs WHERE owner = ? ORDER BY created", (owner,)
                ).fetchall()
            return [self._job(row) for row in rows]

    def active(self) -> int:
        """How many jobs are queued or running."""
        with self._lock:
            cur = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status IN (?, ?)", (QUEUED, RUNNING)
            )
            return cur.fetchone()[0]

    def _job(self, row: tuple) -> Job:
        """A `SELECT *` row as a Job: the table's columns are Job's fields up to `owner`, in
        order, the options as JSON; the progress of a running job is kept in memory."""
        values = list(row)
        values[4] = json.loads(values[4])
        return Job(*values, *self._progress.get(row[0], (0, None)))

    def recover(self) -> list[Job]:
        """After a restart: running jobs are marked interrupted; queued ones are returned to run."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, finished = ?, error = ? WHERE status = ?",
                (
                    INTERRUPTED,
                    time.time(),
                    "the server stopped while this job was running",
                    RUNNING,
                ),
            )
            self.version += 1
        return [job for job in self.list() if job.status == QUEUED]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._progress.pop(job_id, None)
            self.version += 1
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def expired(self, keep_seconds: float, now: float | None = None) -> list[str]:
        """Finished jobs older than the retention time."""
        limit = (now or time.time()) - keep_seconds
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE finished IS NOT NULL AND finished < ?", (limit,)
            )
            return [row[0] for row in rows.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def private_dir(path: Path) -> Path:
    """path as a folder only this account can open (0700), created if missing."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)
    return path
