"""Learning α, β, γ of P = P_base × (1 + α·D + β·E + γ·R) (pure).

Churn's response to price (constant elasticity on customers kept, the paper's
ε = (ΔQ/Q)/(ΔP/P) with Q the customers still subscribed at the horizon):

    kept_H(P) = clip((1 − R)^H · (P / P_base)^ε, 0, 1),   churn_H(P) = 1 − kept_H(P)

R is the calibrated churn probability for one label horizon (30 days) and H the
pricing horizon in those units. The paper's objective (Eq. 4), over the horizon:

    maximise Σ P_i · kept_H(P_i)   subject to   P_min ≤ P_i ≤ P_max  (the clamp)
                                                 mean churn_H(P) ≤ C_threshold

where P_i comes from the formula with the candidate weights, clamped, and never
above base for high-risk customers. Because D is one number per pricing period,
α·D acts as the level of the whole book in a single fit; β and γ move customers
relative to each other. The search is scipy's differential evolution (global,
seeded, deterministic) over a box of weights with the churn ceiling as a
constraint; the clamp makes the objective piecewise smooth, so a gradient
method alone would stall on flat regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import NonlinearConstraint, differential_evolution, least_squares

from models.pricing import PricingWeights, dynamic_price


@dataclass(frozen=True)
class PricingBook:
    """The customers a weight fit is about (arrays of one length).

    `base` is the static price (what a customer is charged without dynamic pricing):
    churn responds to a price relative to it. The formula's P_base is `anchor` and
    prices are held to [floor, ceiling]; without them, base and [min_ratio, max_ratio]
    × base. A high-risk customer is never priced above min(anchor, base)."""

    base: np.ndarray
    demand: np.ndarray
    elasticity: np.ndarray
    churn_probability: np.ndarray  # per label horizon (30 days)
    high_risk: np.ndarray  # bool
    anchor: np.ndarray | None = None
    floor: np.ndarray | None = None
    ceiling: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.base)
        optional = [a for a in (self.anchor, self.floor, self.ceiling) if a is not None]
        if any(len(a) != n for a in (self.demand, self.elasticity, self.churn_probability,
                                     self.high_risk, *optional)):
            raise ValueError("every PricingBook array must have one length")
        if n == 0:
            raise ValueError("cannot fit pricing weights on no customers")


@dataclass(frozen=True)
class WeightFit:
    weights: PricingWeights
    revenue_dynamic: float  # Σ P·kept_H(P) at the fitted weights
    revenue_static: float  # the same at base prices
    churn_dynamic: float  # mean churn_H
    churn_static: float
    churn_ceiling: float
    feasible: bool
    message: str

    @property
    def revenue_uplift(self) -> float:
        return self.revenue_dynamic / self.revenue_static - 1.0 if self.revenue_static else 0.0


def expected_churn(
    price: np.ndarray, base: np.ndarray, churn_probability: np.ndarray, elasticity: np.ndarray,
    periods: float,
) -> np.ndarray:
    """churn_H(P): share of each customer lost within `periods` label horizons at price P."""
    kept_at_base = (1.0 - np.clip(churn_probability, 0.0, 1.0)) ** periods
    kept = kept_at_base * (np.asarray(price, float) / np.asarray(base, float)) ** elasticity
    return 1.0 - np.clip(kept, 0.0, 1.0)


def book_prices(
    book: PricingBook, weights: PricingWeights, min_ratio: float, max_ratio: float
) -> np.ndarray:
    anchor = book.base if book.anchor is None else book.anchor
    return dynamic_price(anchor, book.demand, book.elasticity, book.churn_probability,
                         weights, min_ratio, max_ratio, book.high_risk, floor=book.floor,
                         ceiling=book.ceiling, risk_cap=np.minimum(anchor, book.base))


def revenue_and_churn(
    book: PricingBook, price: np.ndarray, periods: float
) -> tuple[float, float]:
    """(Σ P·kept_H(P), mean churn_H(P))."""
    churn = expected_churn(price, book.base, book.churn_probability, book.elasticity, periods)
    return float(np.sum(price * (1.0 - churn))), float(churn.mean())


def fit_pricing_weights(
    book: PricingBook,
    min_ratio: float,
    max_ratio: float,
    periods: float,
    bounds: dict[str, tuple[float, float]],
    churn_ceiling: float | None = None,
    seed: int = 7,
) -> WeightFit:
    """Weights maximising horizon revenue under the price bounds and the churn ceiling
    (None: no more churn than the static prices give)."""
    if periods <= 0:
        raise ValueError("periods must be positive")
    box = [bounds[name] for name in ("alpha", "beta", "gamma")]
    revenue_static, churn_static = revenue_and_churn(book, book.base.astype(float), periods)
    ceiling = churn_static if churn_ceiling is None else float(churn_ceiling)

    # The search asks for the constraint and then the objective of the same candidate:
    # one pricing of the book answers both.
    outcomes: dict[bytes, tuple[float, float]] = {}

    def outcome(theta: np.ndarray) -> tuple[float, float]:
        key = np.asarray(theta, float).tobytes()
        if key not in outcomes:
            if len(outcomes) > 4096:  # only the current generation is asked again
                outcomes.clear()
            price = book_prices(book, PricingWeights(*map(float, theta)), min_ratio, max_ratio)
            outcomes[key] = revenue_and_churn(book, price, periods)
        return outcomes[key]

    scale = max(revenue_static, 1.0)
    # Stop once the population's revenues agree to a millionth of the static revenue (a
    # rupee in a million): 1e-8 took 1.7 times the evaluations for the same revenue to
    # seven digits, and each evaluation prices the whole book (about 18 ms at 100k).
    fit = differential_evolution(
        lambda theta: -outcome(theta)[0] / scale,
        box,
        constraints=NonlinearConstraint(lambda theta: outcome(theta)[1], -np.inf, ceiling + 1e-9),
        seed=seed,
        tol=1e-6,
        maxiter=300,
        polish=False,
    )
    weights = PricingWeights(*map(float, fit.x))
    revenue, churn = outcome(fit.x)
    feasible = churn <= ceiling + 1e-6
    if not feasible:  # no weights meet the ceiling: keep base prices (weights 0)
        weights = PricingWeights(0.0, 0.0, 0.0)
        revenue, churn = outcome(np.zeros(3))
    return WeightFit(
        weights=weights, revenue_dynamic=revenue, revenue_static=revenue_static,
        churn_dynamic=churn, churn_static=churn_static, churn_ceiling=ceiling,
        feasible=bool(feasible), message=str(fit.message),
    )


def fit_weights_to_prices(
    target_price: np.ndarray,
    base: np.ndarray,
    demand: np.ndarray,
    elasticity: np.ndarray,
    churn_probability: np.ndarray,
) -> PricingWeights:
    """α, β, γ whose unclamped formula best reproduces known prices (least squares on
    the relative error): a check that the engine implements the paper's formula."""
    base = np.asarray(base, float)
    relative = np.asarray(target_price, float) / base - 1.0
    X = np.column_stack([np.asarray(demand, float), np.asarray(elasticity, float),
                         np.clip(np.asarray(churn_probability, float), 0, 1)])
    fit = least_squares(lambda w: X @ w - relative, np.zeros(3))
    return PricingWeights(*map(float, fit.x))
