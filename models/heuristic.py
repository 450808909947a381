"""A transparent weighted-score baseline the churn model must beat (pure).

The app's own heuristic is not in the lake, so this baseline uses the paper's
claimed importances as weights (usage decline .23, days since last login .18,
payment failures 90d .15, support tickets .12, contract age .10; normalised to
sum to 1) over signals scaled to 0..1:

    usage decline   clip(usage_decline_30d_pct / 100, 0, 1)   (growth counts 0)
    login gap       clip(days_since_last_login / 30, 0, 1)    (a month away = max)
    failures        clip(payment_failures_90d / 3, 0, 1)
    tickets         clip(support_tickets_90d / 5, 0, 1)
    new contract    1 - clip(contract_age_months / 12, 0, 1) (first year riskier)

The score is a ranking in [0, 1], not a calibrated probability: compare it to
the model on ROC/PR-AUC, not on Brier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HEURISTIC_WEIGHTS: dict[str, float] = {
    "usage_decline_30d_pct": 0.23,
    "days_since_last_login": 0.18,
    "payment_failures_90d": 0.15,
    "support_tickets_90d": 0.12,
    "contract_age_months": 0.10,
}


def heuristic_signals(features: pd.DataFrame) -> pd.DataFrame:
    """The five signals, each in [0, 1] (missing values count as no risk)."""

    def col(name: str) -> np.ndarray:
        return pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float)

    signals = pd.DataFrame(
        {
            "usage_decline_30d_pct": col("usage_decline_30d_pct") / 100.0,
            "days_since_last_login": col("days_since_last_login") / 30.0,
            "payment_failures_90d": col("payment_failures_90d") / 3.0,
            "support_tickets_90d": col("support_tickets_90d") / 5.0,
            "contract_age_months": 1.0 - np.clip(col("contract_age_months") / 12.0, 0, 1),
        },
        index=features.index,
    )
    signals.loc[features["contract_age_months"].isna().to_numpy(), "contract_age_months"] = 0.0
    return signals.fillna(0.0).clip(0.0, 1.0)


def heuristic_churn_score(features: pd.DataFrame) -> np.ndarray:
    """Weighted sum of the signals, in [0, 1]."""
    weights = pd.Series(HEURISTIC_WEIGHTS)
    signals = heuristic_signals(features)[weights.index]
    return signals.to_numpy() @ (weights / weights.sum()).to_numpy()
