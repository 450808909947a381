"""The documents the app reads, built from the night's scores (pure).

Shapes follow ../shared/broadbandx-schema.md and docs/data-contract.md:
`ml_customer_scores` (one per customer), `churnscanhistories`, `pricingproposals` and
`ml_model_metrics`. Ids stay the 24-hex strings the lake holds; the tasks that write
the documents turn them into ObjectIds (an ObjectId belongs to the driver).
`check_scores` is the contract the scores must meet before any is published.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.plan_prices import PlanBand, banded_proposal, change_id, proposed_yearly_price

SOURCE = "bbx-ml-pipeline"  # marks documents this pipeline wrote in the app's collections
SCAN_TYPE = "scheduled"
PROPOSAL_TYPE = "plan-price"
PRICING_FORMULA = "P = P_base × (1 + α·D + β·E + γ·R)"
PRICING_MODEL_NAME = "bbx-dynamic-pricing"
# The app's riskLevel enum has no low level: the top list holds only these bands.
RISK_LEVEL = {"high": "High", "medium": "Medium"}


class PublishCheckError(RuntimeError):
    """The staged scores break the contract with the app; nothing was swapped in."""


@dataclass(frozen=True)
class ScoreDisplay:
    """What the app's metrics document says about bands and prices (from the settings)."""

    risk_band_medium: float
    risk_band_high: float
    min_ratio: float
    max_ratio: float
    currency: str
    weights: dict[str, float]  # the configured alpha, beta, gamma


def _churn_reasons(encoded: str | None) -> list[dict]:
    """The scores Parquet's JSON string → an array of {feature, value, effect, text}."""
    return json.loads(encoded) if isinstance(encoded, str) and encoded else []


def score_documents(
    scores: pd.DataFrame, as_of: dt.date, run_id: str, published_at: dt.datetime
) -> list[dict]:
    """Rows of the scores table → documents in the shape of docs/data-contract.md."""
    as_of_instant = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    documents = []
    for row in scores.itertuples(index=False):
        documents.append({
            "userId": str(row.user_id),
            "asOf": as_of_instant,
            "runId": run_id,
            "churnProbability": float(row.churn_probability),
            "riskScore": float(row.risk_score),
            "riskBand": str(row.risk_band),
            "churnReasons": _churn_reasons(getattr(row, "churn_reasons", None)),
            "segment": {"id": int(row.segment_id), "name": str(row.segment_name)},
            "elasticity": float(row.elasticity),
            "planId": str(row.plan_id),
            "price": price_document(row),
            "priceTerms": {
                "demand": float(row.demand),
                "demandTerm": float(row.price_term_demand),
                "elasticityTerm": float(row.price_term_elasticity),
                "riskTerm": float(row.price_term_risk),
            },
            # The A/B arm (control: the plan's static price); unpriced scores have none.
            "pricingArm": str(getattr(row, "pricing_arm", "") or "") or None,
            "priceWeights": {
                "alpha": float(getattr(row, "price_weight_alpha", float("nan"))),
                "beta": float(getattr(row, "price_weight_beta", float("nan"))),
                "gamma": float(getattr(row, "price_weight_gamma", float("nan"))),
            } if hasattr(row, "price_weight_alpha") else None,
            "modelVersions": {
                "churn": str(row.churn_model_version),
                "segmentation": str(row.segment_model_version),
            },
            "createdAt": published_at,
        })
    return documents


def _money(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return round(number, 2) if number == number else None  # NaN: not known


def price_document(row) -> dict:
    """The per-customer `price` object, per billing cycle (docs/data-contract.md).
    Scores the pricing step did not price (no band: a tool's or a test's) keep the
    short form: the monthly list price as base and the scoring's dynamic price."""
    if not hasattr(row, "cycle_dynamic_price"):
        return {"plan": str(row.plan_name), "base": round(float(row.base_price), 2),
                "dynamic": round(float(row.dynamic_price), 2), "currency": str(row.currency)}
    factor = float(row.cycle_factor)
    return {
        "plan": str(row.plan_name),
        "billingCycle": str(row.billing_cycle),
        "base": round(float(row.anchor_price) * factor, 2),  # the formula's P_base: the anchor
        "list": round(float(row.cycle_list_price), 2),
        "paid": _money(row.paid_price),
        "dynamic": round(float(row.cycle_dynamic_price), 2),
        "band": {"min": round(float(row.band_low) * factor, 2),
                 "max": round(float(row.band_high) * factor, 2),
                 "anchorSource": str(row.anchor_source)},
        "monthly": {"anchor": round(float(row.anchor_price), 2),
                    "list": round(float(row.base_price), 2),
                    "dynamic": round(float(row.dynamic_price), 2)},
        "currency": str(row.currency),
    }


def check_scores(scores: pd.DataFrame, min_ratio: float, max_ratio: float) -> None:
    """The contract the app relies on; raise before anything is written."""
    problems: list[str] = []
    required = ["user_id", "churn_probability", "risk_score", "risk_band", "segment_id",
                "base_price", "dynamic_price"]
    nulls = {c: int(scores[c].isna().sum()) for c in required if scores[c].isna().any()}
    if nulls:
        problems.append(f"null values in {nulls}")
    if scores["user_id"].duplicated().any():
        problems.append(f"{int(scores['user_id'].duplicated().sum())} duplicated user_id")
    outside = ~scores["churn_probability"].between(0, 1)
    if outside.any():
        problems.append(f"{int(outside.sum())} churn probabilities outside [0, 1]")
    # A cent of slack: prices are rounded to paise when published. Priced scores carry
    # their plan's band around its anchor; others the ratios around the list price.
    if {"band_low", "band_high"} <= set(scores.columns):
        floor, ceiling = scores["band_low"], scores["band_high"]
    else:
        floor, ceiling = scores["base_price"] * min_ratio, scores["base_price"] * max_ratio
    low = scores["dynamic_price"] < floor - 0.01
    high = scores["dynamic_price"] > ceiling + 0.01
    if (low | high).any():
        problems.append(f"{int((low | high).sum())} prices outside their bounds")
    if problems:
        raise PublishCheckError("scores not published: " + "; ".join(problems))


def as_of_instant(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)


def scan_instant(as_of: dt.date, finished_at: dt.datetime) -> dt.datetime:
    """When the scan happened: the time the run finished, kept inside the as-of day
    (UTC) so a backfilled past night or a future-dated test night is charted on its
    own day, never on the day it happened to be written."""
    start = as_of_instant(as_of)
    last = start + dt.timedelta(days=1) - dt.timedelta(milliseconds=1)
    return min(max(finished_at, start), last)


def scan_history_document(
    scores: pd.DataFrame,
    as_of: dt.date,
    run_id: str,
    scan_duration_ms: int,
    top_n: int,
    model_versions: dict[str, str],
    finished_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One `churnscanhistories` scan: band counts, risk statistics, the riskiest customers.

    `probability` in the top list is the published riskScore (0..100), the number
    the bands are cut on, so the chart and the list agree. `finished_at` (default now)
    dates the scan.
    """
    bands = scores["risk_band"].value_counts()
    at_risk = scores[scores["risk_band"].isin(list(RISK_LEVEL))]
    top = at_risk.sort_values(["risk_score", "user_id"], ascending=[False, True]).head(top_n)
    risk = scores["risk_score"].astype(float)
    return {
        "scanDate": scan_instant(as_of, finished_at or dt.datetime.now(dt.UTC)),
        "scanType": SCAN_TYPE,
        "totalCustomers": int(len(scores)),
        "highRisk": int(bands.get("high", 0)),
        "mediumRisk": int(bands.get("medium", 0)),
        "lowRisk": int(bands.get("low", 0)),
        "averageRiskScore": round(float(risk.mean()), 2) if len(scores) else 0.0,
        "highestRiskScore": round(float(risk.max()), 2) if len(scores) else 0.0,
        "topAtRiskCustomers": [
            {
                "userId": str(row.user_id),
                "probability": round(float(row.risk_score), 2),
                "riskLevel": RISK_LEVEL[str(row.risk_band)],
            }
            for row in top.itertuples(index=False)
        ],
        "scanDuration": int(scan_duration_ms),
        "notes": (
            f"ML pipeline run {run_id} for as-of {as_of.isoformat()}: churn model "
            f"v{model_versions.get('churn', '?')}, segmentation "
            f"v{model_versions.get('segmentation', '?')}; riskScore is the chance (0..100) "
            "of cancelling within the risk-score horizon"
        ),
        "status": "completed",
        "source": SOURCE,
        "asOf": as_of_instant(as_of),
        "runId": run_id,
    }


def _plan_band(plan: pd.DataFrame, plan_id: str) -> PlanBand:
    """The band the pricing step priced the plan in (columns of the scores file); scores
    priced without one are bounded by nothing and have no known yearly discount."""
    first = plan.iloc[0]
    if {"anchor_price", "band_low", "band_high", "yearly_factor"} <= set(plan.columns):
        return PlanBand(plan_id, float(first["anchor_price"]), float(first["band_low"]),
                        float(first["band_high"]), str(first.get("anchor_source", "")),
                        float(first["yearly_factor"]))
    current = float(first["base_price"])
    return PlanBand(plan_id, current, 0.0, float("inf"), "list", float("nan"))


def plan_proposals(
    scores: pd.DataFrame,
    min_change_percent: float,
    night: str = "",
    blocked: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Per plan: the plan's monthly price → the mean dynamic price of its customers,
    in whole rupees inside the plan's band, and the yearly price that keeps the plan's
    yearly discount. Returns (changes, plan name → why it is not proposed).

    `blocked`: plan id → reason no proposal may be made (models.plan_prices.
    proposal_blockers). Customers in a pricing control arm (column `pricing_arm` ==
    "control", when the scores carry one) keep the static price by design, so they are
    left out of the mean. Each change's `_id` derives from the night (its as-of date)
    and the plan, so a retried write or a rerun of the night gives the same ids.
    """
    blocked = blocked or {}
    changes, skipped = [], {}
    treated = pd.Series(True, index=scores.index)
    if "pricing_arm" in scores.columns:
        treated = scores["pricing_arm"].astype(str) != "control"
    for plan_id, everyone in scores.groupby("plan_id", sort=True):
        plan_id = str(plan_id)
        name = str(everyone["plan_name"].iloc[0])
        if plan_id in blocked:
            skipped[name] = blocked[plan_id]
            continue
        plan = everyone[treated.loc[everyone.index]]
        if plan.empty:
            skipped[name] = "no customer of the plan is in the dynamic-price arm"
            continue
        band = _plan_band(plan, plan_id)
        current = round(float(plan["base_price"].iloc[0]), 2)
        proposed = banded_proposal(float(plan["dynamic_price"].mean()), band)
        change_percent = round((proposed - current) / current * 100.0, 2) if current else 0.0
        if abs(change_percent) < min_change_percent or proposed == current:
            skipped[name] = (f"proposed {proposed:g} is within {min_change_percent:g}% of the "
                             f"list price {current:g}")
            continue
        terms = {
            "demand": float(plan["price_term_demand"].mean()),
            "elasticity": float(plan["price_term_elasticity"].mean()),
            "churn risk": float(plan["price_term_risk"].mean()),
        }
        term_text = ", ".join(f"{term} {value * 100:+.1f}%" for term, value in terms.items())
        change: dict[str, Any] = {
            "_id": change_id(night, plan_id).hex(),
            "plan": plan_id,
            "planName": name,
            "currentPrice": current,
            "proposedPrice": proposed,
            "changePercent": change_percent,
            "reason": (
                f"Mean dynamic price of the plan's {len(plan)} dynamically priced customers "
                f"(mean terms: {term_text}; high-risk share "
                f"{float((plan['risk_band'] == 'high').mean()) * 100:.0f}%)"
                + (f", inside the band {band.low:.0f}-{band.high:.0f} around the anchor "
                   f"{band.anchor:g} ({band.source})" if np.isfinite(band.high) else "")
            ),
            "customers": int(len(plan)),
        }
        if np.isfinite(band.high):
            change |= {"anchorPrice": band.anchor, "bandMin": round(band.low, 2),
                       "bandMax": round(band.high, 2)}
        if np.isfinite(band.yearly_factor):
            change["proposedYearlyPrice"] = proposed_yearly_price(proposed, band)
        changes.append(change)
    return changes, skipped


def plan_price_changes(scores: pd.DataFrame, min_change_percent: float,
                       run_id: str = "") -> list[dict[str, Any]]:
    """The changes of `plan_proposals`, with no plan blocked."""
    return plan_proposals(scores, min_change_percent, run_id)[0]


def first_order_revenue_change(changes: list[dict[str, Any]]) -> float:
    """Monthly revenue change if every current customer paid the proposed price and none
    reacted: Σ (proposed − current) × customers. A placeholder until the revenue
    simulation provides projectedImpact (docs/data-contract.md)."""
    return round(sum((c["proposedPrice"] - c["currentPrice"]) * c["customers"]
                     for c in changes), 2)


def proposal_document(
    changes: list[dict[str, Any]],
    as_of: dt.date,
    run_id: str,
    created_by: Any,
    expires_at: dt.datetime,
    weights: dict[str, float],
    model_versions: dict[str, str],
    projected_impact: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """One `pricingproposals` document (status pending) for the plans in `changes`."""
    impact = projected_impact or {
        "revenueChange": first_order_revenue_change(changes),
        "churnReduction": None,
        "customersSaved": None,
    }
    names = ", ".join(f"{c['planName']} {c['changePercent']:+.1f}%" for c in changes)
    return {
        "title": f"ML price proposal for {as_of.isoformat()} ({len(changes)} plans)",
        "description": (
            "Plan prices moved to the mean dynamic price the pricing engine set for each "
            f"plan's customers on {as_of.isoformat()}: {names}. Review before applying."
        ),
        "model": {
            "name": PRICING_MODEL_NAME,
            "version": f"churn v{model_versions.get('churn', '?')}, "
                       f"segmentation v{model_versions.get('segmentation', '?')}",
            "formula": PRICING_FORMULA,
            "weights": {k: float(weights[k]) for k in ("alpha", "beta", "gamma")},
        },
        "changes": [{k: v for k, v in c.items() if k != "customers"} for c in changes],
        "status": "pending",
        "createdBy": created_by,
        "expiresAt": expires_at,
        "projectedImpact": impact,
        "source": SOURCE,
        "proposalType": PROPOSAL_TYPE,
        "asOf": as_of_instant(as_of),
        "runId": run_id,
    }


def pricing_weights(scores: pd.DataFrame, configured: dict[str, float]) -> dict[str, float]:
    """The weights that priced tonight: learned ones stamped on the scores
    (price_weight_* columns) when present, else the configured ones."""
    if len(scores) and {"price_weight_alpha", "price_weight_beta",
                        "price_weight_gamma"} <= set(scores.columns):
        return {k: float(scores[f"price_weight_{k}"].iloc[0]) for k in ("alpha", "beta", "gamma")}
    return {k: float(configured[k]) for k in ("alpha", "beta", "gamma")}


def segment_profiles(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """Per segment of tonight's scored customers: size, share, risk and price."""
    profiles = []
    total = max(len(scores), 1)
    for (segment_id, name), seg in scores.groupby(["segment_id", "segment_name"], sort=True):
        profiles.append({
            "id": int(segment_id),
            "name": str(name),
            "customers": int(len(seg)),
            "share": round(len(seg) / total, 4),
            "elasticity": round(float(seg["elasticity"].mean()), 4),
            "meanRiskScore": round(float(seg["risk_score"].mean()), 2),
            "highRiskShare": round(float((seg["risk_band"] == "high").mean()), 4),
            "meanBasePrice": round(float(seg["base_price"].mean()), 2),
            "meanDynamicPrice": round(float(seg["dynamic_price"].mean()), 2),
        })
    return profiles


def model_metrics_document(
    scores: pd.DataFrame,
    as_of: dt.date,
    run_id: str,
    finished_at: dt.datetime,
    champions: dict[str, dict[str, Any]],
    display: ScoreDisplay,
) -> dict[str, Any]:
    bands = scores["risk_band"].value_counts()
    return {
        "asOf": as_of_instant(as_of),
        "runId": run_id,
        "lastGoodRunFinishedAt": finished_at,
        "customersScored": int(len(scores)),
        "riskBands": {
            "counts": {b: int(bands.get(b, 0)) for b in ("low", "medium", "high")},
            "mediumFrom": display.risk_band_medium,
            "highAbove": display.risk_band_high,
        },
        "models": champions,
        "segments": segment_profiles(scores),
        "pricing": {
            "formula": PRICING_FORMULA,
            "weights": pricing_weights(scores, display.weights),
            "minRatio": display.min_ratio,
            "maxRatio": display.max_ratio,
            "demand": round(float(scores["demand"].mean()), 4) if len(scores) else None,
            "currency": display.currency,
        },
    }


