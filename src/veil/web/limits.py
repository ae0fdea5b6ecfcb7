"""How much one server takes in: a bounded job queue and a share of uploads per client.

An upload is admitted only while the jobs waiting or running, plus the uploads under
way, stay under the queue's bound, and while its client (its browser session, or its
address when it sends no session cookie) has fewer uploads under way than its share.
Anything more is refused at once with HTTP 429, before a byte of the body is read.
Runs on the server's event loop only, so its counts need no lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from .store import JobStore
from .uploads import Busy


class Admission:
    def __init__(self, store: JobStore, *, max_queued: int, max_client_uploads: int) -> None:
        self.store = store
        self.max_queued = max_queued
        self.max_client_uploads = max_client_uploads
        self._uploading: Counter[str] = Counter()

    @contextmanager
    def upload(self, client: str) -> Iterator[None]:
        """Hold one upload slot of `client` while the body arrives and its job is queued."""
        if self._uploading[client] >= self.max_client_uploads:
            raise Busy(
                f"too many uploads at once from this client (the limit is "
                f"{self.max_client_uploads}); wait for one to finish"
            )
        if self.store.active() + self._uploading.total() >= self.max_queued:
            raise Busy(
                f"the server's queue is full ({self.max_queued} jobs waiting or running); "
                "try again when some are done"
            )
        self._uploading[client] += 1
        try:
            yield
        finally:
            self._uploading[client] -= 1
            if not self._uploading[client]:
                del self._uploading[client]
