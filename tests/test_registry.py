"""Champion/challenger on a real MLflow SQLite registry, the `bbx model` commands,
training when due, and per-customer reasons through scoring and publishing.

A synthetic lake (tests/unit/synthetic.py) written as Parquet stands in for the
extract; the tasks run under the session's Prefect test API.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from bbx.lake.buckets import LakePartitions, partition_lake
from bbx.settings import Settings, load_settings
from flows.buckets import score_in_buckets
from models.app_documents import score_documents
from tasks import registry
from tasks import train as train_tasks
from tasks.train import train_churn_task, train_segmentation_task, training_due_task
from tests.conftest import new_home
from tests.unit.synthetic import make_tables

AS_OF = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("lake")
    paths = {}
    for name, frame in vars(make_tables(n_customers=1500, seed=31)).items():
        frame = frame.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column].astype("datetime64[ms, UTC]")
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths[name] = str(path)
    return paths


@pytest.fixture()
def home_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: None,
                  empty_mlflow_store: Path) -> Settings:
    monkeypatch.setenv("BBX_HOME", str(new_home(tmp_path / "home", empty_mlflow_store)))
    monkeypatch.setenv("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # Fewer training cutoffs than the default sixteen: promotion, the headline metric and
    # the reasons do not depend on how many, and each cutoff's rows cost a feature build.
    monkeypatch.setenv("BBX_CHURN__TRAINING_CUTOFFS", "6")
    monkeypatch.setenv("BBX_CHURN__REFIT_WITH_LATEST_CUTOFF", "true")  # the defaults' (suite: off)
    return load_settings()


def _split(settings: Settings, lake: dict[str, str]) -> LakePartitions:
    """The lake in customer buckets, as the nightly flow hands it to training and scoring."""
    return partition_lake(settings, AS_OF, lake)


def _alias(settings: Settings, alias: str) -> str:
    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    return str(client.get_model_version_by_alias(registry.CHURN_MODEL, alias).version)


def _worse_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next training deliberately worse: it learns from shuffled labels."""
    real = train_tasks.tune_churn_model

    def shuffled(train, valid, names, params, trials):
        rng = np.random.default_rng(0)
        train = train.assign(label=rng.permutation(train["label"].to_numpy()))
        return real(train, valid, names, params, trials)

    monkeypatch.setattr(train_tasks, "tune_churn_model", shuffled)


@pytest.mark.slow  # trains and registers real models
def test_worse_challenger_is_not_promoted_and_promote_rollback_move_the_alias(
    home_settings: Settings, lake: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = train_churn_task(home_settings, AS_OF, _split(home_settings, lake))
    assert first.promoted and "first model" in first.promotion_reason
    assert _alias(home_settings, "champion") == first.version
    assert _alias(home_settings, "challenger") == first.version
    assert first.metrics["roc_auc"] > 0.8  # honest test metrics, not validation

    _worse_tuning(monkeypatch)
    worse = train_churn_task(home_settings, AS_OF, _split(home_settings, lake))
    assert worse.version != first.version
    assert not worse.promoted
    assert "does not beat" in worse.promotion_reason
    assert f"v{first.version} stays" in worse.promotion_reason
    assert worse.champion_version == first.version
    assert _alias(home_settings, "champion") == first.version
    assert _alias(home_settings, "challenger") == worse.version
    # The run says why, in its artifact.
    client = MlflowClient(tracking_uri=home_settings.mlflow_uri)
    record = json.loads(Path(client.download_artifacts(worse.run_id, "promotion.json"))
                        .read_text())
    assert record["promote"] is False and record["champion_version"] == first.version
    assert record["challenger"]["pr_auc"] < record["champion"]["pr_auc"]
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert {f"plots/{n}.png" for n in ("roc", "pr", "calibration", "confusion_matrix",
                                       "feature_importance", "contribution_summary")} <= artifacts

    # By hand: promote the challenger, then roll back to the champion it replaced.
    from bbxcli.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["model", "promote", worse.version, "--reason", "test"])
    assert result.exit_code == 0, result.output
    assert _alias(home_settings, "champion") == worse.version
    tags = registry.version_tags(registry.CHURN_MODEL, worse.version)
    assert tags[registry.PROMOTED_FROM] == first.version
    listing = runner.invoke(app, ["model", "list"])
    assert listing.exit_code == 0 and "champion" in listing.output

    result = runner.invoke(app, ["model", "rollback"])
    assert result.exit_code == 0, result.output
    assert _alias(home_settings, "champion") == first.version
    # The first champion replaced nobody: nothing further to roll back to.
    result = runner.invoke(app, ["model", "rollback"])
    assert result.exit_code == 1
    result = runner.invoke(app, ["model", "promote", "99"])
    assert result.exit_code == 1 and _alias(home_settings, "champion") == first.version


def _assert_headline_metric_is_the_latest_cutoff_alone(
    home_settings: Settings, lake: dict[str, str], trained
) -> None:
    """The test_* metrics (logged, promoted on) equal a recomputation on the test
    customers at the latest labelled cutoff only; the pooled figure is named as such."""
    from bbx.lake.history import read_tables
    from features.cutoffs import training_cutoffs
    from features.training import build_training_set, split_train_valid_test
    from models.metrics import evaluate_churn

    c = home_settings.churn
    cutoffs = training_cutoffs(AS_OF, c.horizon_days, c.training_cutoffs, c.cutoff_spacing_days)
    data = build_training_set(read_tables(lake), cutoffs, c.horizon_days, c.definition)
    latest = max(cutoffs)
    test = split_train_valid_test(data, c.validation_share, c.test_share, c.test_cutoffs,
                                  c.seed).test
    assert (test["cutoff"] == latest).all()
    model = registry.load_version(registry.CHURN_MODEL, trained.version)
    expected = evaluate_churn(test["label"].to_numpy(), model.predict_proba(test),
                              model.threshold)
    logged = MlflowClient(tracking_uri=home_settings.mlflow_uri).get_run(
        trained.run_id).data.metrics
    for key in ("roc_auc", "pr_auc", "brier", "ece", "f1"):
        assert logged[f"test_{key}"] == pytest.approx(expected[key], abs=1e-9), key
        assert trained.metrics[key] == pytest.approx(expected[key], abs=1e-9), key
        assert f"test_pooled_{key}" in logged
    assert logged["test_rows"] == len(test)
    # No booster row is at the latest cutoff: the chosen training cutoffs are earlier.
    params = MlflowClient(tracking_uri=home_settings.mlflow_uri).get_run(
        trained.run_id).data.params
    assert all(pd.Timestamp(d, tz="UTC") < latest for d in params["cutoffs"].split(","))
    # The partly labelled cutoffs trained on come after it (their rows: other customers).
    partial = params["partly_labelled_cutoffs"].split(",")
    assert partial and all(pd.Timestamp(d, tz="UTC") > latest for d in partial)
    # Calibrated there, then refitted with the train customers' rows there: none a test
    # customer's, and the registered booster is the refitted one.
    split = split_train_valid_test(data, c.validation_share, c.test_share, c.test_cutoffs,
                                   c.seed)
    assert int(params["latest_cutoff_refit_rows"]) == len(split.latest_train) > 0
    assert set(split.latest_train["user_id"]).isdisjoint(set(test["user_id"]))
    assert logged["best_iteration"] == model.best_iteration


@pytest.mark.slow  # trains and registers real models
def test_training_when_due_headline_metric_and_reasons_reach_the_documents(
    home_settings: Settings, lake: dict[str, str]
) -> None:
    assert training_due_task(home_settings, AS_OF, force=False).due  # no champion yet
    trained = train_churn_task(home_settings, AS_OF, _split(home_settings, lake))
    _assert_headline_metric_is_the_latest_cutoff_alone(home_settings, lake, trained)
    train_segmentation_task(home_settings, AS_OF, _split(home_settings, lake))
    every = home_settings.churn.retrain_every_days
    soon = training_due_task(home_settings, AS_OF + dt.timedelta(days=every - 1), force=False)
    assert not soon.due and "days ago" in soon.reason
    assert training_due_task(home_settings, AS_OF + dt.timedelta(days=every), force=False).due
    assert training_due_task(home_settings, AS_OF, force=True).due

    scored = score_in_buckets(home_settings, AS_OF, _split(home_settings, lake))
    scores = pd.read_parquet(scored.path)
    assert scored.churn_model_version == trained.version
    assert scores["churn_reasons"].map(type).eq(str).all()  # flat Parquet: JSON text
    documents = score_documents(scores, AS_OF, "run-1", dt.datetime.now(dt.UTC))
    k = home_settings.churn.reasons_per_customer
    for doc in documents[:200]:
        reasons = doc["churnReasons"]
        assert len(reasons) <= k  # only features that raise the risk are reasons
        assert all(set(r) == {"feature", "value", "effect", "text"} for r in reasons)
        effects = [float(r["effect"]) for r in reasons]
        assert all(e > 0 for e in effects) and effects == sorted(effects, reverse=True)
        for r in reasons:
            if r["value"] is not None:
                assert str(r["value"]) in r["text"]


def test_a_moved_home_with_an_mlflow_store_stops_clearly(tmp_path: Path) -> None:
    import shutil

    first = load_settings(home=tmp_path / "first")
    registry.configure(first, "churn")
    moved = load_settings(home=tmp_path / "moved")
    shutil.copytree(first.home, moved.home)
    with pytest.raises(registry.MlflowStoreMovedError,
                       match=r"keeps experiment 'churn' artifacts at .*first.*copied or moved"):
        registry.configure(moved, "churn")
    # The night checks before it extracts anything.
    with pytest.raises(registry.MlflowStoreMovedError):
        registry.check_store_location(moved)
    registry.check_store_location(first)
    registry.configure(first, "churn")  # the original home still works
