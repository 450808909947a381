"""The clean tables are Delta Lake tables: a rerun replaces its night only, a backfill
reads the version recorded for it, a Parquet-parts lake keeps working, a dry run never
writes the live table, and people can read the tables with pandas or DuckDB."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable

from bbx import lake
from bbx.lake.files import write_json, write_parquet
from bbx.lake.history import read_table, table_parts, write_table_version
from bbx.lake.manifests import FULL, INCREMENTAL, seed_from

USAGE = "usagelogs"
DAY1, DAY2, DAY3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)


def sessions(ids: list[int], download_gb: float, day: dt.date) -> pa.Table:
    """Usage sessions with the lake's usagelogs schema."""
    schema = lake.lake_schema(lake.TABLES[USAGE])
    n = len(ids)
    when = dt.datetime.combine(day, dt.time(9, 30, 15, 123000), tzinfo=dt.UTC)
    columns = {
        "session_id": [f"{i:024x}" for i in ids], "user_id": [f"{i % 3:024x}" for i in ids],
        "timestamp": [when] * n, "download_gb": [download_gb] * n, "upload_gb": [0.1] * n,
        "download_mbps": [90.0] * n, "upload_mbps": [9.0] * n, "latency_ms": [12.0] * n,
        "packet_loss_pct": [0.0] * n, "session_minutes": [30.0] * n,
        "device_type": ["Mobile"] * n,
    }
    return pa.table(columns, schema=schema)


def validate_night(lake_dir: Path, day: dt.date, rows: pa.Table, mode: str = INCREMENTAL,
                   collection: str = USAGE) -> dict:
    """What the gate does for one table: stage the validated rows, commit, mark validated."""
    staged = lake.staged_path(lake_dir, collection, day)
    write_parquet(rows, staged)
    previous = None
    for earlier in sorted(lake.manifests_dir(lake_dir).glob("*.json"), reverse=True):
        if earlier.stem < day.isoformat():
            previous = json.loads(earlier.read_text())
            break
    entry = {"collection": collection, "mode": mode, "rows": rows.num_rows}
    write_table_version(lake_dir, collection, day, entry, previous, staged)
    manifest = {"as_of": day.isoformat(), "validated": True, "tables": [entry]}
    write_json(lake.manifest_path(lake_dir, day), manifest)
    return manifest


def history(lake_dir: Path, day: dt.date) -> pd.DataFrame:
    return read_table(USAGE, lake.table_version_path(lake_dir, USAGE, day))


def recorded(lake_dir: Path, day: dt.date) -> dict:
    return json.loads(lake.table_version_path(lake_dir, USAGE, day).read_text())


def test_a_night_is_committed_as_a_partition_and_read_with_the_lakes_types(
        tmp_path: Path) -> None:
    rows = sessions([1, 2, 3], 1.5, DAY1)
    validate_night(tmp_path, DAY1, rows, mode=FULL)
    table = DeltaTable(str(lake.clean_table_path(tmp_path, USAGE)))
    assert table.metadata().partition_columns == ["dt"]
    # Recorded versions stay readable: the log is never cleaned up behind a backfill.
    assert table.metadata().configuration["delta.enableExpiredLogCleanup"] == "false"
    assert not lake.staged_path(tmp_path, USAGE, DAY1).exists()  # staged rows committed
    frame = history(tmp_path, DAY1)
    assert list(frame.columns) == lake.TABLES[USAGE].column_names  # no dt column
    expected = rows.to_pandas()
    assert str(frame["timestamp"].dtype) == str(expected["timestamp"].dtype)  # ms, as today
    pd.testing.assert_frame_equal(frame, expected)


def test_a_rerun_replaces_its_night_only_and_an_identical_rerun_writes_nothing(
        tmp_path: Path) -> None:
    validate_night(tmp_path, DAY1, sessions([1, 2], 1.0, DAY1), mode=FULL)
    validate_night(tmp_path, DAY2, sessions([2, 3], 2.0, DAY2))
    table = lake.clean_table_path(tmp_path, USAGE)
    before = DeltaTable(str(table)).version()
    version_file = recorded(tmp_path, DAY2)

    validate_night(tmp_path, DAY2, sessions([2, 3], 2.0, DAY2))  # same rows again
    assert DeltaTable(str(table)).version() == before
    assert recorded(tmp_path, DAY2) == version_file

    validate_night(tmp_path, DAY2, sessions([2, 3, 4], 5.0, DAY2))  # a late arrival
    now = DeltaTable(str(table))
    assert now.version() == before + 1
    nights = now.to_pandas().groupby("dt")["session_id"].apply(sorted).to_dict()
    assert nights == {DAY1.isoformat(): [f"{1:024x}", f"{2:024x}"],
                      DAY2.isoformat(): [f"{i:024x}" for i in (2, 3, 4)]}
    frame = history(tmp_path, DAY2)
    assert frame["session_id"].is_unique and len(frame) == 4  # overlap kept once, newest
    assert frame.set_index("session_id").loc[f"{2:024x}", "download_gb"] == 5.0


def test_a_backfill_reads_the_version_recorded_for_its_night(tmp_path: Path) -> None:
    validate_night(tmp_path, DAY1, sessions([1, 2], 1.0, DAY1), mode=FULL)
    validate_night(tmp_path, DAY2, sessions([3], 2.0, DAY2))
    night2 = history(tmp_path, DAY2)
    version2 = recorded(tmp_path, DAY2)["history"][0]["version"]

    # Night 1 is rerun with other rows afterwards: night 2's history still reads the
    # night 1 it was validated with; night 1's own history reads the new rows.
    validate_night(tmp_path, DAY1, sessions([1, 2, 9], 7.0, DAY1), mode=FULL)
    pd.testing.assert_frame_equal(history(tmp_path, DAY2), night2)
    assert set(history(tmp_path, DAY1)["download_gb"]) == {7.0}
    assert all(p.exists() for p in table_parts(lake.table_version_path(tmp_path, USAGE, DAY2)))

    # The same as Delta's own time travel at the recorded version.
    table = lake.clean_table_path(tmp_path, USAGE)
    travelled = DeltaTable(str(table), version=version2).to_pandas()
    assert sorted(travelled["session_id"]) == sorted(night2["session_id"])
    latest = DeltaTable(str(table)).to_pandas()
    assert sorted(latest["session_id"]) != sorted(night2["session_id"])


def test_a_night_with_no_rows_commits_an_empty_partition(tmp_path: Path) -> None:
    validate_night(tmp_path, DAY1, sessions([1], 1.0, DAY1), mode=FULL)
    validate_night(tmp_path, DAY2, sessions([], 1.0, DAY2))
    assert list(history(tmp_path, DAY2)["session_id"]) == [f"{1:024x}"]
    validate_night(tmp_path, DAY3, sessions([], 1.0, DAY3), mode=FULL)
    empty = history(tmp_path, DAY3)
    assert empty.empty and list(empty.columns) == lake.TABLES[USAGE].column_names


def test_a_lake_of_parquet_parts_is_read_in_place_then_continued_as_a_delta_table(
        tmp_path: Path) -> None:
    """A lake written before the clean tables were Delta tables: its parts and version
    files stay as they are; the first night after the upgrade reads them and adds its own."""
    old = {DAY1: sessions([1, 2], 1.0, DAY1), DAY2: sessions([2, 3], 2.0, DAY2)}
    parts = []
    for day, rows in old.items():
        part = tmp_path / "clean" / USAGE / lake.partition(day) / "part-0.parquet"
        write_parquet(rows, part)
        parts.append(lake.to_record(tmp_path, part))
        write_json(lake.table_version_path(tmp_path, USAGE, day),
                   {"collection": USAGE, "as_of": day.isoformat(), "parts": list(parts)})
        write_json(lake.manifest_path(tmp_path, day), {
            "as_of": day.isoformat(), "validated": True,
            "tables": [{"collection": USAGE, "mode": INCREMENTAL, "history": list(parts),
                        "fingerprints": {}}]})
    before_upgrade = history(tmp_path, DAY2)

    validate_night(tmp_path, DAY3, sessions([3, 4], 3.0, DAY3))
    segments = recorded(tmp_path, DAY3)["history"]
    assert segments[0]["parts"] == parts and segments[1]["nights"] == [DAY3.isoformat()]
    frame = history(tmp_path, DAY3)
    assert list(frame["session_id"]) == [f"{i:024x}" for i in (1, 2, 3, 4)]
    assert frame.set_index("session_id")["download_gb"].to_dict() == {
        f"{1:024x}": 1.0, f"{2:024x}": 2.0, f"{3:024x}": 3.0, f"{4:024x}": 3.0}
    # The old nights' version files read as they did (a backfill of them still works).
    pd.testing.assert_frame_equal(history(tmp_path, DAY2), before_upgrade)
    assert all(p.exists() for p in table_parts(lake.table_version_path(tmp_path, USAGE, DAY2)))


def test_a_dry_run_reads_the_live_table_and_never_writes_it(tmp_path: Path) -> None:
    live, dry = tmp_path / "live", tmp_path / "dry"
    validate_night(live, DAY1, sessions([1, 2], 1.0, DAY1), mode=FULL)
    validate_night(live, DAY2, sessions([3], 2.0, DAY2))
    live_table = lake.clean_table_path(live, USAGE)
    live_version = DeltaTable(str(live_table)).version()

    seed_from(live, dry, DAY3)
    validate_night(dry, DAY3, sessions([3, 4], 3.0, DAY3))
    assert DeltaTable(str(live_table)).version() == live_version
    segments = recorded(dry, DAY3)["history"]
    assert Path(segments[0]["table"]) == live_table and segments[0]["version"] == live_version
    assert segments[1]["table"] == f"clean/{USAGE}"
    assert sorted(history(dry, DAY3)["session_id"]) == [f"{i:024x}" for i in (1, 2, 3, 4)]


def test_people_read_a_clean_table_with_pandas_or_duckdb(tmp_path: Path) -> None:
    validate_night(tmp_path, DAY1, sessions([1, 2], 1.0, DAY1), mode=FULL)
    validate_night(tmp_path, DAY2, sessions([3], 2.0, DAY2))
    table = DeltaTable(str(lake.clean_table_path(tmp_path, USAGE)))
    frame = table.to_pandas(filters=[("dt", "<=", DAY2.isoformat())])
    assert sorted(frame["session_id"]) == [f"{i:024x}" for i in (1, 2, 3)]

    import duckdb

    usage = table.to_pyarrow_dataset()  # noqa: F841 - DuckDB reads the Python variable
    counts = duckdb.sql(
        "SELECT dt, count(*) AS sessions FROM usage GROUP BY dt ORDER BY dt").fetchall()
    assert counts == [(DAY1.isoformat(), 2), (DAY2.isoformat(), 1)]


def test_a_night_keeps_the_order_it_was_validated_in(tmp_path: Path) -> None:
    """Read order decides which copy of a key is newest, and what the features see
    first: a night written from many row groups reads back in the same order."""
    import numpy as np
    import pyarrow.parquet as pq

    ids = [int(i) for i in np.random.default_rng(7).permutation(250_000)]
    rows = sessions(ids, 1.0, DAY1)
    staged = lake.staged_path(tmp_path, USAGE, DAY1)
    staged.parent.mkdir(parents=True)
    pq.write_table(rows, staged, row_group_size=20_000)
    write_table_version(tmp_path, USAGE, DAY1, {"collection": USAGE, "mode": FULL}, None, staged)
    assert list(history(tmp_path, DAY1)["session_id"]) == rows.column("session_id").to_pylist()


def test_a_part_with_finer_timestamps_reads_back_in_the_lakes_milliseconds() -> None:
    """A part written outside the extract (nanoseconds) is truncated to the lake's unit;
    any other type mismatch still has to cast exactly."""
    from bbx.lake.history import lake_types

    stamp = pd.Timestamp("2026-05-01 10:00:00.123456789", tz="UTC")
    part = pa.table({"timestamp": pa.array([stamp.value], pa.timestamp("ns", tz="UTC"))})
    read = lake_types(USAGE, part)
    assert read.schema.field("timestamp").type == lake.TS
    assert read.column("timestamp")[0].as_py() == stamp.floor("ms").to_pydatetime()
