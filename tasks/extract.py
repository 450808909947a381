"""Extract: one app collection → one raw Parquet file in the lake.

Only the fields declared in `bbx.lake` are projected (so no PII leaves MongoDB),
with an explicit Arrow schema. A value of the wrong BSON type becomes null here
(`allow_invalid`) and is caught as a missing required value by validation,
which quarantines the row with its reason rather than crashing the run.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import task
from pymongo.errors import PyMongoError

from bbx import lake
from bbx.mongo import MongoUnavailableError, connect, redact
from bbx.settings import Settings

with warnings.catch_warnings():
    # pymongoarrow's wheel was built against a newer pyarrow header; harmless.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pymongoarrow.api import Schema, find_arrow_all
    from pymongoarrow.types import ObjectIdType

_HEX_PAIRS = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


@dataclass(frozen=True)
class ExtractResult:
    collection: str
    rows: int
    path: str
    seconds: float


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
    return pa.Table.from_arrays(arrays, names=spec.column_names)


def write_parquet_atomically(table: pa.Table, path: Path) -> None:
    """Write next to the target and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def extract_collection(
    uri: str, settings: Settings, collection: str, as_of: dt.date
) -> ExtractResult:
    spec = lake.TABLES[collection]
    started = time.perf_counter()
    client = connect(uri, settings)
    try:
        source = client[settings.mongo.database][collection]
        projection = {c.source: 1 for c in spec.columns} | ({"_id": 1})
        raw = find_arrow_all(
            source,
            spec.query,
            schema=mongo_schema(spec),
            projection=projection,
            allow_invalid=True,
        )
    except PyMongoError as exc:
        raise MongoUnavailableError(
            f"extract of '{collection}' from {redact(uri)} failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        client.close()
    table = to_lake_table(raw, spec)
    path = lake.raw_path(settings.lake_dir, collection, as_of)
    write_parquet_atomically(table, path)
    return ExtractResult(collection, table.num_rows, str(path), time.perf_counter() - started)


@task(name="extract", task_run_name="extract-{collection}")  # retries: set by the flow
def extract_collection_task(
    uri: str, settings: Settings, collection: str, as_of: dt.date
) -> ExtractResult:
    return extract_collection(uri, settings, collection, as_of)


@task(name="write-manifest")
def write_manifest_task(settings: Settings, as_of: dt.date, results: list[ExtractResult]) -> str:
    """Per-run record of what was extracted: counts, schema fingerprint, durations."""
    path = lake.manifest_path(settings.lake_dir, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    for result in results:
        schema = pq.read_schema(result.path)
        entries.append(asdict(result) | {"schema": schema.to_string(show_schema_metadata=False)})
    manifest = {
        "as_of": as_of.isoformat(),
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "tables": entries,
    }
    path.write_text(json.dumps(manifest, indent=2))
    return str(path)
