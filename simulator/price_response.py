"""Price response: what the simulated customers would pay and who would leave under a
given price, over the next months, with the simulator's own behavioural model.

API (keep stable; the pricing evaluation depends on it):

    from simulator.price_response import population_state, simulate_price_response
    from simulator.world import SimulationSpec

    spec = SimulationSpec(customers=..., days=..., seed=..., end=...)  # as `bbx simulate` ran
    # or: spec = SimulationSpec.load(settings.home / "simulation" / "spec.json")
    state = population_state(spec, as_of)            # as_of: dt.date, spec.start < as_of <= end + 1
    state.user_ids       # np.ndarray[str]: customers live at as_of, 24-char hex as in the lake
    state.monthly_price  # np.ndarray[float]: what each pays per month today (the static policy)
    response = simulate_price_response(state, price, months=12, seed=0)
    # price: np.ndarray aligned with state.user_ids, or Mapping[user_id, monthly price]
    #        (customers missing from the mapping keep their current price)
    response.revenue        # INR per customer over the months (before tax)
    response.churned        # bool per customer: cancelled within the months
    response.churn_month    # 0-based month of the cancellation, -1 if none
    response.months_served  # months billed
    response.to_frame()     # the above as a DataFrame indexed by user_id
    response.total_revenue, response.churn_rate

Common random numbers: every customer's randomness (their Exp(1) churn threshold)
depends only on (spec.seed, seed, the customer), never on the prices, so two
policies run with the same state and seed are compared on the same customers and
the same luck; a higher price can only bring a cancellation earlier.

The model is the simulator's: a customer cancels when their cumulative daily hazard
crosses the threshold. The daily hazard keeps the customer's latent traits, their
new-contract boost (decaying with tenure), their recent-experience multiplier
(the mean over the last 90 simulated days, standing in for future tickets, failed
charges and incidents) and the simulation's calibration; a price P instead of the
current price P0 multiplies it by exp(w * -elasticity * ln(P/P0) / s), where w is
the price-pressure weight and s the population's price-pressure spread, exactly as
price pressure enters the hazard when the population is drawn. Customers already
winding down at as_of have decided: they leave on their simulated day whatever the
price; the others cannot cancel before a wind-down (14-42 days, drawn per customer)
would have shown. Every live customer pays their monthly price at the start of each month they
are still there (yearly contracts are counted by their monthly equivalent).
Non-renewals and plan changes are not modelled here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.catalog import (
    HAZARD_WEIGHTS,
    LEAVER_DECLINE_DAYS,
    NEW_CONTRACT_BOOST,
    NEW_CONTRACT_DAYS,
)
from simulator.encode import STREAM_PRICE_RESPONSE, rng_for
from simulator.timeline import NEVER
from simulator.world import SimulationSpec, World, build_world, in_service

DAYS_PER_MONTH = 30
RECENT_EXPERIENCE_DAYS = 90


@dataclass(frozen=True)
class PopulationState:
    """The simulated customers live at `as_of`, and what the model needs to go on."""

    as_of: dt.date
    user_ids: np.ndarray  # str, 24-char hex
    monthly_price: np.ndarray  # current monthly price, after discount, before tax
    _customer: np.ndarray  # index into the simulated population
    _elasticity: np.ndarray
    _daily_hazard: np.ndarray  # at the current price, before the new-contract boost
    _tenure_days: np.ndarray
    _planned_leave_day: np.ndarray  # days after as_of a decided leaver cancels (-1: undecided)
    _price_weight: float  # w / s: log-hazard change per unit of price pressure
    _seed: int

    @property
    def size(self) -> int:
        return len(self.user_ids)


@dataclass(frozen=True)
class PriceResponse:
    user_ids: np.ndarray
    monthly_price: np.ndarray
    revenue: np.ndarray
    churned: np.ndarray
    churn_month: np.ndarray
    months_served: np.ndarray
    months: int

    @property
    def total_revenue(self) -> float:
        return float(self.revenue.sum())

    @property
    def churn_rate(self) -> float:
        return float(self.churned.mean()) if len(self.churned) else 0.0

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "monthly_price": self.monthly_price,
                "revenue": self.revenue,
                "churned": self.churned,
                "churn_month": self.churn_month,
                "months_served": self.months_served,
            },
            index=pd.Index(self.user_ids, name="user_id"),
        )


def population_state(
    spec: SimulationSpec, as_of: dt.date, world: World | None = None
) -> PopulationState:
    """The customers live at midnight starting `as_of` in the world `spec` describes
    (rebuilt in memory: no database). Pass `world` if it was already built from `spec`."""
    world = world or build_world(spec)
    t = world.day_index(as_of)
    if not 0 < t <= spec.days:
        raise ValueError(
            f"as_of must be inside the simulated history ({spec.start + dt.timedelta(days=1)}"
            f" .. {spec.end + dt.timedelta(days=1)}), got {as_of}"
        )
    pop, tl = world.pop, world.full
    customer = np.flatnonzero(in_service(world, t))
    tenure = (t - pop.start_day[customer]).astype(float)

    # Recent-experience multiplier: realised hazard over the last days, net of traits,
    # calibration and the new-contract boost.
    days = np.arange(max(t - RECENT_EXPERIENCE_DAYS, 0), t)
    exposed = days[:, None] >= pop.start_day[customer][None, :]
    boost = _new_contract(days[:, None] - pop.start_day[customer][None, :])
    static = tl.hazard_scale * np.exp(pop.static_log_hazard[customer])
    ratio = tl.daily_hazard[days][:, customer] / (static[None, :] * boost)
    recent = np.where(
        exposed.any(axis=0),
        np.sum(np.where(exposed, ratio, 0.0), axis=0) / np.maximum(exposed.sum(axis=0), 1),
        1.0,
    )

    cancel_day = np.where(tl.cancel_day >= 0, tl.cancel_day, NEVER)[customer]
    decided = (cancel_day < NEVER) & (tl.decline_start_day[customer] < t)
    return PopulationState(
        as_of=as_of,
        user_ids=np.array(world.user_ids, dtype=object)[customer],
        monthly_price=pop.monthly_list_price[customer] * (1 - pop.discount_rate[customer]),
        _customer=customer,
        _elasticity=pop.elasticity[customer],
        _daily_hazard=static * recent,
        _tenure_days=tenure,
        _planned_leave_day=np.where(decided, cancel_day - t, -1),
        _price_weight=HAZARD_WEIGHTS["price_pressure"] / pop.price_pressure_spread,
        _seed=spec.seed,
    )


def simulate_price_response(
    state: PopulationState,
    monthly_price: np.ndarray | Mapping[str, float],
    *,
    months: int = 12,
    seed: int = 0,
) -> PriceResponse:
    """Simulate `months` months from state.as_of with each customer paying `monthly_price`."""
    if months < 1:
        raise ValueError("months must be at least 1")
    price = _aligned_prices(state, monthly_price)
    if not np.all(np.isfinite(price)) or np.any(price <= 0):
        raise ValueError("prices must be positive numbers")
    # Common random numbers: one threshold per simulated customer, whatever the prices.
    rng = rng_for(state._seed, STREAM_PRICE_RESPONSE, seed)
    population = int(state._customer.max(initial=-1)) + 1
    thresholds = rng.exponential(1.0, population)[state._customer]
    # Undecided customers show no wind-down yet, so they cannot cancel before their
    # wind-down (LEAVER_DECLINE_DAYS) would have run: hazard counts from then on.
    first_day = rng.integers(LEAVER_DECLINE_DAYS[0], LEAVER_DECLINE_DAYS[1] + 1, population)
    first_day = first_day[state._customer]

    horizon = months * DAYS_PER_MONTH
    day = np.arange(horizon, dtype=float)
    shift = state._price_weight * -state._elasticity * np.log(price / state.monthly_price)
    daily = (state._daily_hazard * np.exp(shift))[None, :] * _new_contract(
        state._tenure_days[None, :] + day[:, None]
    )
    daily = np.where(day[:, None] >= first_day[None, :], daily, 0.0)
    crossed = np.cumsum(daily, axis=0) >= thresholds[None, :]
    cancel_day = np.where(crossed[-1], np.argmax(crossed, axis=0), NEVER)
    planned = state._planned_leave_day
    cancel_day = np.where(planned >= 0, planned, cancel_day)
    churned = cancel_day < horizon
    churn_month = np.where(churned, cancel_day // DAYS_PER_MONTH, -1)
    # Billed at the start of each month they start as customers.
    months_served = np.where(churned, -(-cancel_day // DAYS_PER_MONTH), months).astype(np.int64)
    return PriceResponse(
        user_ids=state.user_ids,
        monthly_price=price,
        revenue=price * months_served,
        churned=churned,
        churn_month=churn_month.astype(np.int64),
        months_served=months_served,
        months=months,
    )


def _new_contract(tenure_days: np.ndarray) -> np.ndarray:
    return 1.0 + NEW_CONTRACT_BOOST * np.exp(-np.maximum(tenure_days, 0) / NEW_CONTRACT_DAYS)


def _aligned_prices(
    state: PopulationState, monthly_price: np.ndarray | Mapping[str, float]
) -> np.ndarray:
    if isinstance(monthly_price, Mapping):
        return np.array(
            [
                float(monthly_price.get(u, p))
                for u, p in zip(state.user_ids, state.monthly_price, strict=True)
            ]
        )
    price = np.asarray(monthly_price, dtype=float)
    if price.shape != (state.size,):
        raise ValueError(
            f"expected {state.size} prices aligned with state.user_ids, got {price.shape}"
        )
    return price
