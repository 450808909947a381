"""Price elasticity per segment from history, shrunk towards the paper's Table III (pure).

What the history can tell: for each segment, how churn hazard moves with the price
a customer pays relative to the list price of the same plan (promotional discounts
are the only within-plan price variation the app records: `pricing.basePrice`
versus `pricing.finalPrice`). A Poisson hazard regression per segment,

    churn events ~ Poisson(exposure_months · exp(a_plan + b · log(final / base))),

gives b = ∂log hazard / ∂log price with its standard error (observed information).
Plan fixed effects keep plan quality (cheap plans ride contended links) out of b.
With elasticity defined on customers kept over the pricing horizon H months,
Q = exp(−h·H), the data's elasticity is ε̂ = −h̄·H·b (h̄ the segment's monthly
hazard), with standard error h̄·H·se(b).

The estimate is combined with the prior N(ε₀, τ²) by precision weighting:
ε = (ε₀/τ² + ε̂/se²) / (1/τ² + 1/se²). A segment with too few customers, no
churners, or no price variation keeps its prior (the reason is reported). The
posterior (and its interval) never goes above `ceiling` (default 0): a price rise
that keeps more customers is noise or confounding, not economics, and pricing on
it would raise prices exactly where customers are sensitive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

Z95 = 1.959963984540054


@dataclass(frozen=True)
class ElasticityEstimate:
    segment: str
    prior: float
    data_estimate: float  # NaN when the data could not say
    data_se: float  # NaN when the data could not say
    posterior: float
    posterior_low: float  # 95% interval
    posterior_high: float
    customers: int
    churners: int
    price_varied: int  # customers paying other than their plan's list price
    source: str  # "posterior" or "prior: <why>"


def _poisson_slope(
    events: np.ndarray, exposure: np.ndarray, plan: np.ndarray, log_ratio: np.ndarray
) -> tuple[float, float]:
    """MLE of b (and its s.e.) in events ~ Poisson(exposure·exp(a_plan + b·x))."""
    plans, plan_idx = np.unique(plan, return_inverse=True)
    X = np.column_stack([np.eye(len(plans))[plan_idx], log_ratio])
    offset = np.log(np.clip(exposure, 1e-9, None))

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = np.clip(X @ theta + offset, -50, 50)
        mu = np.exp(eta)
        return float(mu.sum() - events @ eta), X.T @ (mu - events)

    start = np.zeros(X.shape[1])
    rate = events.sum() / max(exposure.sum(), 1e-9)
    start[: len(plans)] = np.log(max(rate, 1e-6))
    fit = minimize(nll, start, jac=True, method="L-BFGS-B")
    mu = np.exp(np.clip(X @ fit.x + offset, -50, 50))
    info = X.T @ (X * mu[:, None])
    try:
        cov = np.linalg.inv(info + 1e-9 * np.eye(len(info)))
        se = float(np.sqrt(max(cov[-1, -1], 0.0)))
    except np.linalg.LinAlgError:
        se = float("inf")
    return float(fit.x[-1]), se


def estimate_segment_elasticity(
    history: pd.DataFrame,
    prior: dict[str, float],
    prior_sd: float,
    horizon_months: float,
    min_customers: int,
    ceiling: float = 0.0,
) -> list[ElasticityEstimate]:
    """One estimate per segment of `prior`.

    `history`: one row per subscription observed, columns segment_name, plan_id,
    base_price and final_price (same billing cycle), exposure_months (> 0: time
    observed at risk) and churned (bool: cancelled while observed).
    """
    needed = {"segment_name", "plan_id", "base_price", "final_price", "exposure_months",
              "churned"}
    missing = needed - set(history.columns)
    if missing:
        raise KeyError(f"elasticity history lacks columns {sorted(missing)}")
    if prior_sd <= 0 or horizon_months <= 0:
        raise ValueError("prior_sd and horizon_months must be positive")
    h = history[history["exposure_months"] > 0]
    ratio = pd.to_numeric(h["final_price"], errors="coerce") / pd.to_numeric(
        h["base_price"], errors="coerce"
    )
    h = h.assign(log_ratio=np.log(ratio.where(ratio > 0))).dropna(subset=["log_ratio"])
    estimates = []
    for segment, eps0 in prior.items():
        rows = h[h["segment_name"] == segment]
        n, churners = len(rows), int(rows["churned"].sum())
        varied = int((rows["log_ratio"].abs() > 1e-6).sum())
        reason = None
        if n < min_customers:
            reason = f"{n} customers < {min_customers}"
        elif churners == 0:
            reason = "no churners observed"
        elif varied == 0:
            reason = "no price variation (every customer pays list price)"
        est, se = float("nan"), float("nan")
        if reason is None:
            b, se_b = _poisson_slope(
                rows["churned"].to_numpy(dtype=float), rows["exposure_months"].to_numpy(float),
                rows["plan_id"].astype(str).to_numpy(), rows["log_ratio"].to_numpy(float),
            )
            hazard = churners / rows["exposure_months"].sum()
            est, se = -hazard * horizon_months * b, hazard * horizon_months * se_b
            if not np.isfinite(se) or se <= 0:
                reason, est, se = "information matrix singular", float("nan"), float("nan")
        if reason is None:
            precision = 1 / prior_sd**2 + 1 / se**2
            post = (eps0 / prior_sd**2 + est / se**2) / precision
            post_sd = float(np.sqrt(1 / precision))
            source = "posterior"
        else:
            post, post_sd, source = eps0, prior_sd, f"prior: {reason}"
        low, high = post - Z95 * post_sd, post + Z95 * post_sd
        if post > ceiling:
            source += f" (clipped to {ceiling:g}: the data said a price rise keeps customers)"
        estimates.append(ElasticityEstimate(
            segment=segment, prior=float(eps0), data_estimate=float(est), data_se=float(se),
            posterior=float(min(post, ceiling)), posterior_low=float(min(low, ceiling)),
            posterior_high=float(min(high, ceiling)), customers=n, churners=churners,
            price_varied=varied, source=source,
        ))
    return estimates


def estimates_table(estimates: list[ElasticityEstimate]) -> pd.DataFrame:
    return pd.DataFrame([vars(e) for e in estimates]).set_index("segment")
