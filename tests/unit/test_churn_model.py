"""The churn model learns a planted signal, calibrates, and survives pickling."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from features.registry import CHURN_FEATURE_NAMES
from features.training import build_training_set, split_by_customer
from models.churn import ChurnParams, evaluate_churn, train_churn_model
from tests.unit.synthetic import make_tables

FEATURES = ["usage_decline_30d_pct", "days_since_last_login", "payment_failures_90d", "noise"]
FAST = ChurnParams(n_estimators=150, max_depth=3, learning_rate=0.1, early_stopping_rounds=20)


def planted(n: int, seed: int) -> pd.DataFrame:
    """~8 % churners; risk rises with usage decline, login gap and failures."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "usage_decline_30d_pct": rng.uniform(-100, 100, n),
            "days_since_last_login": rng.exponential(10, n),
            "payment_failures_90d": rng.poisson(0.3, n).astype(float),
            "noise": rng.normal(size=n),
        }
    )
    logit = (
        -4.5
        + 0.025 * x["usage_decline_30d_pct"]
        + 0.08 * x["days_since_last_login"]
        + 0.9 * x["payment_failures_90d"]
    )
    x["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x["user_id"] = [f"{seed:02x}{i:022x}" for i in range(n)]
    return x


@pytest.fixture(scope="module")
def fitted():
    train, valid, test = planted(4000, 1), planted(1500, 2), planted(3000, 3)
    return train_churn_model(train, valid, FEATURES, FAST), test


def test_learns_planted_signal_on_held_out(fitted) -> None:
    model, test = fitted
    p = model.predict_proba(test)
    assert p.shape == (len(test),)
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(test["label"], p) > 0.8
    importance = model.feature_importance()
    assert importance["noise"] < importance["usage_decline_30d_pct"]
    assert 0.0 < model.threshold < 1.0


def test_calibration_beats_raw_brier_on_held_out(fitted) -> None:
    model, test = fitted
    raw = model.predict_raw(test)
    calibrated = model.predict_proba(test)
    y = test["label"]
    assert brier_score_loss(y, calibrated) <= brier_score_loss(y, raw) + 1e-4
    # Weighted training inflates raw scores; calibrated ones match the base rate.
    assert raw.mean() > 1.3 * y.mean()
    assert calibrated.mean() == pytest.approx(y.mean(), abs=0.03)


def test_pickles_with_cloudpickle(fitted) -> None:
    model, test = fitted
    clone = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(test), model.predict_proba(test))
    # Column order of the input does not matter: the model selects its features.
    shuffled = test[list(reversed(test.columns))]
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(test))
    with pytest.raises(KeyError):
        model.predict_proba(test.drop(columns=["noise"]))


def test_platt_when_few_churners() -> None:
    train, valid = planted(1500, 4), planted(200, 5)
    model = train_churn_model(train, valid, FEATURES, FAST)
    assert model.calibrator.method == "platt"
    p = model.predict_proba(planted(500, 6))
    assert ((p >= 0) & (p <= 1)).all()


def test_one_class_is_rejected() -> None:
    train = planted(300, 7).assign(label=0)
    with pytest.raises(ValueError, match="churners"):
        train_churn_model(train, planted(100, 8), FEATURES, FAST)


def test_evaluate_churn_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = evaluate_churn(y, p, threshold=0.5)
    # predicted [0, 1, 0, 1]: tp 1, fp 1, fn 1.
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["roc_auc"] == 0.75 and m["base_rate"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert set(m) == {"roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "base_rate"}
    assert np.isnan(evaluate_churn(np.array([0, 0]), np.array([0.1, 0.2]), 0.5)["roc_auc"])


def test_end_to_end_on_synthetic_lake() -> None:
    tables = make_tables(n_customers=800, seed=21)
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    cutoffs = [as_of - pd.Timedelta(days=30 + 30 * i) for i in range(4)]
    data = build_training_set(tables, cutoffs, 30, "cancelled")
    train, valid = split_by_customer(data, 0.3, seed=7)
    model = train_churn_model(train, valid, list(CHURN_FEATURE_NAMES), FAST)
    p = model.predict_proba(valid)
    assert roc_auc_score(valid["label"], p) > 0.8
