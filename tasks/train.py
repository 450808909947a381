"""Training tasks: build point-in-time training data, fit, track and register."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact

from bbx.lake.buckets import LakePartitions, lake_event_days, read_bucket
from bbx.settings import Settings
from features.buckets import combine_segmentation_features, segmentation_population_terms
from features.coverage import EventDays
from features.cutoffs import (
    as_of_cutoff,
    cutoff_candidates,
    partly_labelled_cutoffs,
    training_cutoffs,
)
from features.labels import ChurnDefinition
from features.registry import CHURN_FEATURE_NAMES
from features.segmentation import build_segmentation_features
from features.training import (
    ChurnSplits,
    build_training_set,
    combine_training_sets,
    partly_labelled,
    scoring_history_days,
    split_train_valid_test,
)
from models.churn import (
    ChurnModel,
    ChurnParams,
    LogisticBaseline,
    Tuner,
    fit_churn_model,
    training_rows,
    tune_churn_model,
)
from models.heuristic import heuristic_churn_score
from models.metrics import evaluate_churn, evaluate_ranking
from models.promotion import PromotionRules, decide_promotion, decision_markdown
from models.retraining import TrainingDue, training_due
from models.segmentation import (
    ClusteringSpace,
    fit_segments,
    segment_profiles,
    silhouette_by_k,
)
from tasks import registry


class NotEnoughTrainingDataError(RuntimeError):
    """The history cannot support a model (too few customers or churners)."""


@dataclass(frozen=True)
class TrainResult:
    model: str
    version: str
    run_id: str
    # Churn: the headline (test customers at the latest labelled cutoff), then pooled_*.
    metrics: dict[str, float]
    # Churn only: did this version become champion, and why (or why not).
    promoted: bool = True
    promotion_reason: str = ""
    champion_version: str = ""


def churn_cutoffs(settings: Settings, as_of: dt.date
                  ) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """A night's training cutoffs: the fully labelled ones, and the partly labelled ones
    after them (empty when `churn.partly_labelled_cutoffs` is off)."""
    c = settings.churn
    labelled = training_cutoffs(as_of, c.horizon_days, c.training_cutoffs,
                                c.cutoff_spacing_days)
    partial = (partly_labelled_cutoffs(as_of, c.horizon_days, c.cutoff_spacing_days)
               if c.partly_labelled_cutoffs else [])
    return labelled, partial


def latest_refit_rows(settings: Settings, splits: ChurnSplits) -> pd.DataFrame | None:
    """The rows the winner is refitted with once calibrated (the train customers at the
    latest labelled cutoff), or None when `churn.refit_with_latest_cutoff` is off."""
    return splits.latest_train if settings.churn.refit_with_latest_cutoff else None


def churn_params(settings: Settings) -> ChurnParams:
    c = settings.churn
    return ChurnParams(
        n_estimators=c.n_estimators,
        max_depth=c.max_depth,
        learning_rate=c.learning_rate,
        subsample=c.subsample,
        colsample_bytree=c.colsample_bytree,
        min_child_weight=c.min_child_weight,
        early_stopping_rounds=c.early_stopping_rounds,
        seed=c.seed,
        threads=c.threads,
    )


def promotion_rules(settings: Settings) -> PromotionRules:
    c = settings.churn
    return PromotionRules(c.promotion_metric, c.promotion_brier_tolerance,
                          c.promotion_ece_tolerance)


@task(name="training-due")
def training_due_task(settings: Settings, as_of: dt.date, force: bool) -> TrainingDue:
    """The rule (models/retraining.py) on what the registry holds: the champions and the
    churn champion's `trained_as_of` tag."""
    if force:
        return training_due(as_of, True, [], None, settings.churn.retrain_every_days)
    registry.configure(settings, "churn")
    missing = [name for name in (registry.CHURN_MODEL, registry.SEGMENT_MODEL)
               if registry.alias_version(name, registry.CHAMPION) is None]
    last = None if missing else registry.last_trained_as_of(registry.CHURN_MODEL)
    return training_due(as_of, False, missing, last, settings.churn.retrain_every_days)


def headline_metrics(model: ChurnModel, splits: ChurnSplits) -> dict[str, float]:
    """The figures a night is judged by: the test customers at the latest labelled
    cutoff(s) alone, which no booster or calibrator saw (out of time, out of customer)."""
    return evaluate_churn(splits.test["label"].to_numpy(), model.predict_proba(splits.test),
                          model.threshold)


def _champion_metrics(
    test: pd.DataFrame,
) -> tuple[dict[str, float] | None, str | None, str | None]:
    """(metrics, version, error) of the current churn champion on the test rows."""
    version = registry.alias_version(registry.CHURN_MODEL, registry.CHAMPION)
    if version is None:
        return None, None, None
    try:
        champion = registry.load_version(registry.CHURN_MODEL, version)
        probability = champion.predict_proba(test)
    except (KeyError, AttributeError, ValueError) as exc:
        return None, version, f"{type(exc).__name__}: {exc}"
    return evaluate_churn(test["label"].to_numpy(), probability, champion.threshold), version, None


def _log_figures(
    model: ChurnModel, test: pd.DataFrame, probability: np.ndarray, baselines: dict[str, np.ndarray]
) -> None:
    from tasks import churn_plots

    names = list(model.feature_names)
    y = test["label"].to_numpy(dtype=int)
    figures = {"feature_importance.png": churn_plots.importance_figure(model.feature_importance())}
    sample = test.sample(min(len(test), 5000), random_state=0)
    figures["contribution_summary.png"] = churn_plots.contribution_summary_figure(
        sample[names], model.contributions(sample[names]), names
    )
    if len(np.unique(y)) == 2:
        curves = {"xgboost": probability} | baselines
        figures |= {
            "roc.png": churn_plots.roc_figure(y, curves),
            "pr.png": churn_plots.pr_figure(y, curves),
            "calibration.png": churn_plots.calibration_figure(y, probability),
            "confusion_matrix.png": churn_plots.confusion_figure(y, probability, model.threshold),
        }
    import matplotlib.pyplot as plt

    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}")
        plt.close(figure)


@contextlib.contextmanager
def cluster_client(settings: Settings) -> Iterator[Any]:
    """A client of the Dask cluster at `scale.dask_address`, or None (train locally)."""
    if not settings.scale.dask_address:
        yield None
        return
    from distributed import Client

    with Client(settings.scale.dask_address, set_as_default=False) as client:
        yield client


def bucket_training_set(
    partitions: LakePartitions, bucket: int, cutoffs: list[pd.Timestamp], horizon_days: int,
    definition: ChurnDefinition, lake_days: EventDays | None = None,
    labels_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    return build_training_set(read_bucket(partitions, bucket), cutoffs, horizon_days, definition,
                              lake_days, labels_until)


def churn_training_set(
    partitions: LakePartitions, cutoffs: list[pd.Timestamp], horizon_days: int,
    definition: ChurnDefinition, client: Any = None, labels_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Point-in-time rows built bucket by bucket (on the cluster's workers with a client),
    in the order of one whole-population build; labelled up to `labels_until` (as-of)."""
    buckets = range(partitions.buckets)
    lake_days = lake_event_days(partitions)  # every bucket sees the whole lake's coverage
    if client is None:
        frames = [bucket_training_set(partitions, b, cutoffs, horizon_days, definition,
                                      lake_days, labels_until) for b in buckets]
    else:
        futures = [client.submit(bucket_training_set, partitions, b, cutoffs, horizon_days,
                                 definition, lake_days, labels_until, pure=False)
                   for b in buckets]
        frames = client.gather(futures)
    return combine_training_sets(frames)


def segmentation_training_features(
    partitions: LakePartitions, cutoff: pd.Timestamp
) -> pd.DataFrame:
    """Segmentation features of every live customer, bucket by bucket."""
    features, terms = [], []
    for bucket in range(partitions.buckets):
        tables = read_bucket(partitions, bucket)
        features.append(build_segmentation_features(tables, cutoff))
        terms.append(segmentation_population_terms(tables, cutoff))
    return combine_segmentation_features(features, terms)


@task(name="train-churn")
def train_churn_task(
    settings: Settings, as_of: dt.date, partitions: LakePartitions, dry_run: bool = False
) -> TrainResult:
    """Build point-in-time data, tune, calibrate, evaluate on test, register as challenger,
    and promote to champion only by the rules in models/promotion.py.

    A dry run registers the version without alias or promotion (`promoted` then says
    what a real night would have decided)."""
    c = settings.churn
    cutoffs, partial = churn_cutoffs(settings, as_of)
    with cluster_client(settings) as client:
        data = churn_training_set(partitions, cutoffs + partial, c.horizon_days, c.definition,
                                  client, labels_until=as_of_cutoff(as_of))
        splits = _split_training_set(settings, as_of, data, cutoffs)
        del data  # the splits are copies: at 100k customers this frees a third of the peak
        # Scoring reads as much usage history as the newest training rows could.
        history_days = scoring_history_days(lake_event_days(partitions), cutoffs + partial)
        return _train_churn(settings, as_of, splits, cutoffs, client, dry_run, history_days)


def _split_training_set(
    settings: Settings, as_of: dt.date, data: pd.DataFrame, cutoffs: list[pd.Timestamp]
) -> ChurnSplits:
    c = settings.churn
    churners = int(data["label"].sum()) if len(data) else 0
    if churners < 10 or churners == len(data):
        raise NotEnoughTrainingDataError(
            f"training data for as-of {as_of}: {len(data)} customer-cutoffs with {churners} "
            f"churners over cutoffs {cutoffs[0].date()}..{cutoffs[-1].date()}; need at least 10 "
            "churners and some non-churners (is the history long enough for the horizon?)"
        )
    try:
        return split_train_valid_test(data, c.validation_share, c.test_share,
                                      c.test_cutoffs, c.seed)
    except ValueError as exc:
        raise NotEnoughTrainingDataError(f"training data for as-of {as_of}: {exc}") from None


def _train_churn(
    settings: Settings, as_of: dt.date, splits: ChurnSplits, cutoffs: list[pd.Timestamp],
    client: Any, dry_run: bool = False, history_days: dict[str, float] | None = None,
) -> TrainResult:
    c = settings.churn
    for side, frame in (("train", splits.train), ("validation", splits.valid),
                        ("latest-cutoff calibration", splits.calibration)):
        if frame["label"].nunique() < 2:
            raise NotEnoughTrainingDataError(
                f"training data for as-of {as_of}: the {side} split ({len(frame)} rows) has no "
                "churners or no non-churners; simulate/extract more history or customers"
            )
    names = list(CHURN_FEATURE_NAMES)
    # How many cutoffs, how far apart: decided out of time on the latest labelled cutoff.
    candidates = cutoff_candidates(cutoffs, c.test_cutoffs, list(c.cutoff_candidates))
    tune: Tuner = tune_churn_model
    if client is not None:  # boosters fitted across the cluster
        from models.churn_dask import tune_churn_model_dask

        tune = partial(tune_churn_model_dask, client)
    latest = latest_refit_rows(settings, splits)
    model, trials, choice = fit_churn_model(
        splits.train, splits.valid, splits.calibration, candidates, names,
        churn_params(settings), c.tuning_trials, latest, tune)
    chosen = list(choice.cutoffs)
    train = training_rows(splits.train, chosen)  # and the partly labelled rows
    if latest is not None:  # and the latest cutoff's, which the winner was refitted with
        train = pd.concat([train, latest])
    valid = training_rows(splits.valid, chosen)
    test = splits.test
    model.history_days = dict(history_days or {})  # what scoring may read, as training could
    y_test = test["label"].to_numpy()
    probability = model.predict_proba(test)
    # The headline: the test customers at the latest labelled cutoff, out of time.
    metrics = headline_metrics(model, splits)
    pooled_metrics = evaluate_churn(splits.test_pooled["label"].to_numpy(),
                                    model.predict_proba(splits.test_pooled), model.threshold)
    whole_valid = valid.loc[~partly_labelled(valid)]  # labelled over the whole horizon
    valid_metrics = evaluate_churn(whole_valid["label"].to_numpy(),
                                   model.predict_proba(whole_valid), model.threshold)
    baseline_scores = {
        "logistic": LogisticBaseline(train.loc[~partly_labelled(train)], names, c.seed,
                                     c.baseline_max_rows).predict_proba(test),
        "heuristic": heuristic_churn_score(test),
    }
    baselines = {name: evaluate_ranking(y_test, s) for name, s in baseline_scores.items()}

    registry.configure(settings, "churn")
    champion, champion_version, champion_error = _champion_metrics(test)
    decision = decide_promotion(metrics, champion, promotion_rules(settings),
                                champion_version, champion_error)
    best = trials[0].params
    with mlflow.start_run(run_name=f"churn-{as_of.isoformat()}"):
        mlflow.log_params(vars(best) | {
            "horizon_days": c.horizon_days,
            "churn_definition": c.definition,
            "cutoffs": ",".join(str(x.date()) for x in chosen),
            "partly_labelled_cutoffs": ",".join(
                str(x.date()) for x in sorted(pd.unique(train.loc[partly_labelled(train),
                                                                  "cutoff"]))) or "none",
            "latest_cutoff_refit_rows": 0 if latest is None else len(latest),
            "cutoffs_built": ",".join(str(x.date()) for x in cutoffs),
            "cutoff_choice": choice.name,
            "test_cutoffs": ",".join(str(x.date()) for x in splits.test_cutoffs),
            "tuning_trials": len(trials),
            "calibration": model.calibrator.method,
            "features": ",".join(names),
            "trainer": "xgboost" if client is None else "xgboost.dask",
            "scoring_history_days": ",".join(f"{k}={v:g}" for k, v in
                                             model.history_days.items()) or "uncapped",
        })
        # Logged first and promoted on: the latest labelled cutoff's test customers.
        logged = (
            {f"test_{k}": v for k, v in metrics.items()}
            | {f"test_pooled_{k}": v for k, v in pooled_metrics.items()}
            | {f"valid_{k}": v for k, v in valid_metrics.items()}
            | {f"cutoff_check_{name}_roc_auc": v for name, v in choice.scores.items()}
            | {f"baseline_{b}_test_{k}": v for b, m in baselines.items() for k, v in m.items()}
            | {f"champion_test_{k}": v for k, v in (champion or {}).items()}
            | {"train_rows": len(train), "valid_rows": len(valid), "test_rows": len(test),
               "calibration_rows": len(splits.calibration),
               "test_pooled_rows": len(splits.test_pooled),
               "decision_threshold": float(model.threshold),
               "best_iteration": float(model.best_iteration),
               "promoted": float(decision.promote)}
        )
        mlflow.log_metrics({k: float(v) for k, v in logged.items() if not np.isnan(v)})
        mlflow.log_table(
            pd.DataFrame([vars(t.params) | {"valid_pr_auc": t.valid_pr_auc,
                                            "best_iteration": t.best_iteration} for t in trials]),
            artifact_file="tuning_trials.json",
        )
        _log_figures(model, test, probability, baseline_scores)
        example = valid[names].head(50)
        registered = registry.log_and_register(
            model, "predict_proba", registry.CHURN_MODEL, example,
            model.predict_proba(example), alias=None if dry_run else registry.CHALLENGER,
            tags={registry.DRY_RUN_AS_OF if dry_run else registry.TRAINED_AS_OF:
                  as_of.isoformat()},
        )
        record = decision.to_dict() | {"challenger_version": registered.version}
        mlflow.log_dict(record, "promotion.json")
        markdown = decision_markdown(decision, registered.version)
        mlflow.log_text(markdown, "promotion.md")
        if decision.promote and not dry_run:
            registry.promote(registry.CHURN_MODEL, registered.version, decision.reason)
    if dry_run:
        markdown += "\n\nDry run: registered without alias; nothing was promoted."
    create_markdown_artifact(markdown, key="churn-promotion",
                             description="Churn challenger against champion: the decision")
    return TrainResult(
        registered.name, registered.version, registered.run_id,
        metrics | {f"pooled_{k}": v for k, v in pooled_metrics.items()},
        promoted=decision.promote, promotion_reason=decision.reason,
        champion_version=registered.version if decision.promote else (champion_version or ""),
    )


@task(name="train-segmentation")
def train_segmentation_task(
    settings: Settings, as_of: dt.date, partitions: LakePartitions, dry_run: bool = False
) -> TrainResult:
    features = segmentation_training_features(partitions, as_of_cutoff(as_of))
    seg = settings.segmentation
    if len(features) < seg.k * 10:
        raise NotEnoughTrainingDataError(
            f"segmentation for as-of {as_of}: {len(features)} active customers, need at least "
            f"{seg.k * 10} for k={seg.k}"
        )
    space = ClusteringSpace(dict(seg.clustering_weights), tuple(seg.log_features))
    registry.configure(settings, "segmentation")
    try:  # names follow the champion's, so unchanged customers keep their segment
        previous, previous_version = registry.load_by_alias(registry.SEGMENT_MODEL)
    except LookupError:
        previous, previous_version = None, ""
    model = fit_segments(features, seg.k, seg.seed, seg.elasticity_prior, space, previous)
    assignment = model.assign(features)
    profiles = segment_profiles(features, assignment)
    silhouettes = silhouette_by_k(features, seg.k_sweep, seg.seed, space, seg.silhouette_sample)

    with mlflow.start_run(run_name=f"segmentation-{as_of.isoformat()}"):
        mlflow.log_params({"k": seg.k, "seed": seg.seed, "customers": len(features),
                           "clustering_weights": str(seg.clustering_weights),
                           "log_features": ",".join(seg.log_features),
                           "naming": model.naming, "previous_version": previous_version})
        mlflow.log_table(profiles.reset_index(), artifact_file="segment_profiles.json")
        metrics = {"inertia": float(getattr(model, "inertia", float("nan")))}
        metrics |= {f"silhouette_k{k}": v for k, v in silhouettes.items()}
        metrics |= {f"share_{name.replace(' ', '_').replace('-', '_')}": float(row.share)
                    for name, row in profiles.iterrows()}
        mlflow.log_metrics(metrics)
        example = features.head(50)
        registered = registry.log_and_register(
            model, "assign", registry.SEGMENT_MODEL, example, model.assign(example),
            alias=None if dry_run else registry.CHAMPION,
            tags={registry.DRY_RUN_AS_OF: as_of.isoformat()} if dry_run else None,
        )
    return TrainResult(registered.name, registered.version, registered.run_id, metrics)
