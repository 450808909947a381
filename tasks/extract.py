"""Extract: app collections → the raw lake, incrementally where the data allows.

Only the fields declared in `bbx.lake` are projected (so no PII leaves MongoDB),
with an explicit Arrow schema. A value of the wrong BSON type becomes null here
(`allow_invalid`) and is caught as a missing required value by validation,
which quarantines the row with its reason rather than crashing the run.

Two modes, chosen per collection from `bbx.lake`:

- snapshot (users, subscriptions, plans: small and mutable): the lake file is always
  the whole collection. Plans are read in full every run. Users and subscriptions
  (whose `updatedAt` the app's Mongoose timestamps stamp on every change) are read in
  full on the first run and whenever the last full read is
  `extract.full_refresh_days` old, the previous snapshot is missing or
  unreadable, or the schema changed; in between, only the documents whose
  `updatedAt` is after the previous snapshot's watermark minus `extract.overlap_hours`
  are read and merged onto the previous validated run's snapshot by key (the copy
  read now wins). Deleted documents leave at the next full read;
- incremental (append-only collections with a time field): the events since the
  previous validated run's watermark minus `extract.overlap_hours` (late arrivals),
  up to the end of the as-of day. The first run, or one whose last full extract is
  `extract.full_refresh_days` old, reads the collection in full. Events after the
  end of today (wall clock) are always read: they are impossible and validation
  quarantines them; events between the as-of day and today belong to later runs
  (so a backfill sees the lake as it was).

Documents are streamed cursor batch by cursor batch into the lake's raw partition
(bbx.lake.snapshots.write_raw), so memory is one batch, not the collection. Rerunning
an as-of rewrites its file from the same previous watermark: idempotent. The
watermark only advances when the gate validated the run, so a stopped run is re-read
next time.

Reads use the process's one client per URI (bbx.mongo.mongo_client). A server that
does not answer is retried by Prefect (`extract_task`: `extract.retries`, doubling
from `extract.retry_backoff_seconds`); a refused login or query is not.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from prefect import Task, task
from prefect.cache_policies import NONE
from prefect.runtime import task_run as current_task_run
from prefect.tasks import exponential_backoff
from pymongo.errors import ConnectionFailure, PyMongoError

from bbx import lake
from bbx.lake.manifests import (
    FULL,
    INCREMENTAL,
    SNAPSHOT,
    manifest_entry,
    previous_validated_manifest,
)
from bbx.lake.manifests import write_manifest as record_manifest
from bbx.lake.snapshots import snapshot_base, write_raw
from bbx.mongo import (
    MongoUnavailableError,
    MongoUnreachableError,
    discard_client,
    is_transient,
    mongo_client,
    redact,
)
from bbx.settings import Settings
from tasks.lake_source import ensure_lake_source

with warnings.catch_warnings():
    # pymongoarrow's wheel was built against a newer pyarrow header; harmless.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pymongoarrow.api import Schema, find_arrow_all  # noqa: F401  (re-exported for bench)
    from pymongoarrow.context import PyMongoArrowContext
    from pymongoarrow.types import ObjectIdType

_HEX_PAIRS = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")

__all__ = ["FULL", "INCREMENTAL", "SNAPSHOT", "ExtractResult", "extract_collection",
           "extract_task", "write_manifest"]
# A past as-of's snapshot leaves out documents created after it (the app's createdAt).
CREATED_SOURCE = "createdAt"


@dataclass(frozen=True)
class ExtractResult:
    collection: str
    rows: int
    path: str
    seconds: float
    mode: str = SNAPSHOT  # snapshot | full | incremental
    since: str | None = None  # incremental: lower bound of the event time read (ISO)
    watermark: str | None = None  # newest event time not after the as-of day (ISO)
    new_rows: int = 0  # rows newer than the previous watermark (the overlap excluded)
    base_as_of: str | None = None  # as-of of the full extract this history starts from
    schema_fingerprint: str = ""
    batches: int = 0
    max_batch_rows: int = 0  # the memory bound actually seen
    # Snapshots refreshed by updatedAt: the previous snapshot file merged onto (rows =
    # the whole snapshot, new_rows = documents re-read); None = read in full.
    merged_onto: str | None = None


@dataclass(frozen=True)
class Query:
    """One server read: `filter`, then `residual` applied by the server after it.

    The time condition goes alone in `filter` because SecantusDB's planner uses a
    single-field index only for a filter on that field alone ({action, timestamp}
    scanned every auditlog although timestamp was indexed); a residual makes the read
    an aggregate of two $match stages, which mongod coalesces and plans as one.
    """

    filter: dict[str, Any]
    residual: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtractPlan:
    mode: str
    queries: list[Query]
    since: dt.datetime | None
    previous_watermark: dt.datetime | None
    base_as_of: dt.date
    merge_onto: Path | None = None  # incremental snapshot: the previous snapshot file
    # Past as-of snapshot: rows created in [start, end) are left out of the merge too.
    not_created: tuple[dt.datetime, dt.datetime] | None = None


# ---------------------------------------------------------------- schema + conversion


def _arrow_type(column: lake.Column) -> pa.DataType:
    return ObjectIdType() if column.type == lake.OBJECT_ID else column.type


def mongo_schema(spec: lake.TableSpec) -> Schema:
    """Nest the dotted source paths into the struct schema pymongoarrow expects."""
    tree: dict[str, Any] = {}
    for column in spec.columns:
        *parents, leaf = column.source.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = _arrow_type(column)

    def to_type(node: dict[str, Any]) -> dict[str, Any]:
        return {
            k: pa.struct(list(to_type(v).items())) if isinstance(v, dict) else v
            for k, v in node.items()
        }

    return Schema(to_type(tree))


def object_ids_to_hex(array: pa.Array) -> pa.Array:
    """ObjectId (12 bytes) → 24-char hex text, vectorised (no per-row Python)."""
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    n = len(storage)
    if n == 0:
        return pa.array([], type=pa.string())
    start = storage.offset * 12
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8)[start : start + n * 12]
    hex_text = np.ascontiguousarray(_HEX_PAIRS[raw.reshape(n, 12)]).view("S24").ravel()
    mask = np.asarray(storage.is_null()) if storage.null_count else None
    return pa.array(hex_text, type=pa.binary(24), mask=mask).cast(pa.string())


def to_lake_table(raw: pa.Table, spec: lake.TableSpec) -> pa.Table:
    """Flatten nested structs, rename to business names, normalise units and ids."""
    while any(pa.types.is_struct(f.type) for f in raw.schema):
        raw = raw.flatten()
    arrays: list[pa.Array] = []
    for column in spec.columns:
        if column.source in raw.column_names:
            values = raw.column(column.source).combine_chunks()
        else:  # no document in this batch carried the field at all
            values = pa.nulls(raw.num_rows, type=_arrow_type(column))
        if column.type == lake.OBJECT_ID:
            values = object_ids_to_hex(values)
        elif column.scale is not None:
            values = pc.multiply(values.cast(pa.float64()), column.scale)
        arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=lake.lake_schema(spec))


# ---------------------------------------------------------------- plans


def day_end(day: dt.date) -> dt.datetime:
    """First instant after `day` (UTC)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)


def _within(spec: lake.TableSpec, condition: dict[str, Any] | None) -> dict[str, Any]:
    if not condition:
        return spec.query
    return {"$and": [spec.query, condition]} if spec.query else condition


def _plan_snapshot(
    spec: lake.TableSpec,
    previous: dict[str, Any] | None,
    as_of: dt.date,
    settings: Settings,
    today: dt.date,
) -> ExtractPlan:
    as_of_end, wall_end = day_end(as_of), day_end(today)
    not_yet, window = None, None
    if as_of_end < wall_end:
        # A past as-of (backfill, evaluation): what was created after it did not exist yet.
        window = (as_of_end, wall_end)
        not_yet = {"$nor": [{CREATED_SOURCE: {"$gte": as_of_end, "$lt": wall_end}}]}
    base = snapshot_base(spec, previous, as_of, settings.lake_dir,
                         settings.extract.full_refresh_days)
    if base is None:
        return ExtractPlan(SNAPSHOT, [Query(_within(spec, not_yet))], None, None, as_of)
    since = base.watermark - dt.timedelta(hours=settings.extract.overlap_hours)
    updated = spec.updated_source
    assert updated is not None
    return ExtractPlan(
        SNAPSHOT,
        [Query({updated: {"$gte": since}}, _within(spec, not_yet))],
        since,
        base.watermark,
        base.base_as_of,
        merge_onto=base.path,
        not_created=window,
    )


def plan_extract(
    spec: lake.TableSpec,
    previous: dict[str, Any] | None,
    as_of: dt.date,
    settings: Settings,
    today: dt.date,
) -> ExtractPlan:
    """What to read for one collection: a snapshot, a full read or an increment."""
    if not spec.incremental:
        return _plan_snapshot(spec, previous, as_of, settings, today)
    field_ = spec.time_source
    assert field_ is not None
    as_of_end, wall_end = day_end(as_of), day_end(today)
    entry = manifest_entry(previous, spec.collection)
    watermark = (
        dt.datetime.fromisoformat(entry["watermark"]) if entry and entry.get("watermark") else None
    )
    base = dt.date.fromisoformat(entry["base_as_of"]) if entry and entry.get("base_as_of") else None
    refresh = settings.extract.full_refresh_days
    stale_base = base is None or (refresh > 0 and (as_of - base).days >= refresh)
    if watermark is None or stale_base or not entry.get("history"):
        if as_of_end >= wall_end:
            return ExtractPlan(FULL, [Query(spec.query)], None, None, as_of)
        # Everything except what happened after the as-of day but is not in the future yet.
        skip_later = {"$nor": [{field_: {"$gte": as_of_end, "$lt": wall_end}}]}
        return ExtractPlan(FULL, [Query(_within(spec, skip_later))], None, None, as_of)
    since = watermark - dt.timedelta(hours=settings.extract.overlap_hours)
    if as_of_end >= wall_end:
        queries = [Query({field_: {"$gte": since}}, spec.query)]
    else:
        queries = [
            Query({field_: {"$gte": since, "$lt": as_of_end}}, spec.query),
            Query({field_: {"$gte": wall_end}}, spec.query),  # impossible events: to quarantine
        ]
    assert base is not None
    return ExtractPlan(INCREMENTAL, queries, since, watermark, base)


# ---------------------------------------------------------------- streaming read


def stream_batches(
    source: Any, spec: lake.TableSpec, query: Query, batch_rows: int
) -> Iterator[pa.Table]:
    """One lake-shaped Arrow table per cursor batch (pymongoarrow's batch-level API)."""
    schema = mongo_schema(spec)
    projection = {c.source: 1 for c in spec.columns} | {"_id": 1}
    if query.residual:
        pipeline = [{"$match": query.filter}, {"$match": query.residual},
                    {"$project": projection}]
        cursor = source.aggregate_raw_batches(pipeline, batchSize=batch_rows)
    else:
        cursor = source.find_raw_batches(query.filter, projection=projection,
                                         batch_size=batch_rows)
    try:
        for raw in cursor:
            context = PyMongoArrowContext(
                schema, codec_options=source.codec_options, allow_invalid=True
            )
            context.process_bson_stream(raw)
            yield to_lake_table(context.finish(), spec)
    finally:
        cursor.close()


@dataclass
class _Tally:
    rows: int = 0
    new_rows: int = 0
    batches: int = 0
    max_batch_rows: int = 0
    watermark: dt.datetime | None = None

    def add(self, batch: pa.Table, spec: lake.TableSpec, cap: dt.datetime,
            previous: dt.datetime | None) -> None:
        self.rows += batch.num_rows
        self.batches += 1
        self.max_batch_rows = max(self.max_batch_rows, batch.num_rows)
        clock = spec.time_column or spec.updated_column
        if clock is None or batch.num_rows == 0:
            self.new_rows += batch.num_rows
            return
        times = batch.column(clock)
        # Impossible (future) times must not move the watermark past the as-of day; for a
        # past as-of snapshot the cap also keeps the next increment reaching back to the
        # documents created after the as-of that this one left out.
        newest = pc.max(pc.filter(times, pc.less(times, pa.scalar(cap, times.type)))).as_py()
        if newest is not None and (self.watermark is None or newest > self.watermark):
            self.watermark = newest
        if previous is None or spec.time_column is None:
            self.new_rows += batch.num_rows
        else:
            self.new_rows += pc.sum(pc.greater(times, pa.scalar(previous, times.type))).as_py() or 0

    def counted(self, batches: Iterable[pa.Table], spec: lake.TableSpec, cap: dt.datetime,
                previous: dt.datetime | None) -> Iterator[pa.Table]:
        for batch in batches:
            self.add(batch, spec, cap, previous)
            yield batch


def _read_into(path: Path, source: Any, spec: lake.TableSpec, plan: ExtractPlan,
               batch_rows: int, as_of: dt.date) -> tuple[_Tally, int]:
    """Stream every query of the plan into the raw partition; returns the tally of what
    was read and the rows kept from the previous snapshot."""
    tally = _Tally()
    read = (batch for query in plan.queries
            for batch in stream_batches(source, spec, query, batch_rows))
    written, kept = write_raw(path, spec,
                              tally.counted(read, spec, day_end(as_of), plan.previous_watermark),
                              plan.merge_onto, plan.not_created, batch_rows)
    tally.rows = written  # a merged snapshot: the newest copy of each document re-read
    return tally, kept


def _scrub(message: str, uri: str) -> str:
    """Remove the URI's credentials from a driver message, should it echo them."""
    parts = urlsplit(uri)
    for secret in (parts.password, parts.username):
        if secret:
            message = message.replace(secret, "***")
    return message


def extract_collection(
    uri: str,
    settings: Settings,
    collection: str,
    as_of: dt.date,
    today: dt.date | None = None,
) -> ExtractResult:
    """Extract one collection for `as_of` (one attempt; `extract_task` retries it)."""
    spec = lake.TABLES[collection]
    started = time.perf_counter()
    today = today or dt.datetime.now(dt.UTC).date()
    previous = previous_validated_manifest(settings.lake_dir, as_of)
    plan = plan_extract(spec, previous, as_of, settings, today)
    path = lake.raw_path(settings.lake_dir, collection, as_of)
    attempt = max(current_task_run.get_run_count(), 1)
    try:
        client = mongo_client(uri, settings)
        # One home, one database; a dry run leaves no marker in the app's database.
        ensure_lake_source(client, uri, settings, may_write=not settings.dry_run_id)
        source = client[settings.mongo.database][collection]
        try:
            tally, kept = _read_into(path, source, spec, plan, settings.extract.batch_rows, as_of)
        except (OSError, pa.ArrowException):
            if plan.merge_onto is None:
                raise
            # The previous snapshot's footer read but its data did not: read in full.
            plan = _plan_snapshot(spec, None, as_of, settings, today)
            tally, kept = _read_into(path, source, spec, plan, settings.extract.batch_rows, as_of)
    except (ConnectionFailure, MongoUnreachableError) as exc:
        discard_client(uri, settings)
        raise MongoUnreachableError(
            f"extract of '{collection}' from {redact(uri)} failed after {attempt} "
            f"attempt(s): {type(exc).__name__}: {_scrub(str(exc), uri)}"
        ) from None
    except (PyMongoError, MongoUnavailableError) as exc:  # refused, not unreachable
        raise MongoUnavailableError(
            f"extract of '{collection}' from {redact(uri)} failed: "
            f"{type(exc).__name__}: {_scrub(str(exc), uri)}"
        ) from None
    # Never moves backwards (a quiet night reads only the overlap, older than the mark).
    known = [w for w in (tally.watermark, plan.previous_watermark) if w is not None]
    watermark = max(known) if known else None
    return ExtractResult(
        collection=collection,
        rows=tally.rows + kept,
        path=str(path),
        seconds=time.perf_counter() - started,
        mode=plan.mode,
        since=plan.since.isoformat() if plan.since else None,
        watermark=watermark.isoformat() if watermark else None,
        new_rows=tally.new_rows,
        base_as_of=plan.base_as_of.isoformat(),
        schema_fingerprint=lake.schema_fingerprint(lake.lake_schema(spec)),
        batches=tally.batches,
        max_batch_rows=tally.max_batch_rows,
        merged_onto=str(plan.merge_onto) if plan.merge_onto else None,
    )


def _retry_if_unreachable(task: Task, task_run: Any, state: Any) -> bool:
    """Retry only a server that did not answer; a refused login or query fails at once."""
    try:
        state.result()
    except Exception as exc:  # the task's own error, re-raised by the failed state
        return is_transient(exc)
    return False


@task(name="extract", task_run_name="extract-{collection}", cache_policy=NONE,
      retry_condition_fn=_retry_if_unreachable)
def extract_collection_task(
    uri: str, settings: Settings, collection: str, as_of: dt.date
) -> ExtractResult:
    return extract_collection(uri, settings, collection, as_of)


def extract_task(settings: Settings) -> Task:
    """The extract step with the settings' retries: `extract.retries`, waiting
    `extract.retry_backoff_seconds` and doubling each time."""
    return extract_collection_task.with_options(
        retries=settings.extract.retries,
        retry_delay_seconds=exponential_backoff(settings.extract.retry_backoff_seconds),
    )


def write_manifest(settings: Settings, as_of: dt.date, results: list[ExtractResult]) -> Path:
    """Record the night's extract in the lake (bbx.lake.manifests)."""
    return record_manifest(settings.lake_dir, as_of, [asdict(r) for r in results])


@task(name="write-manifest", cache_policy=NONE)
def write_manifest_task(settings: Settings, as_of: dt.date, results: list[ExtractResult]) -> str:
    return str(write_manifest(settings, as_of, results))
