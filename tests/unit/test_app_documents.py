"""The app's documents and the publish contract, built from a scores table (pure)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from models.app_documents import (
    PublishCheckError,
    ScoreDisplay,
    check_scores,
    first_order_revenue_change,
    model_metrics_document,
    plan_proposals,
    proposal_document,
    scan_history_document,
    score_documents,
)
from models.plan_prices import change_id

AS_OF = dt.date(2026, 3, 1)
BASIC, PREMIUM = "65f0a1b2c3d4e5f601234567", "65f0a1b2c3d4e5f601234568"


def _scores(n: int = 6, price_ratio: float = 0.9) -> pd.DataFrame:
    plan = [BASIC if i % 2 else PREMIUM for i in range(n)]
    base = [499.0 if p == BASIC else 1199.0 for p in plan]
    risk = [10.0 + 80.0 * i / max(n - 1, 1) for i in range(n)]
    return pd.DataFrame({
        "user_id": [f"65f0a1b2c3d4e5f6010000{i:02d}" for i in range(n)],
        "plan_id": plan,
        "plan_name": ["Basic" if p == BASIC else "Premium" for p in plan],
        "churn_probability": [r / 200 for r in risk],
        "risk_score": risk,
        "risk_band": ["high" if r > 70 else "medium" if r >= 40 else "low" for r in risk],
        "segment_id": [i % 2 for i in range(n)],
        "segment_name": ["Budget Users" if i % 2 else "Value-Seekers" for i in range(n)],
        "elasticity": [-1.2] * n,
        "base_price": base,
        "dynamic_price": [b * price_ratio for b in base],
        "demand": [0.5] * n,
        "price_term_demand": [0.05] * n,
        "price_term_elasticity": [-0.06] * n,
        "price_term_risk": [-0.01] * n,
        "currency": ["INR"] * n,
        "churn_model_version": ["3"] * n,
        "segment_model_version": ["2"] * n,
    })


def test_check_scores_reports_nulls_duplicates_and_probabilities() -> None:
    scores = _scores(4)
    scores.loc[1, "user_id"] = scores.loc[0, "user_id"]
    scores.loc[2, "churn_probability"] = 1.5
    scores.loc[3, "segment_id"] = None
    with pytest.raises(PublishCheckError) as info:
        check_scores(scores, 0.8, 1.2)
    message = str(info.value)
    assert "duplicated user_id" in message
    assert "outside [0, 1]" in message
    assert "segment_id" in message


def test_check_scores_bounds_prices_by_ratio_or_by_band() -> None:
    check_scores(_scores(4, price_ratio=0.9), 0.8, 1.2)
    with pytest.raises(PublishCheckError, match="4 prices outside"):
        check_scores(_scores(4, price_ratio=0.7), 0.8, 1.2)
    banded = _scores(4, price_ratio=0.7).assign(band_low=300.0, band_high=2000.0)
    check_scores(banded, 0.8, 1.2)  # the band, not the ratios, bounds a priced score


def test_score_documents_keep_ids_as_strings_and_decode_reasons() -> None:
    scores = _scores(2)
    reasons = [{"feature": "tickets_30d", "value": 3, "effect": 0.2, "text": "3 tickets"}]
    scores["churn_reasons"] = [json.dumps(reasons), None]
    at = dt.datetime(2026, 3, 2, 1, tzinfo=dt.UTC)
    first, second = score_documents(scores, AS_OF, "run-1", at)
    assert first["userId"] == scores.loc[0, "user_id"] and first["planId"] == PREMIUM
    assert first["asOf"] == dt.datetime(2026, 3, 1, tzinfo=dt.UTC) and first["createdAt"] == at
    assert first["churnReasons"] == reasons and second["churnReasons"] == []
    assert first["price"] == {"plan": "Premium", "base": 1199.0,
                              "dynamic": round(1199.0 * 0.9, 2), "currency": "INR"}
    assert first["pricingArm"] is None and first["priceWeights"] is None
    assert first["modelVersions"] == {"churn": "3", "segmentation": "2"}


def test_a_priced_score_carries_its_band_per_billing_cycle() -> None:
    scores = _scores(1).assign(
        anchor_price=1000.0, band_low=800.0, band_high=1200.0, anchor_source="recorded",
        cycle_factor=10.8, billing_cycle="yearly", cycle_list_price=11000.0,
        paid_price=float("nan"), dynamic_price=950.0, cycle_dynamic_price=950.0 * 10.8,
        pricing_arm="treatment", price_weight_alpha=0.1, price_weight_beta=0.05,
        price_weight_gamma=-0.1)
    (document,) = score_documents(scores, AS_OF, "run-1", dt.datetime.now(dt.UTC))
    assert document["price"]["base"] == 10800.0 and document["price"]["paid"] is None
    assert document["price"]["band"] == {"min": 8640.0, "max": 12960.0,
                                         "anchorSource": "recorded"}
    assert document["price"]["monthly"] == {"anchor": 1000.0, "list": 1199.0, "dynamic": 950.0}
    assert document["pricingArm"] == "treatment"
    assert document["priceWeights"] == {"alpha": 0.1, "beta": 0.05, "gamma": -0.1}


def test_scan_lists_the_riskiest_high_and_medium_customers_in_the_apps_levels() -> None:
    scores = _scores(6)
    finished = dt.datetime(2026, 3, 5, tzinfo=dt.UTC)  # written days later: charted on its day
    scan = scan_history_document(scores, AS_OF, "run-1", 1234, 3,
                                 {"churn": "3", "segmentation": "2"}, finished_at=finished)
    assert scan["scanDate"] == dt.datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=dt.UTC)
    assert (scan["highRisk"], scan["mediumRisk"], scan["lowRisk"]) == (2, 2, 2)
    top = scan["topAtRiskCustomers"]
    assert [t["userId"] for t in top] == scores["user_id"].iloc[[5, 4, 3]].tolist()
    assert [t["riskLevel"] for t in top] == ["High", "High", "Medium"]


def test_plan_proposals_leave_out_control_blocked_and_unmoved_plans() -> None:
    scores = _scores(6, price_ratio=0.9)
    changes, skipped = plan_proposals(scores, 1.0, "2026-03-01")
    assert {c["planName"] for c in changes} == {"Basic", "Premium"}
    basic = next(c for c in changes if c["planName"] == "Basic")
    assert basic["_id"] == change_id("2026-03-01", BASIC).hex() and basic["plan"] == BASIC
    assert basic["proposedPrice"] == round(499 * 0.9) and basic["customers"] == 3
    assert first_order_revenue_change(changes) == pytest.approx(sum(
        (c["proposedPrice"] - c["currentPrice"]) * c["customers"] for c in changes))

    control = scores.assign(pricing_arm=["control" if p == BASIC else "treatment"
                                         for p in scores["plan_id"]])
    changes, skipped = plan_proposals(control, 1.0, "n", blocked={PREMIUM: "in cool-down"})
    assert changes == []
    assert skipped == {"Basic": "no customer of the plan is in the dynamic-price arm",
                       "Premium": "in cool-down"}
    changes, skipped = plan_proposals(_scores(6, price_ratio=0.995), 1.0, "n")
    assert changes == [] and set(skipped) == {"Basic", "Premium"}


def test_proposal_and_metrics_documents() -> None:
    scores = _scores(6)
    changes, _ = plan_proposals(scores, 1.0, "2026-03-01")
    weights = {"alpha": 0.1, "beta": 0.05, "gamma": -0.1}
    expires = dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
    proposal = proposal_document(changes, AS_OF, "run-1", "admin-id", expires, weights,
                                 {"churn": "3", "segmentation": "2"})
    assert proposal["status"] == "pending" and proposal["createdBy"] == "admin-id"
    assert all("customers" not in c for c in proposal["changes"])
    assert proposal["projectedImpact"]["revenueChange"] == first_order_revenue_change(changes)
    display = ScoreDisplay(40.0, 70.0, 0.8, 1.2, "INR", weights)
    metrics = model_metrics_document(scores, AS_OF, "run-1", expires, {}, display)
    assert metrics["riskBands"] == {"counts": {"low": 2, "medium": 2, "high": 2},
                                    "mediumFrom": 40.0, "highAbove": 70.0}
    assert metrics["pricing"]["weights"] == weights  # no learned weights on the scores
    learned = scores.assign(price_weight_alpha=0.2, price_weight_beta=0.0,
                            price_weight_gamma=0.0)
    assert model_metrics_document(learned, AS_OF, "r", expires, {}, display)[
        "pricing"]["weights"] == {"alpha": 0.2, "beta": 0.0, "gamma": 0.0}
    assert sum(s["customers"] for s in metrics["segments"]) == 6
