"""Which raw rows are quarantined and why, and when a table's volume is worth a warning."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from features.quarantine import (
    DUPLICATE_REASON,
    ORPHAN_REASON,
    TableVolume,
    drop_repeated_reads,
    identical_rows,
    orphan_rows,
    quarantine_line,
    quarantine_reasons,
    share_message,
    volume_warning,
)

T0 = dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)


def test_orphans_are_unknown_ids_and_a_missing_id_is_not_an_orphan() -> None:
    table = pa.table({"user_id": ["a", "x", None, "b", "x"]})
    assert orphan_rows(table, {"a", "b"}).tolist() == [1, 4]
    assert orphan_rows(table, {"a", "b", "x"}).tolist() == []


def test_a_document_read_twice_keeps_its_latest_copy_and_rows_without_a_key() -> None:
    table = pa.table({
        "user_id": ["u1", "u2", "u1", None, None],
        "updated_at": pa.array([T0 + dt.timedelta(hours=2), T0, T0, T0, T0],
                               type=pa.timestamp("ms", tz="UTC")),
        "nps_score": [9.0, 5.0, 3.0, 1.0, 2.0],
    })
    kept, dropped = drop_repeated_reads(table, "user_id", "updated_at")
    assert dropped == 1
    # u1's later copy (updated two hours later) wins although it was read first;
    # keyless rows stay for the suite's critical not-null check; read order is kept.
    assert kept.column("nps_score").to_pylist() == [9.0, 5.0, 1.0, 2.0]


def test_without_an_updated_column_the_last_copy_read_wins() -> None:
    table = pa.table({"session_id": ["s1", "s1", "s2"], "download_gb": [1.0, 2.0, 3.0]})
    kept, dropped = drop_repeated_reads(table, "session_id", None)
    assert (dropped, kept.column("download_gb").to_pylist()) == (1, [2.0, 3.0])


def test_unique_keys_are_left_alone() -> None:
    table = pa.table({"session_id": ["s1", "s2"]})
    kept, dropped = drop_repeated_reads(table, "session_id", None)
    assert kept is table and dropped == 0
    empty = table.slice(0, 0)
    assert drop_repeated_reads(empty, "session_id", None) == (empty, 0)


def test_identical_content_flags_every_copy_after_the_first() -> None:
    table = pa.table({"user_id": ["u", "u", "v", "u"], "download_gb": [1.0, 1.0, 1.0, 2.0]})
    assert identical_rows(table, ["user_id", "download_gb"]).tolist() == [1]
    assert identical_rows(table, ["user_id"]).tolist() == [1, 3]
    assert identical_rows(table, []).size == 0


def test_reasons_join_every_rule_a_row_broke() -> None:
    reasons = quarantine_reasons(4, {
        "rule_a": np.array([0, 2]),
        ORPHAN_REASON: np.array([2]),
        "empty": np.array([], dtype=np.int64),
    })
    assert reasons.tolist() == ["rule_a", "", f"rule_a; {ORPHAN_REASON}", ""]


def test_messages_name_counts_and_reasons() -> None:
    failures = {DUPLICATE_REASON: np.array([1, 2, 3]), ORPHAN_REASON: np.array([4])}
    message = share_message("usagelogs", 10, 4, failures, 0.05)
    assert message.startswith("usagelogs: 4 of 10 rows (40.0%) failed ")
    assert f"{DUPLICATE_REASON} (3), {ORPHAN_REASON} (1)" in message
    assert "above the 5.0% quarantine limit" in message
    assert share_message("users", 10, 1, {"x": np.array([0])}, 0.05).startswith(
        "users: 1 of 10 rows (10.0%) failed x —")

    line = quarantine_line("payments", 200, 3, {"a": 1, "b": 2}, repeated_reads=2)
    assert line == ("payments: 3 of 200 rows (1.50%) quarantined: b (2), a (1); "
                    "2 repeated reads of a document kept once")
    assert quarantine_line("plans", 5, 0, {}, 0) == "plans: 0 of 5 rows quarantined"


@pytest.mark.parametrize(
    ("now", "before", "days", "expected"),
    [
        # Snapshots compare rows.
        (TableVolume("snapshot", 1000, 10), TableVolume("snapshot", 990, 5), 1, None),
        (TableVolume("snapshot", 1500, 10), TableVolume("snapshot", 1000, 5), 1,
         "volume: rows 1500 vs 1000 in the previous run (+50%, tolerance ±20%)"),
        # Increments compare new rows per day, each over its own gap.
        (TableVolume("incremental", 0, 200), TableVolume("incremental", 0, 300, 3), 2, None),
        (TableVolume("incremental", 0, 20), TableVolume("incremental", 0, 100), 1,
         "volume: new rows per day 20 vs 100 in the previous run (-80%, tolerance ±20%)"),
        (TableVolume("incremental", 0, 5), TableVolume("incremental", 0, 0), 1,
         "volume: new rows per day 5, previous run had none"),
        (TableVolume("incremental", 0, 0), TableVolume("incremental", 0, 0), 1, None),
        # A full read is never compared with an increment; no gap, no comparison.
        (TableVolume("full", 9000, 9000), TableVolume("incremental", 0, 10), 1, None),
        (TableVolume("incremental", 0, 10), TableVolume("full", 9000, 9000), 1, None),
        (TableVolume("snapshot", 1500, 10), TableVolume("snapshot", 1000, 5), 0, None),
    ],
)
def test_volume_rule(now: TableVolume, before: TableVolume, days: int,
                     expected: str | None) -> None:
    assert volume_warning(now, before, days, tolerance=0.2) == expected
