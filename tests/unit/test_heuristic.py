"""The weighted baseline: bounded, monotone in each signal, and better than chance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.training import build_training_set
from models.heuristic import HEURISTIC_WEIGHTS, heuristic_churn_score
from tests.unit.synthetic import make_tables

CALM = {
    "usage_decline_30d_pct": -20.0,
    "days_since_last_login": 0.0,
    "payment_failures_90d": 0.0,
    "support_tickets_90d": 0.0,
    "contract_age_months": 24.0,
}


def test_bounds_and_extremes() -> None:
    calm = pd.DataFrame([CALM])
    worst = pd.DataFrame(
        [
            {
                **CALM,
                "usage_decline_30d_pct": 100.0,
                "days_since_last_login": 90,
                "payment_failures_90d": 5,
                "support_tickets_90d": 9,
                "contract_age_months": 0.0,
            }
        ]
    )
    assert heuristic_churn_score(calm)[0] == pytest.approx(0.0)
    assert heuristic_churn_score(worst)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "worse"),
    [
        ("usage_decline_30d_pct", 60.0),
        ("days_since_last_login", 20.0),
        ("payment_failures_90d", 2.0),
        ("support_tickets_90d", 3.0),
        ("contract_age_months", 2.0),
    ],
)
def test_each_signal_raises_the_score(name: str, worse: float) -> None:
    rows = pd.DataFrame([CALM, {**CALM, name: worse}])
    score = heuristic_churn_score(rows)
    assert score[1] > score[0]
    assert name in HEURISTIC_WEIGHTS


def test_better_than_chance_on_synthetic_lake() -> None:
    tables = make_tables(n_customers=400, seed=4)
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    data = build_training_set(tables, [as_of - pd.Timedelta(days=30)], 30, "cancelled")
    assert roc_auc_score(data["label"], heuristic_churn_score(data)) > 0.6
    assert np.isfinite(heuristic_churn_score(data)).all()
