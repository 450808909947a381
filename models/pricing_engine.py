"""One night's pricing, the rules and records around the formula (pure).

tasks/pricing.py reads the lake and the registry and writes the prices file, MLflow
and MongoDB; what it decides and what it records are here: the elasticity cohort's
cutoff, the per-customer prices (from the anchor, in the band, per billing cycle, by
A/B arm), the `ml_segments` and `ml_pricing_log` documents, the fairness warning and
the figures tracked for the fitted weights.

The prices are their own table (`PRICE_COLUMNS`, one row per customer) beside the
scores; `priced_scores` joins the two into what publishing reads.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from features.subscriptions import DAYS_PER_MONTH
from models.ab import TREATMENT, age_band, arm_prices
from models.elasticity import ElasticityEstimate
from models.price_optimizer import PricingBook, WeightFit, book_prices
from models.pricing import PricingWeights, price_terms
from models.segmentation import segment_profiles

FEATURE_WINDOW_DAYS = 90  # the longest window of the segmentation features
MIN_FOLLOWUP_DAYS = 14  # less follow-up than this cannot show a price response

# What the pricing step sets per customer; the scores file keeps the scoring's own
# (placeholder) values of the ones it also has (elasticity, dynamic_price, price terms).
PRICE_COLUMNS = (
    "anchor_price", "band_low", "band_high", "anchor_source", "yearly_factor", "static_price",
    "billing_cycle", "cycle_factor", "cycle_list_price", "paid_price", "elasticity",
    "formula_price", "dynamic_price", "cycle_dynamic_price", "pricing_arm",
    "pricing_experiment", "price_term_demand", "price_term_elasticity", "price_term_risk",
    "price_weight_alpha", "price_weight_beta", "price_weight_gamma",
)


def horizon_periods(horizon_months: float, label_horizon_days: int) -> float:
    """The pricing horizon in label horizons (the churn probability's unit)."""
    return horizon_months * DAYS_PER_MONTH / label_horizon_days


def cohort_cutoff(end: pd.Timestamp, first_seen: pd.Timestamp | None,
                  followup_days: int) -> pd.Timestamp | None:
    """The elasticity cohort lives `followup_days` before `end`. Segment features need
    FEATURE_WINDOW_DAYS of history before the cohort cutoff, so a short lake moves the
    cutoff later; under MIN_FOLLOWUP_DAYS of follow-up left (or without usage) there
    is no cohort (every segment keeps its prior)."""
    cutoff = end - pd.Timedelta(days=followup_days)
    if first_seen is None or pd.isna(first_seen):
        return None
    cutoff = max(cutoff, first_seen + pd.Timedelta(days=FEATURE_WINDOW_DAYS))
    if end - cutoff < pd.Timedelta(days=MIN_FOLLOWUP_DAYS):
        return None
    return cutoff


def pricing_book(scores: pd.DataFrame) -> PricingBook:
    """What the formula and the weight fit need of banded scores, as arrays."""
    return PricingBook(
        base=scores["static_price"].to_numpy(float), demand=scores["demand"].to_numpy(float),
        elasticity=scores["elasticity"].to_numpy(float),
        churn_probability=scores["churn_probability"].to_numpy(float),
        high_risk=(scores["risk_band"] == "high").to_numpy(),
        anchor=scores["anchor_price"].to_numpy(float),
        floor=scores["band_low"].to_numpy(float), ceiling=scores["band_high"].to_numpy(float),
    )


def fairness_groups(user_ids: pd.Series, users: pd.DataFrame, as_of: dt.date,
                    age_band_edges: list[int]) -> pd.DataFrame:
    """Each priced customer's city and age band (`users`: city and date_of_birth, indexed
    by user id), the groups fairness is judged in; unknown when the app has none."""
    groups = pd.DataFrame(index=user_ids)
    groups["city"] = users["city"].reindex(groups.index).fillna("unknown").to_numpy()
    groups["age_band"] = age_band(users["date_of_birth"].reindex(groups.index), as_of,
                                  age_band_edges).to_numpy()
    return groups


def apply_prices(scores: pd.DataFrame, book: PricingBook, weights: PricingWeights,
                 arms: np.ndarray, experiment: str, min_ratio: float,
                 max_ratio: float) -> np.ndarray:
    """Tonight's prices on `scores` (banded by models.plan_prices.customer_bands): the
    formula's monthly price from the anchor in the band, the arm's price (control pays
    the static price), per billing cycle, with the terms and weights that made it.
    Returns the formula prices."""
    formula = book_prices(book, weights, min_ratio, max_ratio)
    scores["formula_price"] = formula
    scores["dynamic_price"] = arm_prices(book.base, formula, arms)
    scores["cycle_dynamic_price"] = scores["dynamic_price"] * scores["cycle_factor"]
    scores["pricing_arm"] = arms.astype(str)
    scores["pricing_experiment"] = experiment
    for name, values in price_terms(book.demand, book.elasticity, book.churn_probability,
                                    weights).items():
        scores[f"price_term_{name}"] = values
    for name, value in asdict(weights).items():
        scores[f"price_weight_{name}"] = float(value)
    return formula


def price_table(priced: pd.DataFrame) -> pd.DataFrame:
    """The prices file: user_id and what pricing set, one row per customer."""
    return priced.loc[:, ["user_id", *PRICE_COLUMNS]].reset_index(drop=True)


def priced_scores(scores: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """The scores with tonight's prices in place of the scoring's, in the scores' order."""
    kept = scores.drop(columns=[c for c in PRICE_COLUMNS if c in scores.columns])
    joined = kept.merge(prices, on="user_id", how="left", validate="one_to_one")
    if len(prices) != len(scores) or joined["dynamic_price"].isna().any():
        raise ValueError(f"the prices ({len(prices)} rows) do not match the scores "
                         f"({len(scores)} rows) customer for customer")
    return joined


def segment_documents(features: pd.DataFrame, scores: pd.DataFrame,
                      as_of: dt.date) -> list[dict[str, Any]]:
    """One `ml_segments` document per segment of tonight's scored customers (ids and
    run stamps are the writer's)."""
    assignment = scores.set_index("user_id")[["segment_id", "segment_name", "elasticity"]]
    profiles = segment_profiles(features, assignment)
    return [
        {"name": str(name), "segmentId": int(p.segment_id), "size": int(p["size"]),
         "share": float(p.share), "usageGbPerMonth": float(p.mean_monthly_gb),
         "price": float(p.mean_monthly_price), "elasticity": float(p.elasticity),
         "asOf": dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)}
        for name, p in profiles.iterrows()
    ]


def demand_profile_documents(hourly: pd.DataFrame) -> list[dict[str, Any]]:
    """`ml_demand_profile`: one row per hour of the day (IST)."""
    return [{"hourIst": int(h), **{k: float(v) for k, v in row.items()}}
            for h, row in hourly.iterrows()]


def fairness_warning(fairness: pd.DataFrame, max_gap: float) -> str:
    """What a reviewer reads when a group is priced unusually (models.ab.fairness_report)."""
    flagged = fairness[fairness["flagged"]]
    lines = [f"# Fairness warning: {len(flagged)} group(s) priced more than "
             f"{max_gap:.0%} away from the overall mean dynamic/base ratio "
             f"({fairness.attrs.get('overall_mean_ratio', float('nan')):.4f})", ""]
    lines += [f"- {r.dimension} = {r.group}: {r.customers} customers, mean ratio "
              f"{r.mean_ratio:.4f} (gap {r.gap:+.4f})" for r in flagged.itertuples()]
    return "\n".join(lines)


def tracked_metrics(weights: PricingWeights, fit: WeightFit | None,
                    estimates: list[ElasticityEstimate], fairness: pd.DataFrame,
                    arms: np.ndarray) -> dict[str, float]:
    """The figures tracked for one night's pricing (finite ones only)."""
    metrics = {f"weight_{k}": float(v) for k, v in asdict(weights).items()}
    metrics |= {"treatment_customers": float((arms == TREATMENT).sum()),
                "fairness_flags": float(fairness["flagged"].sum())}
    if fit is not None:
        metrics |= {"objective_revenue_dynamic": fit.revenue_dynamic,
                    "objective_revenue_static": fit.revenue_static,
                    "objective_revenue_uplift": fit.revenue_uplift,
                    "horizon_churn_static": fit.churn_static,
                    "horizon_churn_dynamic": fit.churn_dynamic,
                    "churn_ceiling": fit.churn_ceiling, "fit_feasible": float(fit.feasible)}
    for e in estimates:
        key = e.segment.replace(" ", "_").replace("-", "_")
        metrics |= {f"elasticity_{key}": e.posterior, f"elasticity_{key}_low": e.posterior_low,
                    f"elasticity_{key}_high": e.posterior_high}
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}


def tracked_params(learn_weights: bool, horizon_months: float, churn_ceiling: float,
                   min_ratio: float, max_ratio: float, weight_bounds: Mapping[str, Any],
                   experiment: str, treatment_share: float,
                   elasticity_prior_sd: float) -> dict[str, Any]:
    """The settings that shaped one night's pricing, as tracked."""
    return {"learn_weights": learn_weights, "horizon_months": horizon_months,
            "churn_ceiling": churn_ceiling, "min_ratio": min_ratio, "max_ratio": max_ratio,
            "weight_bounds": json.dumps(weight_bounds), "experiment": experiment,
            "treatment_share": treatment_share, "elasticity_prior_sd": elasticity_prior_sd}


def _r(value: float | None) -> float | None:
    """Rounded for reading (an elasticity to 2 decimals is what a decision uses)."""
    return None if value is None or not np.isfinite(value) else round(float(value), 2)


def elasticity_rows(estimates: list[ElasticityEstimate]) -> list[dict[str, Any]]:
    """Per segment: the prior, the data's estimate and the posterior pricing used."""
    return [{"segment": e.segment, "prior": _r(e.prior), "data": _r(e.data_estimate),
             "posterior": _r(e.posterior),
             "95% interval": f"{_r(e.posterior_low)} … {_r(e.posterior_high)}",
             "customers": e.customers, "churners": e.churners, "source": e.source}
            for e in estimates]


def weights_text(as_of: dt.date, weights: PricingWeights, fit: WeightFit | None) -> str:
    fit_text = (f"expected horizon revenue {fit.revenue_uplift:+.2%} vs static, churn "
                f"{fit.churn_static:.3f} → {fit.churn_dynamic:.3f} (model-based)"
                if fit else "weights from settings (not learned)")
    return (f"# Pricing {as_of}\n\nα = {weights.alpha:.4f}, β = {weights.beta:.4f}, "
            f"γ = {weights.gamma:.4f}; {fit_text}\n")


def pricing_log_documents(scores: pd.DataFrame, as_of: dt.date, run_id: str,
                          logged_at: dt.datetime, pricing_run: str = "") -> list[dict]:
    """One audit document per priced customer; `pricing_run` the MLflow run of the
    weights. userId and planId stay strings (the writer makes them ObjectIds)."""
    as_of_instant = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    return [
        {"userId": str(r.user_id), "asOf": as_of_instant, "runId": run_id,
         "planId": str(r.plan_id), "plan": str(r.plan_name),
         "base": float(r.base_price), "dynamic": float(r.dynamic_price),
         "formulaPrice": float(r.formula_price), "currency": str(r.currency),
         "anchor": float(r.anchor_price), "anchorSource": str(r.anchor_source),
         "band": {"min": float(r.band_low), "max": float(r.band_high)},
         "billingCycle": str(r.billing_cycle), "cycleDynamic": float(r.cycle_dynamic_price),
         "D": float(r.demand), "E": float(r.elasticity), "R": float(r.churn_probability),
         "terms": {"demand": float(r.price_term_demand),
                   "elasticity": float(r.price_term_elasticity),
                   "risk": float(r.price_term_risk)},
         "weights": {"alpha": float(r.price_weight_alpha), "beta": float(r.price_weight_beta),
                     "gamma": float(r.price_weight_gamma)},
         "arm": str(r.pricing_arm), "experiment": str(r.pricing_experiment),
         "riskBand": str(r.risk_band),
         "modelVersions": {"churn": str(r.churn_model_version),
                           "segmentation": str(r.segment_model_version),
                           "pricingRun": pricing_run},
         "loggedAt": logged_at}
        for r in scores.itertuples(index=False)
    ]
