"""How the bucket size moves the night: `python -m bench bucket_sizes`.

    python -m bench bucket_sizes [--customers=10000,100000 --days=180 --seed=42]
                                 [--buckets=1,2,8,16,32,80 --lake-cache=DIR]

For each lake size (the raw layout of `python -m bench pipeline`, simulated straight to
Parquet or reused from --lake-cache) and each bucket count no larger than a tenth of
the customers: the split (bbx.lake.buckets.partition_lake) and every bucket's churn and
segmentation features, one bucket after another, in this process. It prints seconds
and milliseconds per customer, so the size per bucket that keeps the work linear can
be read off (scale.customers_per_bucket).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench bucket_sizes")
    parser.add_argument("--customers", default="10000,100000")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--buckets", default="1,2,8,16,32,80")
    parser.add_argument("--lake-cache", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    from bbx.lake.buckets import partition_lake, read_bucket
    from bench.pipeline import AS_OF, _lake, _settings
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff
    from features.segmentation import build_segmentation_features

    cutoff = as_of_cutoff(AS_OF)
    with tempfile.TemporaryDirectory(prefix="bbx-bench-bucket-sizes-") as tmp:
        print(f"{'customers':>9} {'buckets':>7} {'per bucket':>10} {'split s':>8} "
              f"{'features s':>10} {'ms/customer':>11}", flush=True)
        for customers in sorted(int(c) for c in args.customers.split(",")):
            paths, _ = _lake(customers, args.days, args.seed,
                             args.lake_cache or Path(tmp) / "lakes")
            for buckets in sorted(int(b) for b in args.buckets.split(",")):
                if buckets > max(1, customers // 10):
                    continue
                settings = _settings(str(Path(tmp) / f"home-{customers}-{buckets}"), None)
                began = time.perf_counter()
                partitions = partition_lake(settings, AS_OF, paths, buckets=buckets)
                split = time.perf_counter() - began
                began = time.perf_counter()
                for bucket in range(buckets):
                    tables = read_bucket(partitions, bucket)
                    build_churn_features(tables, cutoff)
                    build_segmentation_features(tables, cutoff)
                    del tables
                features = time.perf_counter() - began
                print(f"{customers:>9,} {buckets:>7} {customers // buckets:>10,} "
                      f"{split:>8.1f} {features:>10.1f} "
                      f"{(split + features) / customers * 1000:>11.3f}", flush=True)
