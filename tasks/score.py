"""Batch scoring: every customer with an active subscription, with the champions.

Scoring runs per hash bucket of customers (bbx/lake/buckets.py): a bucket's raw
events are read, its churn features, probabilities, reasons and segmentation
features are written as parts, then one small step combines the parts (one row
per customer, no raw events) with the network-wide demand into the scores file.
Every per-customer value depends on that customer's rows alone, so the result is
the one a single whole-lake pass gives (tests/test_partitions.py). The fan-out over
the buckets is flows/buckets.py's, the one way a night is scored.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task
from prefect.cache_policies import Inputs

from bbx import lake
from bbx.lake.buckets import LakePartitions, lake_event_days, read_bucket
from bbx.lake.files import write_parquet as write_parquet_atomically
from bbx.lake.history import read_table
from bbx.settings import Settings
from features.buckets import (
    combine_segmentation_features,
    daily_network_load,
    demand_from_daily_load,
    segmentation_population_terms,
)
from features.customer import build_churn_features
from features.cutoffs import as_of_cutoff
from features.registry import CHURN_FEATURE_NAMES
from features.segmentation import SEGMENTATION_FEATURE_NAMES, build_segmentation_features
from models.pricing import PricingWeights
from models.reasons import churn_reasons, reasons_to_json
from models.scoring import ScoringPolicy, assemble_scores
from tasks import registry
from tasks.resume import resumable_options

PROBABILITY, REASONS = "churn_probability", "churn_reasons"


@dataclass(frozen=True)
class ScoreResult:
    path: str
    customers: int
    band_counts: dict[str, int]
    churn_model_version: str
    segment_model_version: str
    demand: float
    features_path: str  # the churn feature table scored tonight, for its own validation


@dataclass(frozen=True)
class Champions:
    """The model versions a night scores with, fixed once so every bucket uses the same."""

    churn: str
    segmentation: str


def trained_champions(trained: list[Any]) -> Champions | None:
    """The versions a dry run that trained scores with: what a real night would serve
    (`trained`: the night's TrainResults; None unless both models were trained)."""
    by_model = {t.model: t for t in trained}
    if {"churn", "segmentation"} - set(by_model):
        return None
    churn = by_model["churn"]
    return Champions(churn.champion_version or churn.version, by_model["segmentation"].version)


@dataclass(frozen=True)
class BucketScores:
    bucket: int
    churn_path: str  # churn features + churn_probability + churn_reasons, index user_id
    segmentation_path: str  # segmentation features + their population-wide terms
    customers: int
    daily_load: tuple[float, ...]  # network GB per day over the demand baseline (this bucket)


def scoring_policy(settings: Settings) -> ScoringPolicy:
    p = settings.pricing
    return ScoringPolicy(
        weights=PricingWeights(alpha=p.alpha, beta=p.beta, gamma=p.gamma),
        min_ratio=p.min_ratio,
        max_ratio=p.max_ratio,
        band_medium=settings.churn.risk_band_medium,
        band_high=settings.churn.risk_band_high,
        currency=p.currency,
        risk_score_periods=settings.churn.risk_score_horizon_days / settings.churn.horizon_days,
    )


def champion_versions(settings: Settings) -> Champions:
    registry.configure(settings, "churn")
    versions = {}
    for name in (registry.CHURN_MODEL, registry.SEGMENT_MODEL):
        versions[name] = registry.alias_version(name, registry.CHAMPION)
        if versions[name] is None:
            raise LookupError(f"no model '{name}' with alias '{registry.CHAMPION}' in the "
                              "registry; train first (`bbx run train`)")
    return Champions(versions[registry.CHURN_MODEL], versions[registry.SEGMENT_MODEL])


@functools.lru_cache(maxsize=4)
def _model(mlflow_uri: str, name: str, version: str) -> Any:
    """Loaded once per process and version (buckets on one worker share it)."""
    return registry.load_version(name, version)


def _champion_models(settings: Settings, champions: Champions) -> tuple[Any, Any]:
    registry.configure(settings, "churn")
    return (_model(settings.mlflow_uri, registry.CHURN_MODEL, champions.churn),
            _model(settings.mlflow_uri, registry.SEGMENT_MODEL, champions.segmentation))


def part_path(
    partitions: LakePartitions, bucket: int, what: str, champions: Champions
) -> Path:
    """Named by the model versions too: a cached bucket result scored by other champions
    (before a rollback, say) can never point at parts overwritten since."""
    tag = f"{what}-churn{champions.churn}-segmentation{champions.segmentation}"
    return partitions.scored_path(bucket, tag)


def _write_frame(frame: pd.DataFrame, path) -> None:
    write_parquet_atomically(pa.Table.from_pandas(frame), path)


def score_bucket(
    settings: Settings, as_of: dt.date, partitions: LakePartitions, bucket: int,
    champions: Champions,
) -> BucketScores:
    """One bucket's customers: features, churn probability and reasons, segmentation
    features, and the bucket's share of the network load."""
    tables = read_bucket(partitions, bucket)
    cutoff = as_of_cutoff(as_of)
    churn_model, _ = _champion_models(settings, champions)
    # The whole lake's coverage, so every bucket's customers get the features a
    # whole-lake build would give them.
    customers = build_churn_features(tables, cutoff, lake_event_days(partitions),
                                     getattr(churn_model, "history_days", None))
    probability = churn_model.predict_proba(customers[list(CHURN_FEATURE_NAMES)])
    # Top reasons per customer, as one JSON string each (keeps the Parquet flat).
    churn_inputs = customers[list(churn_model.feature_names)]
    reasons = reasons_to_json(churn_reasons(
        churn_inputs, churn_model.contributions(churn_inputs), churn_model.feature_names,
        settings.churn.reasons_per_customer,
    ))
    churn_part = customers.assign(**{PROBABILITY: probability, REASONS: reasons})
    segmentation_part = build_segmentation_features(tables, cutoff).join(
        segmentation_population_terms(tables, cutoff))
    churn_path = part_path(partitions, bucket, "churn", champions)
    segmentation_path = part_path(partitions, bucket, "segmentation", champions)
    _write_frame(churn_part, churn_path)
    _write_frame(segmentation_part, segmentation_path)
    daily = daily_network_load(tables.usagelogs, cutoff, settings.pricing.demand_baseline_days)
    return BucketScores(bucket, str(churn_path), str(segmentation_path), len(customers),
                        tuple(float(x) for x in daily))


@task(name="score-bucket")
def score_bucket_task(
    settings: Settings, as_of: dt.date, clean_paths: Mapping[str, str], *,
    partitions: LakePartitions, bucket: int, champions: Champions,
) -> BucketScores:
    """`clean_paths` are the bucket's files (`partitions.bucket_paths(bucket)`): the
    scoring cache (tasks/resume.py) keys on their content."""
    return score_bucket(settings, as_of, partitions, bucket, champions)


def combine_scores(
    settings: Settings, as_of: dt.date, partitions: LakePartitions,
    parts: list[BucketScores], champions: Champions,
) -> ScoreResult:
    """The bucket parts as tonight's features file and scores file (one row per customer)."""
    parts = sorted(parts, key=lambda p: p.bucket)
    frames = [pd.read_parquet(p.churn_path) for p in parts]
    customers = pd.concat([f for f in frames if len(f)] or frames[:1]).sort_index()
    probability = customers.pop(PROBABILITY).to_numpy(dtype=float)
    reasons = customers.pop(REASONS)
    features_path = lake.features_path(settings.lake_dir, "churn", as_of)
    write_parquet_atomically(pa.Table.from_pandas(customers.reset_index()), features_path)

    churn_model, segment_model = _champion_models(settings, champions)
    segmentation = [pd.read_parquet(p.segmentation_path) for p in parts]
    features = combine_segmentation_features(
        [s[list(SEGMENTATION_FEATURE_NAMES)] for s in segmentation],
        [s.drop(columns=list(SEGMENTATION_FEATURE_NAMES)) for s in segmentation],
    )
    segments = segment_model.assign(features)
    cutoff = as_of_cutoff(as_of)
    daily = np.sum([np.asarray(p.daily_load, dtype=float) for p in parts], axis=0)
    demand = demand_from_daily_load(  # D forecast for the coming pricing period
        daily, cutoff, settings.pricing.demand_window_days, settings.pricing.demand_baseline_days,
    )["demand"]
    plans = read_table("plans", partitions.shared["plans"])  # no user id: never bucketed
    scores = assemble_scores(
        customers, probability, segments, plans, demand, scoring_policy(settings)
    )
    scores["decision_threshold"] = float(churn_model.threshold)  # the model's "will churn" cut
    scores[REASONS] = reasons.reindex(scores.index).to_numpy()
    scores["churn_model_version"] = champions.churn
    scores["segment_model_version"] = champions.segmentation
    path = lake.scores_path(settings.lake_dir, as_of)
    write_parquet_atomically(pa.Table.from_pandas(scores.reset_index(), preserve_index=False), path)
    counts = scores["risk_band"].value_counts()
    return ScoreResult(
        path=str(path),
        customers=len(scores),
        band_counts={band: int(counts.get(band, 0)) for band in ("low", "medium", "high")},
        churn_model_version=champions.churn,
        segment_model_version=champions.segmentation,
        demand=float(demand),
        features_path=str(features_path),
    )


@task(name="combine-scores")
def combine_scores_task(
    settings: Settings, as_of: dt.date, partitions: LakePartitions,
    parts: list[BucketScores], champions: Champions,
) -> ScoreResult:
    return combine_scores(settings, as_of, partitions, parts, champions)


def bucket_cache_options(
    settings: Settings, as_of: dt.date, partitions: LakePartitions, bucket: int,
    champions: Champions,
) -> dict[str, Any]:
    """The scoring cache (tasks/resume.py) per bucket: keyed by the bucket's files, the
    champions and the bucket number; refreshed when the bucket's parts are gone."""
    options = resumable_options(settings, as_of)
    options["cache_policy"] = options["cache_policy"] + Inputs(
        exclude=["settings", "clean_paths", "partitions", "champions"])
    parts = [part_path(partitions, bucket, what, champions) for what in ("churn", "segmentation")]
    options["refresh_cache"] = options["refresh_cache"] or not all(p.exists() for p in parts)
    return options
