"""Dynamic price P = P_base × (1 + α·D + β·E + γ·R) and churn risk bands (pure, vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ArrayLike = np.ndarray | float


@dataclass(frozen=True)
class PricingWeights:
    alpha: float  # weight of demand D (0..1)
    beta: float  # weight of elasticity E (negative number)
    gamma: float  # weight of churn risk R (0..1); negative: discount the at-risk


def price_terms(
    demand: ArrayLike, elasticity: ArrayLike, churn_probability: ArrayLike, weights: PricingWeights
) -> dict[str, np.ndarray]:
    """The three contributions as fractions of the base price: demand α·D,
    elasticity β·E and risk γ·R (R clipped to [0, 1]), broadcast to one shape.
    A missing (NaN) input contributes nothing rather than poisoning the price."""
    d, e, r = np.broadcast_arrays(
        np.asarray(demand, dtype=float),
        np.asarray(elasticity, dtype=float),
        np.clip(np.asarray(churn_probability, dtype=float), 0.0, 1.0),
    )
    with np.errstate(invalid="ignore", over="ignore"):
        terms = {
            "demand": weights.alpha * d,
            "elasticity": weights.beta * e,
            "risk": weights.gamma * r,
        }
    return {name: np.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0) for name, t in
            terms.items()}


def dynamic_price(
    base_price: ArrayLike,
    demand: ArrayLike,
    elasticity: ArrayLike,
    churn_probability: ArrayLike,
    weights: PricingWeights,
    min_ratio: float,
    max_ratio: float,
    high_risk: np.ndarray | bool,
    *,
    floor: ArrayLike | None = None,
    ceiling: ArrayLike | None = None,
    risk_cap: ArrayLike | None = None,
) -> np.ndarray:
    """P = base × (1 + α·D + β·E + γ·R), clamped to [floor, ceiling] (default
    [min_ratio·base, max_ratio·base]); a high-risk customer is never priced above
    `risk_cap` (default base: no increase for the at-risk), nor below the floor."""
    if min_ratio > max_ratio:
        raise ValueError("min_ratio must not exceed max_ratio")
    base = np.asarray(base_price, dtype=float)
    terms = price_terms(demand, elasticity, churn_probability, weights)
    multiplier = 1.0 + terms["demand"] + terms["elasticity"] + terms["risk"]
    base, multiplier, risky = np.broadcast_arrays(base, multiplier, np.asarray(high_risk, bool))
    low = min_ratio * base if floor is None else np.broadcast_to(np.asarray(floor, float),
                                                                 base.shape)
    high = max_ratio * base if ceiling is None else np.broadcast_to(np.asarray(ceiling, float),
                                                                    base.shape)
    if np.any(low > high + 1e-9):
        raise ValueError("a price floor lies above its ceiling")
    cap = base if risk_cap is None else np.broadcast_to(np.asarray(risk_cap, float), base.shape)
    with np.errstate(over="ignore"):  # an absurd multiplier just lands on a bound
        price = np.clip(base * multiplier, low, high)
    return np.where(risky, np.clip(np.minimum(price, cap), low, high), price)


def risk_score(probability: ArrayLike, periods: float = 1.0) -> np.ndarray:
    """Churn risk as a 0..100 score: the chance of leaving within `periods` label horizons.

    A calibrated 30-day probability is small for almost everyone (monthly churn
    is a few percent), so the app's bands would be empty. With periods = 365/30
    the score is the chance of leaving within a year if the customer's current
    monthly hazard persisted: 1 − (1 − p)^periods. periods = 1 gives 100·p.
    """
    if periods <= 0:
        raise ValueError("periods must be positive")
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    return 100.0 * (1.0 - (1.0 - p) ** periods)


def risk_band(score: ArrayLike, medium: float, high: float) -> np.ndarray | str:
    """ "low" below `medium`, "medium" in [medium, high], "high" above `high`.

    An array in gives an array of str out; a scalar in gives a str.
    """
    if medium > high:
        raise ValueError("medium bound must not exceed high bound")
    s = np.asarray(score, dtype=float)
    bands = np.where(s > high, "high", np.where(s >= medium, "medium", "low"))
    return str(bands) if bands.ndim == 0 else bands
