"""Combine churn risk, segment and price into one score row per customer (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.pricing import PricingWeights, dynamic_price, price_terms, risk_band, risk_score


@dataclass(frozen=True)
class ScoringPolicy:
    weights: PricingWeights
    min_ratio: float
    max_ratio: float
    band_medium: float
    band_high: float
    currency: str
    risk_score_periods: float = 1.0  # label horizons the risk score looks ahead


def assemble_scores(
    customers: pd.DataFrame,
    churn_probability: np.ndarray,
    segments: pd.DataFrame,
    plans: pd.DataFrame,
    demand: float,
    policy: ScoringPolicy,
) -> pd.DataFrame:
    """One row per customer in `customers` (index user_id, with a `plan_id` column).

    `segments` is the segment model's assignment (segment_id, segment_name,
    elasticity) indexed by user_id; `plans` the lake's plans table.
    """
    plan_info = plans.set_index("plan_id")[["plan_name", "monthly_price"]]
    scores = pd.DataFrame(index=customers.index)
    scores["plan_id"] = customers["plan_id"].to_numpy()
    for column in ("subscription_id", "billing_cycle"):  # pricing prices each cycle
        if column in customers.columns:
            scores[column] = customers[column].to_numpy()
    scores = scores.join(plan_info, on="plan_id")
    if scores["monthly_price"].isna().any():
        unknown = scores.loc[scores["monthly_price"].isna(), "plan_id"].unique()[:5]
        raise ValueError(f"customers on plans with no monthly price: {list(unknown)}")
    scores["churn_probability"] = np.clip(np.asarray(churn_probability, dtype=float), 0.0, 1.0)
    scores["risk_score"] = risk_score(
        scores["churn_probability"].to_numpy(), policy.risk_score_periods
    )
    scores["risk_band"] = risk_band(
        scores["risk_score"].to_numpy(), policy.band_medium, policy.band_high
    )
    scores = scores.join(segments[["segment_id", "segment_name", "elasticity"]], how="left")
    if scores["segment_id"].isna().any():
        missing = int(scores["segment_id"].isna().sum())
        raise ValueError(f"{missing} scored customers have no segment assignment")

    base = scores["monthly_price"].to_numpy(dtype=float)
    demand_vector = np.full(len(scores), float(demand))
    elasticity = scores["elasticity"].to_numpy(dtype=float)
    probability = scores["churn_probability"].to_numpy()
    high_risk = (scores["risk_band"] == "high").to_numpy()
    scores["base_price"] = base
    scores["demand"] = demand_vector
    scores["dynamic_price"] = dynamic_price(
        base, demand_vector, elasticity, probability, policy.weights,
        policy.min_ratio, policy.max_ratio, high_risk,
    )
    terms = price_terms(demand_vector, elasticity, probability, policy.weights)
    for name, values in terms.items():
        scores[f"price_term_{name}"] = values
    scores["currency"] = policy.currency
    return scores.drop(columns=["monthly_price"])
