"""Every write into the lake: one atomic Parquet writer, one atomic JSON writer.

A file is written beside its target under a unique temporary name and renamed over
it, so a reader (another night, a Dask worker, a person with DuckDB) sees the old
file or the new one, never half of one, and a stopped write leaves no stray output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"
_CHUNK = 1 << 20


def _temporary(path: Path) -> Path:
    # Unique per writer: two processes writing the same partition never share a temp file.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


@contextlib.contextmanager
def parquet_writer(path: str | Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """Stream tables into `path`; the file appears (atomically) only if the block ends
    without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with pq.ParquetWriter(tmp, schema, compression=COMPRESSION) as writer:
            yield writer
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: str | Path) -> None:
    """Write a whole table to `path`, atomically."""
    with parquet_writer(path, table.schema) as writer:
        writer.write_table(table)


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """A lake record (manifest, table version, source, bucket marker), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def remove_stale(paths: Iterable[str | Path]) -> None:
    """Remove what an earlier attempt at a partition left: it would be read as this run's."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file's bytes, or None if it is missing: content, not modification
    time (a rerun rewrites identical files)."""
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
