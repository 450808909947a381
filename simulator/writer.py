"""Bulk writes in fixed-size batches on a background thread, so building the next
batch of documents overlaps with the server storing the previous one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from pymongo.database import Database
from pymongo.errors import BulkWriteError

MAX_PENDING = 2  # bound memory: at most this many batches wait for the server
DUPLICATE_KEY = 11000


class BatchWriter:
    def __init__(self, db: Database, batch_size: int) -> None:
        self._db = db
        self._batch_size = batch_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-writer")
        self._pending: list[Future] = []
        self.counts: Counter[str] = Counter()
        self.duplicates_ignored: Counter[str] = Counter()  # already stored (retried batch)

    def write(self, collection: str, documents: Iterable[dict]) -> None:
        """Queue documents (a list or a lazy iterator) in batches of batch_size."""
        stream = iter(documents)
        while batch := list(islice(stream, self._batch_size)):
            self._wait_for_room()
            self._pending.append(self._pool.submit(self._insert, collection, batch))
            self.counts[collection] += len(batch)
        self.counts.setdefault(collection, 0)

    def _insert(self, collection: str, batch: list[dict]) -> None:
        try:
            self._db[collection].insert_many(batch, ordered=False)
        except BulkWriteError as exc:
            # Seen on a loaded server: the driver retried a batch the server had already
            # stored, and every document came back as a duplicate _id. Ids are
            # deterministic, so a duplicate _id is the same document: already written.
            # Duplicates on any other unique index are real errors.
            # Any other error (or a write concern error) still fails the run.
            details = exc.details or {}
            errors = details.get("writeErrors", [])
            only_duplicates = errors and all(
                e.get("code") == DUPLICATE_KEY and e.get("keyPattern") == {"_id": 1} for e in errors
            )
            if not only_duplicates or details.get("writeConcernErrors"):
                raise
            self.duplicates_ignored[collection] += len(errors)

    def _wait_for_room(self) -> None:
        while len(self._pending) >= MAX_PENDING:
            self._pending.pop(0).result()  # re-raises a failed insert here

    def flush(self) -> None:
        """Wait until every queued batch is stored (re-raises a failed insert)."""
        while self._pending:
            self._pending.pop(0).result()

    def close(self) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pending.clear()
            self._pool.shutdown(wait=True)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
