"""Batch scoring: every customer with an active subscription, with the champions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
from prefect import task

from bbx import lake
from bbx.settings import Settings
from features.customer import build_churn_features
from features.cutoffs import as_of_cutoff
from features.demand import coming_period_demand
from features.registry import CHURN_FEATURE_NAMES
from features.segmentation import build_segmentation_features
from models.pricing import PricingWeights
from models.reasons import churn_reasons, reasons_to_json
from models.scoring import ScoringPolicy, assemble_scores
from tasks import registry
from tasks.extract import write_parquet_atomically
from tasks.lake_io import read_tables


@dataclass(frozen=True)
class ScoreResult:
    path: str
    customers: int
    band_counts: dict[str, int]
    churn_model_version: str
    segment_model_version: str
    demand: float
    features_path: str  # the churn feature table scored tonight, for its own validation


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


@task(name="score")
def score_customers_task(
    settings: Settings, as_of: dt.date, clean_paths: Mapping[str, str]
) -> ScoreResult:
    tables = read_tables(clean_paths)
    cutoff = as_of_cutoff(as_of)
    registry.configure(settings, "churn")
    churn_model, churn_version = registry.load_by_alias(registry.CHURN_MODEL)
    segment_model, segment_version = registry.load_by_alias(registry.SEGMENT_MODEL)

    customers = build_churn_features(tables, cutoff)
    features_path = lake.features_path(settings.lake_dir, "churn", as_of)
    write_parquet_atomically(pa.Table.from_pandas(customers.reset_index()), features_path)
    probability = churn_model.predict_proba(customers[list(CHURN_FEATURE_NAMES)])
    segments = segment_model.assign(build_segmentation_features(tables, cutoff))
    demand = coming_period_demand(  # D forecast for the coming pricing period
        tables.usagelogs, cutoff, settings.pricing.demand_window_days,
        settings.pricing.demand_baseline_days,
    )["demand"]
    scores = assemble_scores(
        customers, probability, segments, tables.plans, demand, scoring_policy(settings)
    )
    scores["decision_threshold"] = float(churn_model.threshold)  # the model's "will churn" cut
    # Top reasons per customer, as one JSON string each (keeps the Parquet flat).
    churn_inputs = customers[list(churn_model.feature_names)]
    scores["churn_reasons"] = reasons_to_json(churn_reasons(
        churn_inputs, churn_model.contributions(churn_inputs), churn_model.feature_names,
        settings.churn.reasons_per_customer,
    ))
    scores["churn_model_version"] = churn_version
    scores["segment_model_version"] = segment_version
    path = lake.scores_path(settings.lake_dir, as_of)
    write_parquet_atomically(pa.Table.from_pandas(scores.reset_index(), preserve_index=False), path)
    counts = scores["risk_band"].value_counts()
    return ScoreResult(
        path=str(path),
        customers=len(scores),
        band_counts={band: int(counts.get(band, 0)) for band in ("low", "medium", "high")},
        churn_model_version=churn_version,
        segment_model_version=segment_version,
        demand=float(demand),
        features_path=str(features_path),
    )
