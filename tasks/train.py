"""Training tasks: build point-in-time training data, fit, track and register."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import mlflow
from prefect import task

from bbx.settings import Settings
from features.cutoffs import as_of_cutoff, monthly_training_cutoffs
from features.registry import CHURN_FEATURE_NAMES
from features.segmentation import build_segmentation_features
from features.training import build_training_set, split_by_customer
from models.churn import ChurnParams, evaluate_churn, train_churn_model
from models.segmentation import fit_segments, segment_profiles
from tasks import registry
from tasks.lake_io import read_tables


class NotEnoughTrainingDataError(RuntimeError):
    """The history cannot support a model (too few customers or churners)."""


@dataclass(frozen=True)
class TrainResult:
    model: str
    version: str
    run_id: str
    metrics: dict[str, float]


def churn_params(settings: Settings) -> ChurnParams:
    c = settings.churn
    return ChurnParams(
        n_estimators=c.n_estimators,
        max_depth=c.max_depth,
        learning_rate=c.learning_rate,
        subsample=c.subsample,
        colsample_bytree=c.colsample_bytree,
        early_stopping_rounds=c.early_stopping_rounds,
        seed=c.seed,
    )


@task(name="train-churn")
def train_churn_task(
    settings: Settings, as_of: dt.date, clean_paths: Mapping[str, str]
) -> TrainResult:
    tables = read_tables(clean_paths)
    cutoffs = monthly_training_cutoffs(
        as_of, settings.churn.horizon_days, settings.churn.training_cutoffs
    )
    data = build_training_set(
        tables, cutoffs, settings.churn.horizon_days, settings.churn.definition
    )
    churners = int(data["label"].sum()) if len(data) else 0
    if churners < 10 or churners == len(data):
        raise NotEnoughTrainingDataError(
            f"training data for as-of {as_of}: {len(data)} customer-cutoffs with {churners} "
            f"churners over cutoffs {cutoffs[0].date()}..{cutoffs[-1].date()}; need at least 10 "
            "churners and some non-churners (is the history long enough for the horizon?)"
        )
    train, valid = split_by_customer(data, settings.churn.validation_share, settings.churn.seed)
    params = churn_params(settings)
    model = train_churn_model(train, valid, list(CHURN_FEATURE_NAMES), params)
    probability = model.predict_proba(valid[list(CHURN_FEATURE_NAMES)])
    metrics = evaluate_churn(valid["label"].to_numpy(), probability, model.threshold)

    registry.configure(settings, "churn")
    with mlflow.start_run(run_name=f"churn-{as_of.isoformat()}"):
        mlflow.log_params(vars(params) | {
            "horizon_days": settings.churn.horizon_days,
            "churn_definition": settings.churn.definition,
            "cutoffs": ",".join(str(c.date()) for c in cutoffs),
            "features": ",".join(CHURN_FEATURE_NAMES),
        })
        mlflow.log_metrics({f"valid_{k}": float(v) for k, v in metrics.items()} | {
            "train_rows": len(train),
            "valid_rows": len(valid),
            "decision_threshold": float(model.threshold),
        })
        example = valid[list(CHURN_FEATURE_NAMES)].head(50)
        registered = registry.log_and_register(
            model, "predict_proba", registry.CHURN_MODEL, example,
            model.predict_proba(example), alias=registry.CHAMPION,
        )
    return TrainResult(registered.name, registered.version, registered.run_id, metrics)


@task(name="train-segmentation")
def train_segmentation_task(
    settings: Settings, as_of: dt.date, clean_paths: Mapping[str, str]
) -> TrainResult:
    tables = read_tables(clean_paths)
    features = build_segmentation_features(tables, as_of_cutoff(as_of))
    seg = settings.segmentation
    if len(features) < seg.k * 10:
        raise NotEnoughTrainingDataError(
            f"segmentation for as-of {as_of}: {len(features)} active customers, need at least "
            f"{seg.k * 10} for k={seg.k}"
        )
    model = fit_segments(features, seg.k, seg.seed, seg.elasticity_prior)
    assignment = model.assign(features)
    profiles = segment_profiles(features, assignment)

    registry.configure(settings, "segmentation")
    with mlflow.start_run(run_name=f"segmentation-{as_of.isoformat()}"):
        mlflow.log_params({"k": seg.k, "seed": seg.seed, "customers": len(features)})
        mlflow.log_table(profiles.reset_index(), artifact_file="segment_profiles.json")
        metrics = {"inertia": float(getattr(model, "inertia", float("nan")))}
        mlflow.log_metrics(metrics)
        example = features.head(50)
        registered = registry.log_and_register(
            model, "assign", registry.SEGMENT_MODEL, example, model.assign(example),
            alias=registry.CHAMPION,
        )
    return TrainResult(registered.name, registered.version, registered.run_id, metrics)
