"""Raw partitions: an extract's batches streamed into one file, and snapshot merges.

A snapshot of users or subscriptions between full reads is the previous night's
snapshot with the documents re-read now merged onto it by key (the copy read now
wins): the previous file is streamed batch by batch, so memory holds the changed
documents and one batch, never the collection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bbx import lake
from bbx.lake.files import parquet_writer
from bbx.lake.manifests import SNAPSHOT, manifest_entry

# A past as-of's snapshot leaves out documents created after it (the app's createdAt).
CREATED_COLUMN = "created_at"


@dataclass(frozen=True)
class SnapshotBase:
    """The previous night's snapshot an incremental one is merged onto."""

    path: Path
    watermark: dt.datetime  # newest updated_at it holds
    base_as_of: dt.date  # the full read its history starts from


def snapshot_base(
    spec: lake.TableSpec, previous: dict[str, Any] | None, as_of: dt.date, lake_dir: Path,
    full_every_days: int,
) -> SnapshotBase | None:
    """The previous snapshot this night's can be merged onto, or None (read in full).

    `full_every_days` 0: no periodic full read."""
    entry = manifest_entry(previous, spec.collection) if spec.updated_column else None
    if entry is None or entry.get("mode") != SNAPSHOT or not entry.get("watermark"):
        return None
    if not entry.get("base_as_of"):
        return None
    base = dt.date.fromisoformat(entry["base_as_of"])
    if full_every_days > 0 and (as_of - base).days >= full_every_days:
        return None  # periodic full read: drops deleted documents, repairs what was missed
    schema = lake.lake_schema(spec)
    if entry.get("schema_fingerprint") != lake.schema_fingerprint(schema):
        return None
    assert previous is not None
    path = lake.raw_path(lake_dir, spec.collection, dt.date.fromisoformat(previous["as_of"]))
    try:
        if not pq.read_schema(path).equals(schema, check_metadata=False):
            return None
    except (OSError, pa.ArrowException):
        return None  # missing or unreadable: read in full
    return SnapshotBase(path, dt.datetime.fromisoformat(entry["watermark"]), base)


def last_copies(table: pa.Table, key: str) -> pa.Table:
    """One row per key, the last read (a document updated mid-read can come twice)."""
    if pc.count_distinct(table.column(key)).as_py() == table.num_rows:
        return table
    order = pa.array(np.arange(table.num_rows))
    last = (pa.table({"k": table.column(key), "i": order})
            .group_by("k").aggregate([("i", "max")]).column("i_max"))
    return table.take(np.sort(last.to_numpy()))  # in read order


def _keep_previous(
    writer: pq.ParquetWriter, previous_file: Path, changed: pa.Table, spec: lake.TableSpec,
    not_created: tuple[dt.datetime, dt.datetime] | None, batch_rows: int,
) -> int:
    """Write the previous snapshot's rows that were not re-read, batch by batch."""
    changed_keys = changed.column(spec.key).combine_chunks()
    kept = 0
    for record_batch in pq.ParquetFile(previous_file).iter_batches(batch_size=batch_rows):
        rows = pa.Table.from_batches([record_batch])
        keep = pc.invert(pc.is_in(rows.column(spec.key), value_set=changed_keys))
        if not_created is not None:
            created = rows.column(CREATED_COLUMN)
            start, end = (pa.scalar(t, created.type) for t in not_created)
            later = pc.and_(pc.greater_equal(created, start), pc.less(created, end))
            keep = pc.and_(keep, pc.invert(pc.fill_null(later, False)))
        rows = rows.filter(keep)
        writer.write_table(rows)
        kept += rows.num_rows
    return kept


def write_raw(
    path: Path, spec: lake.TableSpec, batches: Iterable[pa.Table],
    merge_onto: Path | None = None,
    not_created: tuple[dt.datetime, dt.datetime] | None = None,
    batch_rows: int = 50_000,
) -> tuple[int, int]:
    """Stream an extract's batches into the raw partition `path`, atomically.

    With `merge_onto`, the previous snapshot's rows that were not re-read (nor, with
    `not_created`, created in that window) are written first, then the newest copy of
    each document re-read. Returns (rows of `batches` written, rows kept from the
    previous snapshot).
    """
    schema = lake.lake_schema(spec)
    written = kept = 0
    with parquet_writer(path, schema) as writer:
        if merge_onto is None:
            for batch in batches:
                writer.write_table(batch)
                written += batch.num_rows
        else:
            latest = last_copies(pa.concat_tables([schema.empty_table(), *batches]), spec.key)
            kept = _keep_previous(writer, merge_onto, latest, spec, not_created, batch_rows)
            writer.write_table(latest)
            written = latest.num_rows
        if written + kept == 0:
            writer.write_table(schema.empty_table())
    return written, kept
