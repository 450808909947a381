"""Peak memory of the feature stage, whole lake vs one bucket: `python -m bench buckets`.

Options: --customers N (default 20000), --days D (180), --buckets B (scale.buckets, or one per
scale.customers_per_bucket users).
A synthetic lake (tests/unit/synthetic.py) is written as clean Parquet; then, each in
a fresh process so the figures do not mix, the peak RSS of:
- imports only (the floor every figure includes);
- whole: read every table at once + churn and segmentation features (no buckets);
- partition: streaming the lake into B buckets (bbx/lake/buckets.py);
- one bucket: read one bucket + the same features (what a bucket task holds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

AS_OF = dt.date(2026, 6, 1)


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB elsewhere


def _imports(_: dict) -> tuple[float, float]:
    import pandas  # noqa: F401

    import bbx.lake.buckets  # noqa: F401
    import features.customer  # noqa: F401
    return 0.0, _peak_mb()


def _whole(job: dict) -> tuple[float, float]:
    from bbx.lake.history import read_tables
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff
    from features.segmentation import build_segmentation_features

    started = time.perf_counter()
    tables = read_tables(job["paths"])
    build_churn_features(tables, as_of_cutoff(AS_OF))
    build_segmentation_features(tables, as_of_cutoff(AS_OF))
    return time.perf_counter() - started, _peak_mb()


def _partition(job: dict) -> tuple[float, float]:
    from bbx.lake.buckets import partition_lake
    from bbx.settings import load_settings

    started = time.perf_counter()
    settings = load_settings(home=job["home"], scale={"buckets": job["buckets"]})
    partition_lake(settings, AS_OF, job["paths"])
    return time.perf_counter() - started, _peak_mb()


def _bucket(job: dict) -> tuple[float, float]:
    from bbx.lake.buckets import partition_lake, read_bucket
    from bbx.settings import load_settings
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff
    from features.segmentation import build_segmentation_features

    settings = load_settings(home=job["home"], scale={"buckets": job["buckets"]})
    partitions = partition_lake(settings, AS_OF, job["paths"])  # reused: already split
    started = time.perf_counter()
    tables = read_bucket(partitions, 0)
    build_churn_features(tables, as_of_cutoff(AS_OF))
    build_segmentation_features(tables, as_of_cutoff(AS_OF))
    return time.perf_counter() - started, _peak_mb()


def _in_fresh_process(fn, job: dict) -> tuple[float, float]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, (job,))


def _write_lake(folder: Path, customers: int, days: int) -> dict[str, str]:
    import pandas as pd

    from tests.unit.synthetic import make_tables

    tables = make_tables(n_customers=customers, days=days, seed=1)
    paths = {}
    for name, frame in vars(tables).items():
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column].astype("datetime64[ms, UTC]")
        paths[name] = str(folder / f"{name}.parquet")
        frame.to_parquet(paths[name], index=False)
    return paths


def main(argv: list[str]) -> None:
    from bbx.settings import load_settings
    from features.buckets import bucket_count

    scale = load_settings().scale
    parser = argparse.ArgumentParser(prog="python -m bench buckets")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--buckets", type=int, default=scale.buckets,
                        help="default: scale.buckets, or one per scale.customers_per_bucket")
    args = parser.parse_args(argv)
    from tests.unit.synthetic import CANCEL_AFTER_DAYS

    if args.days <= CANCEL_AFTER_DAYS:
        parser.error(f"--days must be above {CANCEL_AFTER_DAYS} (the synthetic lake's "
                     "churners cancel after that many days)")
    if args.buckets is None:
        args.buckets = bucket_count(args.customers, scale.customers_per_bucket)
    with tempfile.TemporaryDirectory(prefix="bbx-bench-buckets-") as tmp:
        paths = _write_lake(Path(tmp), args.customers, args.days)
        job = {"paths": paths, "home": str(Path(tmp) / "home"), "buckets": args.buckets}
        lake_mb = sum(Path(p).stat().st_size for p in paths.values()) / 1e6
        print(f"synthetic lake: {args.customers} customers, {args.days} days, "
              f"{lake_mb:.1f} MB Parquet; {args.buckets} buckets")
        for label, fn in (("imports only", _imports), ("whole lake features", _whole),
                          ("partition (streaming)", _partition),
                          ("one bucket features", _bucket)):
            seconds, peak = _in_fresh_process(fn, job)
            print(f"{label:24s} peak RSS {peak:8.0f} MB   {seconds:7.1f} s")
