"""`bbx evaluate`: metrics on hand-made cases, the truth join, and clear failures."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pymongo import MongoClient
from sklearn import metrics as skm
from typer.testing import CliRunner

from bbx import lake
from bbx.settings import Settings
from bbxcli.cli import app
from bbxcli.evaluate import (
    ScoresMissingError,
    churn_metrics,
    compare,
    evaluate,
    expand_as_of,
)
from models.metrics import expected_calibration_error
from simulator import TRUTH_COLLECTION, simulate
from simulator.catalog import SEGMENTS
from simulator.truth import TruthUnavailableError
from simulator.world import SimulationSpec

END = dt.date(2026, 11, 25)
AS_OF = END + dt.timedelta(days=1)

OUTCOME = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 0])
PROBABILITY = np.array([0.05, 0.15, 0.80, 0.35, 0.40, 0.95, 0.10, 0.62, 0.55, 0.02])


def test_ece_by_hand() -> None:
    # Bins of width 0.1: [0.05, 0.02] in bin 0, 0.15 and 0.10 in bin 1, ...
    y = np.array([0, 1, 0, 1])
    p = np.array([0.05, 0.05, 0.95, 1.0])  # 1.0 falls in the last bin
    # bin 0: 2 rows, rate 0.5, mean p 0.05 -> 0.45; bin 9: 2 rows, rate 0.5, mean 0.975 -> 0.475
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.475)
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def test_churn_metrics_match_sklearn() -> None:
    threshold = 0.5
    got = churn_metrics(OUTCOME, PROBABILITY, threshold)
    predicted = (threshold <= PROBABILITY).astype(int)
    bins = np.minimum((PROBABILITY * 10).astype(int), 9)
    ece = sum(
        np.mean(bins == b) * abs(OUTCOME[bins == b].mean() - PROBABILITY[bins == b].mean())
        for b in set(bins.tolist())
    )
    expected = {
        "roc_auc": skm.roc_auc_score(OUTCOME, PROBABILITY),
        "pr_auc": skm.average_precision_score(OUTCOME, PROBABILITY),
        "f1": skm.f1_score(OUTCOME, predicted),
        "precision": skm.precision_score(OUTCOME, predicted),
        "recall": skm.recall_score(OUTCOME, predicted),
        "brier": float(np.mean((PROBABILITY - OUTCOME) ** 2)),
        "ece": ece,
    }
    assert got == pytest.approx(expected)
    # 4 churners, predicted churners are rows 2, 5, 7, 8: 3 right -> precision 3/4, recall 3/4.
    assert got["precision"] == pytest.approx(0.75) and got["recall"] == pytest.approx(0.75)


def test_undefined_metrics_are_none() -> None:
    got = churn_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.4]), 0.5)
    assert got["roc_auc"] is None and got["pr_auc"] is None
    assert got["brier"] == pytest.approx(np.mean([0.01, 0.04, 0.09, 0.16]))


def test_compare_pools_dates_and_uses_each_nights_threshold() -> None:
    days = [dt.date(2026, 10, 1), dt.date(2026, 11, 1)]
    users = [f"{i:024x}" for i in range(5)]
    scores = pd.DataFrame(
        {
            "user_id": users * 2,
            "as_of": [days[0]] * 5 + [days[1]] * 5,
            "churn_probability": PROBABILITY,
            "decision_threshold": [0.5] * 5 + [0.3] * 5,
            "segment_id": [0, 0, 1, 1, 2] * 2,
        }
    )
    truth = pd.DataFrame(
        {
            "user_id": users * 2 + ["f" * 24],  # a truth row with no score is ignored
            "as_of": [days[0]] * 5 + [days[1]] * 5 + [days[1]],
            "latent_segment": ["A", "A", "B", "B", "B"] * 2 + ["A"],
            "p_cancel_30d": list(OUTCOME * 0.9 + 0.05) + [0.5],
            "p_leave_30d": 0.5,
            "cancelled_30d": list(OUTCOME.astype(bool)) + [True],
            "left_30d": True,
        }
    )
    got = compare(scores, truth, "cancelled")
    assert got["churn"]["n"] == 10 and got["churn"]["positives"] == 4
    thresholds = np.array([0.5] * 5 + [0.3] * 5)
    predicted = (thresholds <= PROBABILITY).astype(int)
    assert got["churn"]["model"]["recall"] == pytest.approx(skm.recall_score(OUTCOME, predicted))
    assert got["churn"]["model"]["precision"] == pytest.approx(
        skm.precision_score(OUTCOME, predicted)
    )
    assert got["churn"]["bayes"]["roc_auc"] == 1.0 and got["churn"]["bayes"]["f1"] == 1.0
    assert got["segments"]["ari"] == pytest.approx(
        skm.adjusted_rand_score(["A", "A", "B", "B", "B"] * 2, [0, 0, 1, 1, 2] * 2)
    )
    assert set(got) == {"churn", "segments"}
    assert set(got["churn"]) == {"model", "bayes", "n", "positives"}


def _write_scores(settings: Settings, as_of: dt.date, frame: pd.DataFrame) -> None:
    path = lake.scores_path(settings.lake_dir, as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def test_evaluate_joins_the_simulations_truth(settings: Settings, mongo_client: MongoClient):
    db = mongo_client[settings.mongo.database]
    simulate(db, customers=300, days=70, seed=4, end=END, annual_churn=0.6)
    SimulationSpec(customers=300, days=70, seed=4, end=END, annual_churn=0.6).save(
        settings.home / "simulation" / "spec.json")
    truth = {
        str(t["userId"]): t
        for t in db[TRUTH_COLLECTION].find(
            {}, {"userId": 1, "segmentIndex": 1, "churnProbability30d": 1}
        )
    }
    # Scores that are the truth itself: the model then equals the reference, ARI is 1.
    rows = [
        {
            "user_id": user,
            "churn_probability": entry["cancel"],
            "decision_threshold": 0.3,
            "segment_id": t["segmentIndex"],
            "segment_name": SEGMENTS[t["segmentIndex"]].name,
        }
        for user, t in truth.items()
        for entry in t["churnProbability30d"]
        if entry["asOf"].date() == AS_OF
    ]
    _write_scores(settings, AS_OF, pd.DataFrame(rows))
    got = evaluate(settings, db, [AS_OF])
    assert got["churn"]["n"] == len(rows) > 200
    assert got["churn"]["model"] == got["churn"]["bayes"]
    assert got["segments"]["ari"] == pytest.approx(1.0)
    # The observable reference: what the documents allow, between chance and the oracle.
    observable = got["churn"]["observable"]
    assert set(observable) == {"roc_auc", "pr_auc", "f1", "precision", "recall", "brier",
                               "ece"}
    assert 0.5 < observable["roc_auc"] <= got["churn"]["bayes"]["roc_auc"] + 0.02
    # The outcome is what happened after the history: cancellations in the hidden days.
    future = db[TRUTH_COLLECTION].count_documents(
        {
            "churnDate": {
                "$gte": dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
                "$lt": dt.datetime(2026, 12, 26, tzinfo=dt.UTC),
            }
        }
    )
    assert 0 < got["churn"]["positives"] <= future
    assert (
        db.subscriptions.count_documents(
            {"cancellation.requestDate": {"$gte": dt.datetime(2026, 11, 26, tzinfo=dt.UTC)}}
        )
        == 0
    )

    with pytest.raises(TruthUnavailableError, match="available as-of dates"):
        _write_scores(settings, dt.date(2026, 11, 20), pd.DataFrame(rows))
        evaluate(settings, db, [dt.date(2026, 11, 20)])


def test_evaluate_fails_clearly_without_scores(settings: Settings, mongo_client: MongoClient):
    with pytest.raises(ScoresMissingError, match="no scores in the lake for 2026-11-26"):
        evaluate(settings, mongo_client[settings.mongo.database], [AS_OF])
    with pytest.raises(ScoresMissingError, match="no scored dates"):
        expand_as_of(["2026-10-01..2026-11-30"], settings.lake_dir)


def test_cli_exits_non_zero_when_scores_are_missing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BBX_HOME", str(settings.home))
    monkeypatch.setenv("MONGODB_URI", settings.mongo.uri or "")
    monkeypatch.setenv("BBX_MONGO__DATABASE", settings.mongo.database)
    result = CliRunner().invoke(app, ["evaluate", "--as-of", "2026-11-26", "--json"])
    assert result.exit_code == 1
    assert "no scores in the lake for 2026-11-26" in result.output
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)
