"""The validated lake split into hash buckets of customers, streamed once.

Layout (under the lake, so every Dask worker that sees the lake sees the buckets):

    buckets/dt=<as_of>/<collection>/bucket=NNN.parquet   rows of the bucket's users
    buckets/dt=<as_of>/_partitions.json                  inputs' fingerprints, bucket count
    buckets/dt=<as_of>/_scored/bucket=NNN-*.parquet      per-bucket scoring output

A row goes to bucket `features.buckets.bucket_of(user_id)`; rows without a user id
go to bucket 0 (no feature reads them). Tables without a user id (plans) are shared:
every bucket reads the clean table itself. Each clean part is read in record batches,
so no table is ever whole in memory. Rows keep their order within a bucket, so the
newest copy of a key (incremental parts overlap) is the same row the whole-table
reader keeps: an event's user never changes, so all copies share a bucket.
The split is reused while the clean inputs and the bucket count are unchanged; a
new split removes the splits of earlier as-of dates that no run has used for
`scale.keep_idle_splits_hours` (derived data, rebuilt on demand; every use touches
`_partitions.json`, so a backfill running beside the nightly keeps the split it reads).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bbx import lake
from bbx.lake.files import parquet_writer, read_json, write_json
from bbx.lake.history import (
    content_fingerprint,
    history_schema,
    newest_copies,
    part_batches,
    part_schema,
    read_table,
    stored_rows,
    table_parts,
)
from bbx.settings import Settings
from features.buckets import bucket_count, bucket_of
from features.coverage import COVERAGE_SOURCES, EventDays, combine_event_days, event_days
from features.customer import LakeTables

BATCH_ROWS = 200_000  # rows read per record batch
FLUSH_ROWS = 50_000  # rows buffered per bucket before a row group is written
USER_COLUMN = "user_id"


@dataclass(frozen=True)
class LakePartitions:
    root: str
    buckets: int
    shared: dict[str, str]  # collection → its clean path (read whole by every bucket)
    overlapping: dict[str, bool]  # collection from several parts: keep each key's last copy

    def bucket_paths(self, bucket: int) -> dict[str, str]:
        """collection → the file a bucket reads (shared tables: the clean path)."""
        names = [f.name for f in fields(LakeTables)]
        return {n: self.shared.get(n) or str(bucket_file(Path(self.root), n, bucket))
                for n in names}

    def scored_path(self, bucket: int, what: str) -> Path:
        return Path(self.root) / "_scored" / f"bucket={bucket:03d}-{what}.parquet"


def buckets_root(lake_dir: Path, as_of: dt.date) -> Path:
    return lake_dir / "buckets" / lake.partition(as_of)


def bucket_file(root: Path, collection: str, bucket: int) -> Path:
    return root / collection / f"bucket={bucket:03d}.parquet"


def read_bucket(partitions: LakePartitions, bucket: int) -> LakeTables:
    """One bucket's customers' validated rows, as the features expect them."""
    frames = {}
    for name, path in partitions.bucket_paths(bucket).items():
        if name in partitions.shared:
            frames[name] = read_table(name, path)
        else:
            frame = pq.read_table(path).to_pandas()
            frames[name] = newest_copies(name, frame, partitions.overlapping[name])
    return LakeTables(**frames)


def lake_event_days(partitions: LakePartitions) -> EventDays:
    """The whole lake's events per day and source (features/coverage.py), from the
    buckets' event-time columns only: what bucketed churn features need to see the same
    coverage as a whole-lake build. Remembered per process for the same files (every
    scoring bucket asks for it)."""
    files = tuple(
        (path, *(lambda st: (st.st_mtime_ns, st.st_size))(Path(path).stat()))
        for b in range(partitions.buckets)
        for name, path in sorted(partitions.bucket_paths(b).items())
        if name in COVERAGE_SOURCES and Path(path).is_file()
    )
    key = (partitions.root, files)
    if key not in _EVENT_DAYS:
        _EVENT_DAYS.clear()  # one night's lake at a time
        _EVENT_DAYS[key] = _read_event_days(partitions)
    return _EVENT_DAYS[key]


_EVENT_DAYS: dict[tuple, EventDays] = {}


def _read_event_days(partitions: LakePartitions) -> EventDays:
    parts = []
    for bucket in range(partitions.buckets):
        frames = {}
        for name, path in partitions.bucket_paths(bucket).items():
            column = COVERAGE_SOURCES.get(name)
            if column is None:
                continue
            if name in partitions.shared:
                frame = read_table(name, path)
                frames[name] = frame if bucket == 0 else frame.iloc[:0]
            else:
                keys = [lake.TABLES[name].key, column]
                frame = pq.read_table(path, columns=keys).to_pandas()
                frames[name] = newest_copies(name, frame, partitions.overlapping[name])
        parts.append(event_days(SimpleNamespace(**frames)))
    return combine_event_days(parts)


def _row_buckets(table: pa.Table, buckets: int) -> np.ndarray:
    """Bucket of every row: ids are hashed once per distinct id in the batch."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int64)
    column = table.column(USER_COLUMN).combine_chunks()
    if pa.types.is_null(column.type):
        return np.zeros(table.num_rows, dtype=np.int64)
    encoded = pc.dictionary_encode(column)
    distinct = bucket_of(encoded.dictionary.to_numpy(zero_copy_only=False), buckets)
    index = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    return np.where(index >= 0, distinct[np.maximum(index, 0)], 0)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.equals(schema):
        return table
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _split_collection(collection: str, path: str, root: Path, buckets: int) -> None:
    parts = table_parts(path)
    schemas = [part_schema(collection, p) for p in parts] or [history_schema(collection, path)]
    schema = schemas[0]
    if any(not s.equals(schema) for s in schemas[1:]):
        schema = pa.unify_schemas(schemas, promote_options="default")
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(parquet_writer(bucket_file(root, collection, b), schema))
                   for b in range(buckets)]
        _split_parts(collection, parts, schema, writers, buckets)


def _split_parts(collection: str, parts: list[Path], schema: pa.Schema,
                 writers: list[pq.ParquetWriter], buckets: int) -> None:
    pending: list[list[pa.Table]] = [[] for _ in range(buckets)]
    rows = np.zeros(buckets, dtype=np.int64)

    def flush(b: int) -> None:
        if pending[b]:
            writers[b].write_table(pa.concat_tables(pending[b]))
            pending[b], rows[b] = [], 0

    for part in parts:
        for batch in part_batches(collection, part, BATCH_ROWS):
            table = _conform(batch, schema)
            which = _row_buckets(table, buckets)
            order = np.argsort(which, kind="stable")  # stable: rows keep their order
            counts = np.bincount(which, minlength=buckets)
            grouped = table.take(pa.array(order))
            start = 0
            for b in np.flatnonzero(counts):
                pending[b].append(grouped.slice(start, int(counts[b])))
                start += int(counts[b])
                rows[b] += counts[b]
                if rows[b] >= FLUSH_ROWS:
                    flush(b)
    for b in range(buckets):
        flush(b)


def partition_lake(
    settings: Settings, as_of: dt.date, clean_paths: Mapping[str, str],
    buckets: int | None = None,
) -> LakePartitions:
    """Split the clean tables into `buckets` by user id (default `scale.buckets`, or one
    bucket per `scale.customers_per_bucket` users)."""
    root = buckets_root(settings.lake_dir, as_of)
    names = [f.name for f in fields(LakeTables)]
    missing = [n for n in names if n not in clean_paths]
    if missing:
        raise ValueError(f"no validated lake file for: {', '.join(missing)}")
    buckets = buckets or settings.scale.buckets or bucket_count(
        stored_rows(clean_paths["users"]), settings.scale.customers_per_bucket)
    shared, bucketed = {}, []
    for name in names:
        path = str(clean_paths[name])
        if USER_COLUMN in history_schema(name, path).names:
            bucketed.append(name)
        else:
            shared[name] = path
    partitions = LakePartitions(
        root=str(root), buckets=buckets, shared=shared,
        overlapping={n: len(table_parts(clean_paths[n])) > 1 for n in names},
    )
    inputs = {n: [str(clean_paths[n]), content_fingerprint(clean_paths[n])] for n in names}
    marker = root / "_partitions.json"
    wanted = {"buckets": buckets, "inputs": inputs}
    if marker.exists() and read_json(marker) == wanted:
        marker.touch()  # in use: not removed as idle by another night's split
        return partitions  # same clean lake, same buckets: the split is still valid
    if root.exists():
        shutil.rmtree(root)
    for name in bucketed:
        _split_collection(name, str(clean_paths[name]), root, buckets)
    (root / "_scored").mkdir(parents=True, exist_ok=True)
    write_json(marker, wanted)  # written last: a half-written split is never reused
    remove_idle_splits(root, settings.scale.keep_idle_splits_hours)
    return partitions


def remove_idle_splits(root: Path, idle_hours: float) -> None:
    """Remove the splits of nights before `root`'s that no run has used for `idle_hours`
    (derived copies of past nights: disk, not history)."""
    now = time.time()
    for older in root.parent.glob("dt=*"):
        if older.name >= root.name:
            continue
        marker = older / "_partitions.json"
        last_used = marker.stat().st_mtime if marker.exists() else older.stat().st_mtime
        if now - last_used >= idle_hours * 3600:
            shutil.rmtree(older, ignore_errors=True)
