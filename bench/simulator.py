"""Simulator benchmark: compute time and Mongo write throughput.

    python -m bench simulator [--customers 10000 --days 365]
                              [--write-customers 2000 --write-days 90]

1. Compute: `simulate()` for customers x days into a sink that discards the
   documents (everything but the server: population, timeline, every document,
   the truth). Goal: under 60 s for 10k customers x 365 days.
2. Writes: on a fresh embedded server (in memory), `simulate()` for
   write-customers x write-days (wall time, its compute overlapping its writes),
   then a raw unordered `insert_many` of the very same documents in the same
   batches into another database. Prints documents/second of each and their
   ratio raw/simulator (goal: simulator >= raw / 1.2, i.e. ratio <= 1.2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid

END = dt.date(2026, 11, 25)
SEED = 42


class _SinkCollection:
    def __init__(self, sink: _Sink, name: str) -> None:
        self._sink, self._name = sink, name

    def insert_many(self, documents: list[dict], ordered: bool = True) -> None:
        if self._sink.batches is not None:
            self._sink.batches.append((self._name, documents))


class _Sink:
    """Stands in for a pymongo Database: keeps (or drops) what the simulator writes."""

    def __init__(self, keep: bool) -> None:
        self.batches: list[tuple[str, list[dict]]] | None = [] if keep else None
        self.name = "sink"

    def __getitem__(self, name: str) -> _SinkCollection:
        return _SinkCollection(self, name)

    def drop_collection(self, name: str) -> None:
        return None


def _compute(customers: int, days: int) -> None:
    from simulator import simulate

    began = time.perf_counter()
    report = simulate(_Sink(keep=False), customers=customers, days=days, seed=SEED, end=END)
    seconds = time.perf_counter() - began
    total = sum(report.documents.values())
    print(
        f"compute only   {customers:,} customers x {days} days: {seconds:.1f} s, "
        f"{total:,} documents built ({total / seconds:,.0f}/s); goal < 60 s "
        f"{'OK' if seconds < 60 else 'MISSED'}",
        flush=True,
    )


def _writes(customers: int, days: int) -> None:
    import tempfile
    from pathlib import Path

    from pymongo import MongoClient

    from bbx.mongo import start_embedded, stop_process
    from bbx.settings import load_settings
    from simulator import simulate

    recorded = _Sink(keep=True)
    simulate(recorded, customers=customers, days=days, seed=SEED, end=END)
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home=Path(home), mongo={"embedded_storage": ":memory:"})
        server, process = start_embedded(settings)
        client: MongoClient = MongoClient(server.uri, tz_aware=True)
        try:
            sim_db = client[f"bench_{uuid.uuid4().hex[:8]}"]
            began = time.perf_counter()
            report = simulate(sim_db, customers=customers, days=days, seed=SEED, end=END)
            sim_seconds = time.perf_counter() - began
            documents = sum(report.documents.values())

            raw_db = client[f"bench_{uuid.uuid4().hex[:8]}"]
            assert recorded.batches is not None
            began = time.perf_counter()
            for name, batch in recorded.batches:
                raw_db[name].insert_many(batch, ordered=False)
            raw_seconds = time.perf_counter() - began
            raw_documents = sum(len(b) for _, b in recorded.batches)
        finally:
            client.close()
            stop_process(process)
    sim_rate, raw_rate = documents / sim_seconds, raw_documents / raw_seconds
    ratio = raw_rate / sim_rate
    print(
        f"simulate()     {customers:,} customers x {days} days: {documents:,} documents "
        f"in {sim_seconds:.1f} s = {sim_rate:,.0f} docs/s (compute included)",
        flush=True,
    )
    print(
        f"raw insert_many of the same {raw_documents:,} documents: {raw_seconds:.1f} s "
        f"= {raw_rate:,.0f} docs/s",
        flush=True,
    )
    print(f"ratio raw/simulator = {ratio:.2f} (goal <= 1.2 {'OK' if ratio <= 1.2 else 'MISSED'})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench simulator")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--write-customers", type=int, default=2000)
    parser.add_argument("--write-days", type=int, default=90)
    parser.add_argument("--skip-compute", action="store_true")
    parser.add_argument("--skip-writes", action="store_true")
    args = parser.parse_args(argv)
    if not args.skip_compute:
        _compute(args.customers, args.days)
    if not args.skip_writes:
        _writes(args.write_customers, args.write_days)
