"""Delta Lake against the lake's Parquet files, for the writes the nightly extract does.

    python -m bench delta_vs_parquet [--customers=10000 --days=60 --sessions-per-day=1.5
                                      --changed-share=0.03 --nights=5 --repeats=3]

Needs `deltalake`, a dependency of the pipeline since the validated lake became Delta
tables; this bench measured the writes before the move.

The same synthetic, lake-shaped Arrow batches (the extract's cursor batch size,
`extract.batch_rows` = 50,000 rows) are written both ways, on local disk:

1. full: a usagelogs history of customers x days x sessions per day, streamed batch by
   batch into one raw partition (`bbx.lake.snapshots.write_raw`) vs one Delta
   `write_deltalake(mode="append")` of the same batches into a new table;
2. nightly increments: `--nights` days of new sessions, each a new partition file vs an
   append (a commit) to the Delta table; then reading the whole history back
   (the Parquet parts vs `DeltaTable.to_pyarrow_table()`);
3. users snapshot: `--changed-share` of the customers re-read (plus 0.5% new ones)
   merged onto the previous snapshot: our streamed merge into a new partition file vs
   Delta's `MERGE ... WHEN MATCHED UPDATE ALL WHEN NOT MATCHED INSERT ALL`; the two
   results are checked equal.

Each figure is the best of `--repeats`, as wall seconds and CPU seconds of this process
(Delta's writer is multi-threaded Rust, so both are shown).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BATCH_ROWS = 50_000
START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
SEED = 7


def _timed(work: Callable[[], object], repeats: int,
           reset: Callable[[], None] | None = None) -> tuple[float, float]:
    """Best wall and CPU seconds of `work` over `repeats` (reset before each)."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        if reset is not None:
            reset()
        cpu0, wall0 = os.times(), time.perf_counter()
        work()
        wall, cpu1 = time.perf_counter() - wall0, os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu


def _object_ids(rng, n: int) -> list[str]:
    return [f"{v:024x}" for v in rng.integers(0, 2**62, size=n, dtype="int64")]


def _sessions(rng, user_ids: list[str], rows: int, start: dt.datetime, days: float):
    """Usage sessions shaped as the lake's usagelogs table (bbx.lake.TABLES)."""
    import numpy as np
    import pyarrow as pa

    from bbx import lake

    schema = lake.lake_schema(lake.TABLES["usagelogs"])
    seconds = rng.uniform(0, days * 86_400, size=rows)
    timestamps = (np.datetime64(start.replace(tzinfo=None), "ms")
                  + (seconds * 1000).astype("timedelta64[ms]"))
    columns = {
        "session_id": pa.array(_object_ids(rng, rows)),
        "user_id": pa.array([user_ids[i] for i in rng.integers(0, len(user_ids), size=rows)]),
        "timestamp": pa.array(timestamps, type=lake.TS),
        "download_gb": rng.gamma(2.0, 0.4, size=rows),
        "upload_gb": rng.gamma(2.0, 0.05, size=rows),
        "download_mbps": rng.uniform(10, 500, size=rows),
        "upload_mbps": rng.uniform(5, 100, size=rows),
        "latency_ms": rng.uniform(5, 80, size=rows),
        "packet_loss_pct": rng.uniform(0, 2, size=rows),
        "session_minutes": rng.uniform(1, 180, size=rows),
        "device_type": pa.array(rng.choice(["mobile", "desktop", "tv", "tablet"], size=rows)),
    }
    return pa.Table.from_pydict(columns, schema=schema)


def _users(rng, user_ids: list[str], updated: dt.datetime):
    """Users shaped as the lake's users table."""
    import numpy as np
    import pyarrow as pa

    from bbx import lake

    schema = lake.lake_schema(lake.TABLES["users"])
    n = len(user_ids)
    stamp = pa.array([updated] * n, type=lake.TS)
    columns = {
        "user_id": pa.array(user_ids),
        "role": pa.array(["customer"] * n),
        "account_status": pa.array(rng.choice(["active", "inactive", "suspended"], size=n)),
        "last_login_at": stamp,
        "customer_since": pa.array([START - dt.timedelta(days=400)] * n, type=lake.TS),
        "created_at": pa.array([START - dt.timedelta(days=400)] * n, type=lake.TS),
        "updated_at": stamp,
        "nps_score": rng.integers(0, 11, size=n).astype(np.float64),
        "city": pa.array(rng.choice(["Pune", "Delhi", "Mumbai", "Chennai"], size=n)),
        "state": pa.array(rng.choice(["MH", "DL", "TN"], size=n)),
        "date_of_birth": pa.array([dt.datetime(1980, 1, 1, tzinfo=dt.UTC)] * n, type=lake.TS),
    }
    return pa.Table.from_pydict(columns, schema=schema)


def _batches(table, rows: int = BATCH_ROWS) -> Iterator:
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _line(what: str, parquet: tuple[float, float], delta: tuple[float, float]) -> str:
    ratio = delta[0] / parquet[0] if parquet[0] else float("nan")
    return (f"  {what:<34} parquet {parquet[0]:7.3f} s wall {parquet[1]:7.3f} s CPU | "
            f"delta {delta[0]:7.3f} s wall {delta[1]:7.3f} s CPU | delta/parquet wall "
            f"{ratio:5.2f}x ({ratio - 1:+.0%})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench delta_vs_parquet")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--sessions-per-day", type=float, default=1.5)
    parser.add_argument("--changed-share", type=float, default=0.03)
    parser.add_argument("--nights", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import deltalake
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, WriterProperties, write_deltalake

    from bbx import lake
    from bbx.lake.files import write_parquet
    from bbx.lake.snapshots import write_raw

    zstd = WriterProperties(compression="ZSTD")  # as the lake's files (bbx.lake.files)
    rng = np.random.default_rng(SEED)
    user_ids = _object_ids(rng, args.customers)
    usage = lake.TABLES["usagelogs"]
    users = lake.TABLES["users"]
    full_rows = int(args.customers * args.days * args.sessions_per_day)
    night_rows = int(args.customers * args.sessions_per_day)
    history = _sessions(rng, user_ids, full_rows, START, args.days)
    nights_data = [
        _sessions(rng, user_ids, night_rows, START + dt.timedelta(days=args.days + n), 1)
        for n in range(args.nights)
    ]
    print(f"deltalake {deltalake.__version__}, pyarrow {pa.__version__}; usagelogs "
          f"{full_rows:,} rows full + {args.nights} nights of {night_rows:,}; users "
          f"{args.customers:,}, {args.changed_share:.0%} re-read; batches of {BATCH_ROWS:,}",
          flush=True)

    with tempfile.TemporaryDirectory(prefix="bbx-bench-delta-") as tmp:
        root = Path(tmp)
        parquet_dir, delta_dir = root / "parquet", root / "delta"

        def reset() -> None:
            shutil.rmtree(parquet_dir, ignore_errors=True)
            shutil.rmtree(delta_dir, ignore_errors=True)

        # 1. The full extract of an append-only collection.
        def parquet_full() -> None:
            write_raw(parquet_dir / "usagelogs" / "dt=0" / "part-0.parquet", usage,
                      _batches(history))

        def delta_full() -> None:
            write_deltalake(delta_dir / "usagelogs", pa.RecordBatchReader.from_batches(
                history.schema, (b for t in _batches(history) for b in t.to_batches())),
                mode="append", writer_properties=zstd)

        full_p = _timed(parquet_full, args.repeats, reset)
        full_d = _timed(delta_full, args.repeats, reset)
        print(_line("full usagelogs extract", full_p, full_d), flush=True)

        # 2. Nightly increments on top of the full history, then the history read back.
        def parquet_nights() -> None:
            for n, night in enumerate(nights_data, start=1):
                write_raw(parquet_dir / "usagelogs" / f"dt={n}" / "part-0.parquet", usage,
                          _batches(night))

        def delta_nights() -> None:
            for night in nights_data:
                write_deltalake(delta_dir / "usagelogs", night, mode="append",
                                writer_properties=zstd)

        def prepared() -> None:
            reset()
            parquet_full()
            delta_full()

        nights_p = _timed(parquet_nights, args.repeats, prepared)
        nights_d = _timed(delta_nights, args.repeats, prepared)
        print(_line(f"{args.nights} nightly increments", nights_p, nights_d), flush=True)
        prepared()  # both histories complete before they are read back
        parquet_nights()
        delta_nights()
        parts = sorted((parquet_dir / "usagelogs").glob("dt=*/part-0.parquet"))
        read_p = _timed(lambda: pa.concat_tables([pq.read_table(p) for p in parts]),
                        args.repeats)
        read_d = _timed(lambda: DeltaTable(delta_dir / "usagelogs").to_pyarrow_table(),
                        args.repeats)
        print(_line("read the history back", read_p, read_d), flush=True)
        rows_d = DeltaTable(delta_dir / "usagelogs").to_pyarrow_table().num_rows
        rows_p = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        print(f"  history rows: parquet {rows_p:,}, delta {rows_d:,}; on disk parquet "
              f"{_size_mb(parquet_dir):.1f} MB, delta {_size_mb(delta_dir):.1f} MB "
              f"(version {DeltaTable(delta_dir / 'usagelogs').version()})", flush=True)

        # 3. The users snapshot merge.
        previous = _users(rng, user_ids, START)
        changed_ids = list(rng.choice(user_ids, size=int(args.customers * args.changed_share),
                                      replace=False))
        new_ids = _object_ids(rng, max(1, args.customers // 200))
        changed = _users(rng, changed_ids + new_ids, START + dt.timedelta(days=1))
        previous_file = root / "users-previous.parquet"
        write_parquet(previous, previous_file)
        merged_file = root / "users-merged.parquet"

        def parquet_merge() -> None:
            write_raw(merged_file, users, _batches(changed), merge_onto=previous_file,
                      batch_rows=BATCH_ROWS)

        def delta_prepare() -> None:
            shutil.rmtree(delta_dir / "users", ignore_errors=True)
            write_deltalake(delta_dir / "users", previous, mode="overwrite",
                            writer_properties=zstd)

        def delta_merge() -> None:
            (DeltaTable(delta_dir / "users")
             .merge(changed, predicate="t.user_id = s.user_id", source_alias="s",
                    target_alias="t", writer_properties=zstd)
             .when_matched_update_all()
             .when_not_matched_insert_all()
             .execute())

        merge_p = _timed(parquet_merge, args.repeats)
        merge_d = _timed(delta_merge, args.repeats, delta_prepare)
        print(_line("users snapshot merge", merge_p, merge_d), flush=True)
        ours = pq.read_table(merged_file).sort_by("user_id")
        theirs = DeltaTable(delta_dir / "users").to_pyarrow_table().sort_by("user_id")
        theirs = theirs.select(ours.column_names).cast(ours.schema)
        print(f"  merged snapshots equal: {ours.equals(theirs)} ({ours.num_rows:,} rows; "
              f"{len(changed_ids):,} updated, {len(new_ids):,} new)", flush=True)
