"""A stand-in for the pymongo Database `simulate()` writes to, that writes the raw lake.

For benchmarks only: at 100k customers x 180 days (about 27M usage sessions) loading
the embedded server and extracting would take hours, so the simulator's documents go
straight to `lake/raw/<collection>/dt=<as_of>/part-0.parquet`, converted exactly as
the extract converts a cursor batch (tasks/extract.py: each batch is BSON-encoded and
handed to pymongoarrow's own BSON-stream reader with the extract's schema, then
`to_lake_table`), filtered by the table's server-side query, streamed batch by batch
into one Parquet file per collection (never the whole collection in memory).

(Named with a leading underscore so `python -m bench` does not take it for a benchmark.)
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import bson
import pyarrow.parquet as pq
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions

from bbx import lake

with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    from pymongoarrow.context import PyMongoArrowContext

    from bbx.lake import lake_schema
    from tasks.extract import mongo_schema, to_lake_table

# What `bbx.mongo.connect` gives the extract's collections.
CODEC_OPTIONS = CodecOptions(tz_aware=True, uuid_representation=UuidRepresentation.STANDARD)


def _matches(document: dict[str, Any], query: dict[str, Any]) -> bool:
    """The lake's server-side filters are plain equalities (e.g. {"action": "login"})."""
    for key, value in query.items():
        if key.startswith("$") or isinstance(value, dict):
            raise NotImplementedError(f"lake writer filters equalities only, not {query}")
        if document.get(key) != value:
            return False
    return True


class _LakeCollection:
    def __init__(self, lake_db: LakeDatabase, name: str) -> None:
        self._lake, self._name = lake_db, name

    def insert_many(self, documents: list[dict], ordered: bool = True) -> None:
        self._lake.add(self._name, documents)

    def insert_one(self, document: dict) -> None:
        self._lake.add(self._name, [document])

    def delete_many(self, query: dict) -> None:
        return None  # a lake written afresh holds nothing to delete


class LakeDatabase:
    """`db[collection].insert_many(documents)` → Arrow rows in that collection's raw
    lake file; collections the lake does not read (the truth, roll-ups) are counted
    and dropped. Call `close()` to finish the files (they appear atomically)."""

    def __init__(self, lake_dir: Path, as_of: dt.date) -> None:
        self.name = "lake"
        self.lake_dir, self.as_of = Path(lake_dir), as_of
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.rows: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def __getitem__(self, name: str) -> _LakeCollection:
        return _LakeCollection(self, name)

    def drop_collection(self, name: str) -> None:
        return None

    def path(self, collection: str) -> Path:
        return lake.raw_path(self.lake_dir, collection, self.as_of)

    def add(self, collection: str, documents: list[dict]) -> None:
        spec = lake.TABLES.get(collection)
        if spec is None:
            self.dropped[collection] += len(documents)
            return
        selected = [d for d in documents if _matches(d, spec.query)] if spec.query else documents
        if not selected:
            return
        # The extract's conversion of one cursor batch (tasks.extract.stream_batches).
        context = PyMongoArrowContext(mongo_schema(spec), codec_options=CODEC_OPTIONS,
                                      allow_invalid=True)
        context.process_bson_stream(b"".join(bson.encode(d, codec_options=CODEC_OPTIONS)
                                             for d in selected))
        table = to_lake_table(context.finish(), spec)
        writer = self._writers.get(collection)
        if writer is None:
            tmp = self.path(collection).with_suffix(".parquet.tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            writer = self._writers[collection] = pq.ParquetWriter(tmp, lake_schema(spec),
                                                                  compression="zstd")
        writer.write_table(table)
        self.rows[collection] += table.num_rows

    def close(self) -> dict[str, str]:
        """Finish every lake table (empty ones too); collection → its Parquet file."""
        paths = {}
        for collection, spec in lake.TABLES.items():
            path = self.path(collection)
            tmp = path.with_suffix(".parquet.tmp")
            writer = self._writers.pop(collection, None)
            if writer is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(lake_schema(spec).empty_table(), tmp, compression="zstd")
            else:
                writer.close()
            tmp.replace(path)
            paths[collection] = str(path)
        return paths


def write_lake(lake_dir: Path, *, customers: int, days: int, seed: int,
               end: dt.date) -> tuple[dict[str, str], dict[str, int], float]:
    """Simulate `customers` x `days` ending on `end` into a raw lake for as-of end + 1.
    Returns (collection → Parquet file, rows per table, seconds)."""
    import time

    from simulator import simulate

    began = time.perf_counter()
    sink = LakeDatabase(lake_dir, end + dt.timedelta(days=1))
    try:
        simulate(sink, customers=customers, days=days, seed=seed, end=end)  # type: ignore[arg-type]
    finally:
        paths = sink.close()
    return paths, dict(sink.rows), time.perf_counter() - began
