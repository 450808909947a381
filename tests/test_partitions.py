"""Customers in hash buckets give exactly the whole-lake results.

A synthetic lake (tests/unit/synthetic.py) is written as clean Parquet, with the
usage history as two overlapping incremental parts behind a table version file
(as the gate writes it), and split into buckets by bbx/lake/buckets.py. Every
stage's output built bucket by bucket is compared with one whole-lake pass.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bbx.lake.buckets import lake_event_days, partition_lake, read_bucket
from bbx.lake.history import read_tables
from bbx.settings import Settings, load_settings
from features.buckets import (
    bucket_count,
    bucket_of,
    combine_segmentation_features,
    daily_network_load,
    demand_from_daily_load,
    segmentation_population_terms,
)
from features.customer import build_churn_features
from features.cutoffs import as_of_cutoff, training_cutoffs
from features.demand import coming_period_demand
from features.segmentation import build_segmentation_features
from features.training import build_training_set
from tasks.train import churn_training_set
from tests.conftest import new_home
from tests.unit.synthetic import make_tables

AS_OF = dt.date(2026, 6, 1)
BUCKETS = 7
# Training rows are built per cutoff, so a few cutoffs show the buckets' equality as well
# as the default sixteen, at a fraction of the cost.
CHURN = {"training_cutoffs": 5, "tuning_trials": 1}


def _write(frame: pd.DataFrame, path: Path) -> str:
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].astype("datetime64[ms, UTC]")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("clean")
    tables = make_tables(n_customers=900, seed=5)
    # Some customers used nothing in the last 90 days (segmentation's population fill).
    usage = tables.usagelogs
    subs = tables.subscriptions
    quiet = subs.loc[subs["subscription_status"].eq("active"), "user_id"].iloc[:40]
    recent = usage["timestamp"] >= pd.Timestamp(AS_OF, tz="UTC") - pd.Timedelta(days=95)
    tables.usagelogs = usage[~(usage["user_id"].isin(quiet) & recent)].reset_index(drop=True)
    paths = {name: _write(frame, folder / f"{name}.parquet")
             for name, frame in vars(tables).items() if name != "usagelogs"}
    # Usage as two incremental parts that overlap by 3,000 rows (re-read copies).
    usage = tables.usagelogs
    cut = len(usage) // 2
    first = _write(usage.iloc[: cut + 3000], folder / "usagelogs" / "part-0.parquet")
    second = _write(usage.iloc[cut:], folder / "usagelogs" / "part-1.parquet")
    version = folder / "usagelogs" / "_versions" / "dt=2026-06-01.json"
    version.parent.mkdir(parents=True)
    version.write_text(json.dumps({"collection": "usagelogs", "parts": [first, second]}))
    paths["usagelogs"] = str(version)
    return paths


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", scale={"buckets": BUCKETS}, churn=CHURN)


def test_bucket_of_is_stable_and_spreads_customers() -> None:
    ids = np.array([f"{i:024x}" for i in range(5000)], dtype=object)
    buckets = bucket_of(ids, 8)
    assert np.array_equal(buckets, bucket_of(ids[::-1], 8)[::-1])  # per id, not per position
    assert np.bincount(buckets, minlength=8).min() > 5000 / 8 * 0.8
    assert set(bucket_of(ids, 1)) == {0}


def test_bucket_count_follows_the_customer_base(tmp_path: Path, lake) -> None:
    assert [bucket_count(n, 2500) for n in (0, 1, 2500, 2501, 100_000)] == [1, 1, 1, 2, 40]
    assert bucket_count(10**9, 2500) == 999  # three-digit bucket files
    with pytest.raises(ValueError):
        bucket_count(10, 0)
    users = len(read_tables(lake).users)
    auto = load_settings(home=tmp_path / "home", scale={"customers_per_bucket": 200})
    assert auto.scale.buckets is None
    partitions = partition_lake(auto, AS_OF, lake)
    assert partitions.buckets == -(-users // 200) > 1
    assert all(Path(partitions.bucket_paths(b)["users"]).exists()
               for b in range(partitions.buckets))


def test_every_row_lands_in_its_users_bucket_once(settings: Settings, lake) -> None:
    whole = read_tables(lake)
    last_night = partition_lake(settings, AS_OF - dt.timedelta(days=1), lake)
    partitions = partition_lake(settings, AS_OF, lake)
    # Last night's split was used a moment ago (a backfill beside tonight's run, say):
    # kept. Idle past scale.keep_idle_splits_hours: removed by the next split.
    assert Path(last_night.root).exists()
    idle = time.time() - settings.scale.keep_idle_splits_hours * 3600 - 60
    os.utime(Path(last_night.root) / "_partitions.json", (idle, idle))
    partition_lake(settings, AS_OF, lake, buckets=BUCKETS - 1)  # a new split of tonight
    assert not Path(last_night.root).exists()
    partitions = partition_lake(settings, AS_OF, lake)
    assert set(partitions.shared) == {"plans"}
    assert partitions.overlapping["usagelogs"] and not partitions.overlapping["users"]
    buckets = [read_bucket(partitions, b) for b in range(BUCKETS)]
    for name in ("users", "subscriptions", "usagelogs", "payments", "auditlogs"):
        frames = [getattr(t, name) for t in buckets]
        assert sum(len(f) for f in frames) == len(getattr(whole, name)), name
        for b, frame in enumerate(frames):
            assert (bucket_of(frame["user_id"].to_numpy(), BUCKETS) == b).all(), name
    key = "session_id"
    merged = pd.concat([t.usagelogs for t in buckets]).set_index(key).sort_index()
    pd.testing.assert_frame_equal(merged, whole.usagelogs.set_index(key).sort_index())
    # Unchanged inputs: the split is reused, not rewritten (its marker is touched: in use).
    split_file = Path(partitions.bucket_paths(0)["usagelogs"])
    stamp = split_file.stat().st_mtime_ns
    assert partition_lake(settings, AS_OF, lake) == partitions
    assert split_file.stat().st_mtime_ns == stamp


def test_features_segments_demand_and_training_rows_equal_the_whole_lake(
    settings: Settings, lake
) -> None:
    whole = read_tables(lake)
    cutoff = as_of_cutoff(AS_OF)
    partitions = partition_lake(settings, AS_OF, lake)
    buckets = [read_bucket(partitions, b) for b in range(BUCKETS)]
    assert min(len(t.subscriptions) for t in buckets) > 0

    # Each bucket with the whole lake's coverage (where each source's history begins).
    lake_days = lake_event_days(partitions)
    churn = pd.concat([build_churn_features(t, cutoff, lake_days) for t in buckets]).sort_index()
    pd.testing.assert_frame_equal(churn, build_churn_features(whole, cutoff))

    segmentation = combine_segmentation_features(
        [build_segmentation_features(t, cutoff) for t in buckets],
        [segmentation_population_terms(t, cutoff) for t in buckets],
    )
    expected = build_segmentation_features(whole, cutoff)
    pd.testing.assert_frame_equal(segmentation, expected, rtol=1e-12)
    # The fill is a population quantity: one bucket alone would get it wrong.
    alone = build_segmentation_features(buckets[0], cutoff)
    quiet = alone.index[segmentation_population_terms(buckets[0], cutoff)["usage_gb_90d"] <= 0]
    assert len(quiet) > 0  # the lake has quiet customers in every bucket
    assert not np.allclose(alone.loc[quiet, "peak_hour_share"],
                           expected.loc[quiet, "peak_hour_share"])

    p = settings.pricing
    daily = np.sum([daily_network_load(t.usagelogs, cutoff, p.demand_baseline_days)
                    for t in buckets], axis=0)
    demand = demand_from_daily_load(daily, cutoff, p.demand_window_days, p.demand_baseline_days)
    reference = coming_period_demand(whole.usagelogs, cutoff, p.demand_window_days,
                                     p.demand_baseline_days)
    assert demand.keys() == reference.keys()
    for name, value in reference.items():
        assert demand[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name

    c = settings.churn
    cutoffs = training_cutoffs(AS_OF, c.horizon_days, c.training_cutoffs,
                                c.cutoff_spacing_days)
    rows = churn_training_set(partitions, cutoffs, c.horizon_days, c.definition)
    pd.testing.assert_frame_equal(
        rows, build_training_set(whole, cutoffs, c.horizon_days, c.definition))


@pytest.mark.slow
def test_scores_in_buckets_equal_one_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: None, lake,
    empty_mlflow_store: Path,
) -> None:
    """The nightly's scoring (flows/buckets.py) end to end (real MLflow registry, Prefect
    test API): scores from 7 buckets are the scores of one bucket, i.e. of the whole lake
    at once; a rerun takes every bucket from the scoring cache."""
    from flows.buckets import score_in_buckets
    from tasks import score as score_tasks
    from tasks.train import train_churn_task, train_segmentation_task

    monkeypatch.setenv("BBX_HOME", str(new_home(tmp_path / "home", empty_mlflow_store)))
    monkeypatch.setenv("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    one = load_settings(churn=CHURN, scale={"buckets": 1})
    many = load_settings(churn=CHURN, scale={"buckets": BUCKETS})
    partition = partition_lake(many, AS_OF, lake)
    train_churn_task(many, AS_OF, partition)
    train_segmentation_task(many, AS_OF, partition)

    scored: list[int] = []
    real = score_tasks.score_bucket

    def counted(settings, as_of, partitions, bucket, champions):
        scored.append(bucket)
        return real(settings, as_of, partitions, bucket, champions)

    monkeypatch.setattr(score_tasks, "score_bucket", counted)
    whole = score_in_buckets(one, AS_OF, partition_lake(one, AS_OF, lake))
    reference = pd.read_parquet(whole.path)
    reference_features = pd.read_parquet(whole.features_path)
    scored.clear()
    partition = partition_lake(many, AS_OF, lake)  # split again: one home, one split a night
    split = score_in_buckets(many, AS_OF, partition)
    scores = pd.read_parquet(split.path)

    assert split.customers == whole.customers == len(reference) > 500
    assert split.band_counts == whole.band_counts
    assert split.demand == pytest.approx(whole.demand, abs=1e-12)
    assert scores["user_id"].tolist() == reference["user_id"].tolist()
    np.testing.assert_allclose(scores["churn_probability"], reference["churn_probability"],
                               rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(scores, reference, rtol=1e-9)
    pd.testing.assert_frame_equal(pd.read_parquet(split.features_path), reference_features)

    # A rerun takes every bucket from the scoring cache, and a bucket whose parts are
    # gone is scored again.
    assert sorted(scored) == list(range(BUCKETS))
    score_in_buckets(many, AS_OF, partition)
    assert len(scored) == BUCKETS  # all cached
    score_tasks.part_path(partition, 3, "churn", score_tasks.champion_versions(many)).unlink()
    again = score_in_buckets(many, AS_OF, partition)
    assert scored[BUCKETS:] == [3]
    pd.testing.assert_frame_equal(pd.read_parquet(again.path), scores)


@pytest.fixture(scope="module")
def priced_lake(lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The same lake with a city and birth date per user (the fairness groups)."""
    users = read_tables(lake).users.copy()
    rng = np.random.default_rng(2)
    users["city"] = rng.choice(["Mumbai", "Delhi", "Pune"], len(users))
    users["date_of_birth"] = pd.Timestamp("1990-01-01", tz="UTC") - pd.to_timedelta(
        rng.integers(0, 40 * 365, len(users)), unit="D")
    folder = tmp_path_factory.mktemp("priced")
    return dict(lake) | {"users": _write(users, folder / "users.parquet")}


@pytest.mark.slow
def test_pricing_in_buckets_equals_one_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: None, priced_lake,
    empty_mlflow_store: Path,
) -> None:
    """The pricing task reads the lake bucket by bucket: with 7 buckets it prices, fits,
    judges fairness and profiles demand exactly as with one bucket (the whole lake)."""
    import mlflow
    import pyarrow as pa

    from bbx.lake.files import write_parquet
    from features.demand import hourly_demand_profile
    from models.scoring import assemble_scores
    from tasks import registry
    from tasks.pricing import price_customers_task
    from tasks.score import scoring_policy
    from tasks.train import train_segmentation_task

    monkeypatch.setenv("BBX_HOME", str(new_home(tmp_path / "home", empty_mlflow_store)))
    monkeypatch.setenv("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    one = load_settings(scale={"buckets": 1})
    many = load_settings(scale={"buckets": BUCKETS})
    train_segmentation_task(many, AS_OF, partition_lake(many, AS_OF, priced_lake))

    # Tonight's scores (as the scoring step leaves them); each run writes its own prices.
    whole = read_tables(priced_lake)
    cutoff = as_of_cutoff(AS_OF)
    registry.configure(many, registry.SEGMENT_MODEL)
    segment_model, _ = registry.load_by_alias(registry.SEGMENT_MODEL)
    customers = build_churn_features(whole, cutoff)
    probability = np.random.default_rng(3).uniform(0.0, 0.3, len(customers))
    segments = segment_model.assign(build_segmentation_features(whole, cutoff))
    scores = assemble_scores(customers, probability, segments, whole.plans, 0.7,
                             scoring_policy(many)).reset_index()
    scores_file = str(tmp_path / "scores.parquet")
    write_parquet(pa.Table.from_pandas(scores, preserve_index=False), Path(scores_file))
    prices = {name: str(tmp_path / f"prices-{name}.parquet") for name in ("one", "many")}

    reference = price_customers_task(one, AS_OF, partition_lake(one, AS_OF, priced_lake),
                                     scores_file, prices_file=prices["one"])
    split = price_customers_task(many, AS_OF, partition_lake(many, AS_OF, priced_lake),
                                 scores_file, prices_file=prices["many"])

    assert split.path == prices["many"] and split.scores_path == scores_file
    pd.testing.assert_frame_equal(pd.read_parquet(prices["many"]),
                                  pd.read_parquet(prices["one"]), rtol=1e-9)
    assert split.learned and reference.learned
    assert split.weights == pytest.approx(reference.weights, rel=1e-9)
    assert split.elasticity == pytest.approx(reference.elasticity, rel=1e-9)
    for name in ("revenue_uplift", "churn_static", "churn_dynamic"):
        assert getattr(split, name) == pytest.approx(getattr(reference, name), rel=1e-9), name
    assert (split.treatment_customers, split.control_customers, split.fairness_flags) == (
        reference.treatment_customers, reference.control_customers, reference.fairness_flags)
    pd.testing.assert_frame_equal(pd.DataFrame(split.segments),
                                  pd.DataFrame(reference.segments), rtol=1e-9)
    pd.testing.assert_frame_equal(pd.DataFrame(split.demand_profile),
                                  pd.DataFrame(reference.demand_profile), rtol=1e-9)
    # ... and the profile is the whole-lake one, straight from the raw events.
    expected = hourly_demand_profile(whole.usagelogs, cutoff, many.pricing.demand_baseline_days)
    np.testing.assert_allclose(pd.DataFrame(split.demand_profile)["mean_daily_gb"],
                               expected["mean_daily_gb"], rtol=1e-9)

    registry.configure(many, "pricing")
    logged = {}
    for name, result in (("one", reference), ("many", split)):
        logged[name] = {
            table: mlflow.load_table(f"{table}.json", run_ids=[result.mlflow_run_id])
            for table in ("elasticity_estimates", "fairness_report")}
    for table in ("elasticity_estimates", "fairness_report"):
        pd.testing.assert_frame_equal(logged["many"][table], logged["one"][table], rtol=1e-9)
    # The history spoke: the cohort is real, so the equality above covers it.
    assert logged["many"]["elasticity_estimates"]["customers"].sum() > 100
    fairness = logged["many"]["fairness_report"]
    assert set(fairness.loc[fairness["dimension"] == "city", "group"]) == {
        "Mumbai", "Delhi", "Pune"}
