"""Bulk writes in fixed-size batches on a background thread, so building the next
batch of documents overlaps with the server storing the previous one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

from pymongo.database import Database

MAX_PENDING = 2  # bound memory: at most this many batches wait for the server


class BatchWriter:
    def __init__(self, db: Database, batch_size: int) -> None:
        self._db = db
        self._batch_size = batch_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-writer")
        self._pending: list[Future] = []
        self.counts: Counter[str] = Counter()

    def write(self, collection: str, documents: Iterable[dict]) -> None:
        """Queue documents (a list or a lazy iterator) in batches of batch_size."""
        stream = iter(documents)
        while batch := list(islice(stream, self._batch_size)):
            self._wait_for_room()
            self._pending.append(self._pool.submit(self._insert, collection, batch))
            self.counts[collection] += len(batch)
        self.counts.setdefault(collection, 0)

    def _insert(self, collection: str, batch: list[dict]) -> None:
        self._db[collection].insert_many(batch, ordered=False)

    def _wait_for_room(self) -> None:
        while len(self._pending) >= MAX_PENDING:
            self._pending.pop(0).result()  # re-raises a failed insert here

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
