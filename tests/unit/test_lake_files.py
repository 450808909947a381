"""The lake's one writer and its snapshot merge, on local files (no Mongo, no Prefect)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bbx import lake
from bbx.lake.files import file_sha256, parquet_writer, write_parquet
from bbx.lake.snapshots import write_raw

PLANS = lake.TABLES["plans"]
USERS = lake.TABLES["users"]
T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _users(ids: list[str], nps: float, created: dt.datetime = T0) -> pa.Table:
    schema = lake.lake_schema(USERS)
    columns = {f.name: pa.nulls(len(ids), f.type) for f in schema}
    columns["user_id"] = pa.array(ids)
    columns["nps_score"] = pa.array([nps] * len(ids))
    columns["created_at"] = pa.array([created] * len(ids), type=lake.TS)
    return pa.Table.from_pydict(columns, schema=schema)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "clean" / "part-0.parquet"
    write_parquet(pa.table({"x": [1, 2]}), path)
    before = file_sha256(path)
    with pytest.raises(RuntimeError), parquet_writer(path, pa.schema([("x", pa.int64())])) as w:
        w.write_table(pa.table({"x": [3]}))
        raise RuntimeError("stopped mid-write")
    assert file_sha256(path) == before
    assert [p.name for p in path.parent.iterdir()] == ["part-0.parquet"]
    assert file_sha256(tmp_path / "missing.parquet") is None


def test_an_empty_extract_still_writes_the_table_schema(tmp_path: Path) -> None:
    path = tmp_path / "raw.parquet"
    assert write_raw(path, PLANS, []) == (0, 0)
    assert pq.read_schema(path).equals(lake.lake_schema(PLANS))


def test_a_merged_snapshot_keeps_unchanged_rows_and_the_newest_copy(tmp_path: Path) -> None:
    previous = tmp_path / "previous.parquet"
    write_parquet(pa.concat_tables([_users(["a", "b", "c"], 5.0),
                                    _users(["late"], 5.0, T0 + dt.timedelta(days=3))]),
                  previous)
    changed = [_users(["b"], 7.0), _users(["d", "b"], 9.0)]  # b re-read twice mid-scan
    path = tmp_path / "merged.parquet"
    window = (T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=10))
    written, kept = write_raw(path, USERS, changed, merge_onto=previous, not_created=window,
                              batch_rows=2)
    merged = pq.read_table(path)
    # Kept: a and c (not re-read); "late" was created after the as-of: left out.
    assert (written, kept) == (2, 2)
    assert dict(zip(merged.column("user_id").to_pylist(),
                    merged.column("nps_score").to_pylist(), strict=True)) == \
        {"a": 5.0, "c": 5.0, "d": 9.0, "b": 9.0}
