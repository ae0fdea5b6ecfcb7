"""The batch journal: one SQLite row per input, so a rerun knows what is already done.

Each finished item is committed on its own (WAL mode, full sync), so a crash or
Ctrl-C loses at most the items that were still running. A row remembers the
settings hash and the input's fingerprint (size and modification time or
ETag): a rerun skips an item only when both match and its output still exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    settings TEXT NOT NULL,
    state TEXT NOT NULL,
    frames INTEGER NOT NULL DEFAULT 0,
    faces INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
)
"""

UPSERT = """
INSERT INTO items (key, source, target, fingerprint, settings, state, frames, faces, seconds,
                   error, attempts, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
ON CONFLICT(key) DO UPDATE SET source=excluded.source, target=excluded.target,
    fingerprint=excluded.fingerprint, settings=excluded.settings, state=excluded.state,
    frames=excluded.frames, faces=excluded.faces, seconds=excluded.seconds,
    error=excluded.error, attempts=items.attempts + 1, updated=excluded.updated
"""

# JobOptions fields that change how the work runs but not what is written.
NOT_IN_HASH = {
    "overwrite",
    "recursive",
    "queue_size",
    "batch_size",
    "threads",
    "suffix",
    "max_pixels",
}


def settings_hash(options) -> str:
    """A stable hash of everything in the options that decides the output's content."""

    def strip(value):
        if dataclasses.is_dataclass(value):
            fields = [f.name for f in dataclasses.fields(value) if f.name not in NOT_IN_HASH]
            return {name: strip(getattr(value, name)) for name in fields}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        return value

    text = json.dumps(strip(options), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Entry:
    key: str
    source: str
    target: str
    fingerprint: str
    settings: str
    state: str
    frames: int
    faces: int
    seconds: float
    error: str | None
    attempts: int
    updated: float


class Journal:
    """Per-item state of one output, in a SQLite file.

    Any failure of the file (a folder that cannot be created, a read-only or
    full disk, a damaged database) is one OutputError naming the journal.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._failing("cannot open the batch journal"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(SCHEMA)
            self.db.commit()

    @contextlib.contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            damaged = "not a database" in reason or "malformed" in reason
            hint = "; the file is damaged: move it away to start a new journal" if damaged else ""
            raise OutputError(f"{self.path}: {what} ({reason}){hint}") from None

    def entries(self) -> dict[str, Entry]:
        with self._failing("cannot read the batch journal"):
            rows = self.db.execute(
                f"SELECT {', '.join(f.name for f in dataclasses.fields(Entry))} FROM items"
            ).fetchall()
        return {row[0]: Entry(*row) for row in rows}

    def record(
        self,
        key: str,
        source: str,
        target: str,
        fingerprint: str,
        settings: str,
        state: str,
        frames: int = 0,
        faces: int = 0,
        seconds: float = 0.0,
        error: str | None = None,
    ) -> None:
        """Write one item's outcome and commit at once."""
        values = (key, source, target, fingerprint, settings, state, frames, faces, seconds, error)
        with self._failing("cannot record in the batch journal"):
            self.db.execute(UPSERT, (*values, time.time()))
            self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
