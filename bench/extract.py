"""Extract benchmark: the lake extract against a raw pymongoarrow read, and an
incremental night against a full one.

    python -m bench extract [--customers=10000 --days=60 --repeats=2]

On a fresh embedded server (in memory), the simulator writes `days + 1` days of
history ending on day E+1. Then, on the same data:

1. Full extract for as-of E (every lake collection, streamed to Parquet), against a
   raw `find_arrow_all` of the same collections with the same queries, projections,
   schemas and cursor batch size (no conversion, no Parquet). Best of `--repeats`, alternating.
   Goal: extract / raw <= 1.15.
2. Incremental extract for as-of E+1 (the new day plus the overlap window, and the
   snapshots: plans in full, users/subscriptions as the documents whose updatedAt is
   in the overlap window or later, merged onto the as-of E snapshot), against the full
   extract. Measured twice: without and with an index on each append-only
   collection's time field (the app's DBA creates these; the pipeline's user may
   not). updatedAt is not indexed in either: the server scans users/subscriptions.
   Goal: <= 10%. Afterwards (not timed) the merged snapshots are checked against
   users/subscriptions read in full for E+1.

Only extraction is timed (validation is not): the as-of E manifest is marked
validated by hand so the next run starts from its watermarks.

Each figure is given as wall time and as CPU time (this process + the server
process, from /proc): on a shared machine the wall time of the same work varies
2x from run to run, the CPU time much less, so the ratios are judged on CPU time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

END = dt.date(2026, 11, 24)  # day E; the simulated history runs to E+1
SEED = 42


class Clock:
    """Wall and CPU seconds (this process + the server process) of a piece of work."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def _cpu(self) -> float:
        with open(f"/proc/{self.server_pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return server + own.user + own.system

    def measure(self, work):
        wall, cpu = time.perf_counter(), self._cpu()
        result = work()
        return time.perf_counter() - wall, self._cpu() - cpu, result


def _extract_all(settings, uri: str, as_of: dt.date, today: dt.date) -> tuple[float, list]:
    """One run's extract, paying for its own client (a nightly run is a fresh process)."""
    from bbx import lake
    from bbx.mongo import close_clients
    from tasks.extract import extract_collection

    close_clients()
    began = time.perf_counter()
    results = [extract_collection(uri, settings, c, as_of, today=today) for c in lake.TABLES]
    return time.perf_counter() - began, results


def _raw_all(settings, uri: str, as_of: dt.date, today: dt.date) -> tuple[float, int]:
    """find_arrow_all of the same queries, projections and schemas: the floor."""
    from pymongo import MongoClient

    from bbx import lake
    from tasks.extract import find_arrow_all, mongo_schema, plan_extract

    client: MongoClient = MongoClient(uri, tz_aware=True)
    db = client[settings.mongo.database]
    began, rows = time.perf_counter(), 0
    for collection, spec in lake.TABLES.items():
        plan = plan_extract(spec, None, as_of, settings, today)
        projection = {c.source: 1 for c in spec.columns} | {"_id": 1}
        for query in plan.queries:
            assert not query.residual  # a full read is one find per query
            table = find_arrow_all(db[collection], query.filter, schema=mongo_schema(spec),
                                   projection=projection, allow_invalid=True,
                                   batch_size=settings.extract.batch_rows)
            rows += table.num_rows
            del table
    seconds = time.perf_counter() - began
    client.close()
    return seconds, rows


def _same_as_full(settings, results: list) -> str:
    """Untimed check: each merged snapshot holds what a full read of E+1 holds."""
    import pyarrow.parquet as pq

    from bbx import lake
    from tasks.extract import extract_collection

    fresh = settings.model_copy(update={"home": settings.home / "full-check"})
    verdicts = []
    for result in results:
        if not result.merged_onto:
            continue
        key = lake.TABLES[result.collection].key
        as_of = dt.date.fromisoformat(Path(result.path).parent.name.removeprefix("dt="))
        full = extract_collection(fresh.mongo.uri, fresh, result.collection, as_of,
                                  today=as_of)
        same = pq.read_table(result.path).sort_by(key).equals(
            pq.read_table(full.path).sort_by(key))
        verdicts.append(f"{result.collection} {'yes' if same else 'NO'}")
    return ", ".join(verdicts) or "no merged snapshot"


def _mark_validated(settings, as_of: dt.date, results: list) -> None:
    from bbx import lake
    from tasks.extract import write_manifest

    path = write_manifest(settings, as_of, results)
    manifest = json.loads(Path(path).read_text())
    manifest["validated"] = True
    for entry in manifest["tables"]:  # as the gate would record it (raw stands in for clean)
        entry["history"] = [entry["path"]]
    lake.manifest_path(settings.lake_dir, as_of).write_text(json.dumps(manifest))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench extract")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)

    import pyarrow as pa
    from pymongo import MongoClient

    from bbx import lake
    from bbx.mongo import close_clients, start_embedded, stop_process
    from bbx.settings import load_settings
    from simulator import simulate
    from tasks import extract as _imported_before_timing  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="bbx-bench-extract-") as tmp:
        settings = load_settings(
            home=Path(tmp), mongo={"embedded_storage": ":memory:", "database": "bench"}
        )
        server, process = start_embedded(settings)
        try:
            settings.mongo.uri = uri = server.uri
            client: MongoClient = MongoClient(uri, tz_aware=True)
            db = client["bench"]
            new_day = END + dt.timedelta(days=1)
            began = time.perf_counter()
            report = simulate(db, customers=args.customers, days=args.days + 1, seed=SEED,
                              end=new_day)
            print(f"data: {args.customers:,} customers x {args.days} days + 1 new day, "
                  f"{sum(report.documents.values()):,} documents "
                  f"(simulated in {time.perf_counter() - began:.0f} s)", flush=True)

            clock = Clock(server.pid)
            full_times, raw_times, full_cpu, raw_cpu, full_results = [], [], [], [], []
            pool = pa.default_memory_pool()
            peaks = []  # Arrow's process peak: after the first extract, after the first raw read
            for _ in range(args.repeats):
                wall, cpu, (_, full_results) = clock.measure(
                    lambda: _extract_all(settings, uri, END, new_day))
                full_times.append(wall)
                full_cpu.append(cpu)
                peaks.append(pool.max_memory())
                wall, cpu, (_, raw_rows) = clock.measure(
                    lambda: _raw_all(settings, uri, END, new_day))
                raw_times.append(wall)
                raw_cpu.append(cpu)
                peaks.append(pool.max_memory())
            full, raw = min(full_times), min(raw_times)
            rows = sum(r.rows for r in full_results)
            assert rows == raw_rows, (rows, raw_rows)
            lake_mb = sum(Path(r.path).stat().st_size for r in full_results) / 1e6
            print(f"full extract (as-of {END}): {rows:,} rows, {full:.2f} s "
                  f"(runs {', '.join(f'{t:.2f}' for t in full_times)}); raw find_arrow_all "
                  f"{raw:.2f} s (runs {', '.join(f'{t:.2f}' for t in raw_times)})")
            print(f"  CPU s (client + server): extract {min(full_cpu):.2f} (runs "
                  f"{', '.join(f'{t:.2f}' for t in full_cpu)}), raw {min(raw_cpu):.2f} (runs "
                  f"{', '.join(f'{t:.2f}' for t in raw_cpu)})")
            ratio = min(full_cpu) / min(raw_cpu)
            print(f"  ratio extract/raw = {ratio:.3f} CPU, {full / raw:.3f} wall  (goal <= 1.15: "
                  f"{'OK' if ratio <= 1.15 else 'MISSED'}); lake {lake_mb:.1f} MB zstd; "
                  f"largest batch in memory {max(r.max_batch_rows for r in full_results):,} "
                  f"rows (extract.batch_rows {settings.extract.batch_rows:,})")
            print(f"  peak Arrow memory: streaming extract {peaks[0] / 1e6:.0f} MB; "
                  f"raw find_arrow_all (whole collections in memory) {peaks[1] / 1e6:.0f} MB")
            _mark_validated(settings, END, full_results)

            for label, index in (("no time index", False), ("time-field indexes", True)):
                if index:
                    for spec in lake.TABLES.values():
                        if spec.incremental:
                            db[spec.collection].create_index(spec.time_source)
                seconds, cpu, (_, results) = clock.measure(
                    lambda: _extract_all(settings, uri, new_day, new_day))
                modes = {r.mode for r in results if lake.TABLES[r.collection].incremental}
                inc_rows = sum(r.rows for r in results)
                share = cpu / min(full_cpu)
                print(f"incremental (as-of {new_day}, {label}): {inc_rows:,} rows "
                      f"({sum(r.new_rows for r in results if r.mode != 'snapshot'):,} new events, "
                      f"overlap {settings.extract.overlap_hours:.0f} h), {seconds:.2f} s wall "
                      f"({seconds / full:.1%} of full), {cpu:.2f} CPU s = "
                      f"{share:.1%} of the full extract's (goal <= 10%: "
                      f"{'OK' if share <= 0.10 else 'MISSED'}); modes {sorted(modes)}",
                      flush=True)
                print("  snapshots: " + ", ".join(
                    f"{r.collection} {r.new_rows:,} re-read of {r.rows:,}"
                    + (" (merged)" if r.merged_onto else " (full)")
                    for r in results if r.mode == "snapshot"), flush=True)
            print(f"  merged snapshots equal a full read: {_same_as_full(settings, results)}")
            client.close()
        finally:
            close_clients()
            stop_process(process)
