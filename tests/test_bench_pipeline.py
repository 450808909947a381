"""The pipeline benchmark still runs end to end and prints every stage and figure.

A real run at a tiny size (simulated lake, the real tasks, an embedded server, a
temporary Prefect API), so the bench does not rot. Its figures are not judged here.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pymongo import MongoClient

from bbx import lake

ROOT = Path(__file__).resolve().parent.parent


def test_lake_writer_matches_the_extract(mongo_server_uri: str, settings, tmp_path: Path) -> None:
    """The bench's lake (simulator → Parquet directly) is the extract's lake, row for row."""
    from bench._lake_writer import write_lake
    from simulator import simulate
    from tasks.extract import extract_collection

    end = dt.date(2026, 11, 24)
    as_of = end + dt.timedelta(days=1)
    client: MongoClient = MongoClient(mongo_server_uri, tz_aware=True)
    try:
        simulate(client[settings.mongo.database], customers=120, days=30, seed=3, end=end)
    finally:
        client.close()
    extracted = {c: extract_collection(mongo_server_uri, settings, c, as_of, today=as_of).path
                 for c in lake.TABLES}
    written, rows, _ = write_lake(tmp_path / "lake", customers=120, days=30, seed=3, end=end)
    assert rows["usagelogs"] > 1000 and rows["auditlogs"] > 100
    for collection, path in extracted.items():
        key = lake.TABLES[collection].key
        ours = pq.read_table(written[collection]).sort_by(key)
        theirs = pq.read_table(path).sort_by(key)
        assert ours.schema.equals(theirs.schema), collection
        assert ours.equals(theirs), collection


@pytest.mark.slow
def test_pipeline_bench_prints_every_stage_and_figure(tmp_path: Path, prefect_api) -> None:
    from prefect.settings import PREFECT_API_URL

    # The bench runs on the session's Prefect API (it would start its own without one).
    env = os.environ | {"BBX_HOME": str(tmp_path / "home"),
                        "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "pipeline", "--customers=150,250", "--days=90",
         "--io-customers=150", "--io-days=10", "--reads=200", "--trials=1", "--repeats=1",
         f"--lake-cache={tmp_path / 'lakes'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    summary = out.split("== per stage", 1)[1]
    number = r"[\d,]+(?:\.\d+)?"
    for stage, size in [*((s, c) for s in ("features", "train churn", "train segmentation",
                                            "score", "price") for c in ("150", "250")),
                        ("extract", "150"), ("publish \\(first night\\)", "150"),
                        ("publish \\(next night\\)", "150")]:
        # stage, customers, wall, CPU, rows, rows/s, peak MB | raw wall, CPU, MB, two ratios
        line = (rf"^{stage}\s+{size}\s+{number}\s+{number}\s+{number}\s+{number}\s+{number}"
                rf"\s+\| raw\s+{number} s wall\s+{number} s CPU\s+{number} MB; "
                rf"ratio\s+{number} wall\s+(?:{number}|nan) CPU$")  # nan: raw CPU ~0 s
        assert re.search(line, summary, re.M), f"no figures for {stage} at {size}:\n{summary}"
    for size in ("150", "250"):  # the bucket split: all overhead, no raw counterpart
        assert re.search(rf"^partition\s+{size}\s+{number}\s+{number}\s+{number}\s+{number}"
                         rf"\s+{number}\s+\| raw: none", summary, re.M), summary
    assert "plan stages" in summary and "uses the index: YES (IXSCAN)" in summary
    assert re.search(rf"200 random point reads by userId .*p50 {number} ms, p99 {number} ms",
                     summary)
    goals = summary.split("== goals", 1)[1]
    for goal in ("linear partition", "linear features", "linear train churn",
                 "linear train segmentation", "linear score", "linear price",
                 "memory at 250 customers",
                 "overall ("):
        assert re.search(rf"^{re.escape(goal)}.*: (OK|MISSED)$", goals, re.M), goal
    # The churn model's size (rounds kept by early stopping) at both sizes.
    assert re.search(r"^  train churn: boosting rounds [\d,]+ at 150, [\d,]+ at 250", goals,
                     re.M), goals


def test_bucket_sizes_bench_prints_a_row_per_size_and_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import bucket_sizes

    bucket_sizes.main(["--customers=200", "--days=40", "--buckets=1,4,50",
                       f"--lake-cache={tmp_path}"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    # 50 buckets of 4 customers is skipped (more than a tenth of the customers).
    assert [(r[0], r[1], r[2]) for r in rows] == [("200", "1", "200"), ("200", "4", "50")]
    assert all(float(r[5]) > 0 for r in rows)


def test_churn_worlds_prints_each_goal_with_its_interval() -> None:
    from bench.churn_worlds import _goals, _goals_table

    rng = np.random.default_rng(5)
    y = (rng.random(1500) < 0.08).astype(int)
    reference = 3.0 * y + rng.normal(0, 1.0, len(y))
    scores = {"model": reference + rng.normal(0, 0.2, len(y)), "observable": reference,
              "bayes": reference}
    default = _goals("default", y, scores, draws=100)
    assert [g["goal"] for g in default] == [
        "roc_auc - (observable - 0.02)", "pr_auc - 0.9 x observable", "model roc_auc alone"]
    # The model is the reference plus a little noise: within 0.02 of its ROC-AUC, and
    # well above 0.9 of its PR-AUC.
    assert [g["verdict"] for g in default[:2]] == ["met", "met"]
    for goal in default:
        assert goal["low"] <= goal["margin"] <= goal["high"]
    # The documents-only reference, when given, is compared aside (not one of the goals).
    aside = _goals("default", y, {**scores, "documents": reference - 1.0 * y}, draws=100)
    assert [g["goal"] for g in aside][2] == "aside: pr_auc - 0.9 x documents"
    assert aside[2]["margin"] > default[1]["margin"]  # a weaker reference, a lower bar
    contract = _goals("contract-driven", y, {**scores, "model": rng.random(len(y))}, draws=100)
    assert [g["goal"] for g in contract] == ["roc_auc - (bayes - 0.02)", "model roc_auc alone"]
    assert contract[0]["verdict"] == "missed"  # a random model
    table = _goals_table(contract, 100)
    assert "100 draws" in table and "missed" in table
