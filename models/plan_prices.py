"""Plan-level price policy (pure): the anchor band, proposal eligibility, cycle prices.

Every price the pipeline publishes or proposes for a plan sits in a band around an
anchor the admin owns: [anchor × min_ratio, anchor × max_ratio], or explicit bounds.
The anchor is never tonight's list price as such: after an admin applies a proposal,
a band taken around the new list price would let the next proposal move another
full step (a ratchet). The anchor is either configured per plan, or the list price
the pipeline recorded when it first saw the plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SETTINGS, RECORDED, LIST = "settings", "recorded", "list"
MONTHS_PER_YEAR = 12
# Proposal states that mean a price change for the plan is still in flight.
IN_FLIGHT = {"pending": "is pending", "approved": "is approved but not yet applied"}


@dataclass(frozen=True)
class AnchorOverride:
    """An admin's anchor for one plan: a monthly price and optional absolute bounds."""

    anchor: float
    min_price: float | None = None
    max_price: float | None = None


@dataclass(frozen=True)
class PlanBand:
    """The monthly band of one plan and where its anchor came from."""

    plan_id: str
    anchor: float
    low: float
    high: float
    source: str  # SETTINGS, RECORDED or LIST (tonight's list price: nothing recorded)
    yearly_factor: float  # yearly price / (12 × monthly) that keeps the plan's discount
    plan_name: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.low <= self.anchor <= self.high):
            raise ValueError(f"plan {self.plan_id}: band must satisfy 0 <= low <= anchor <= high "
                             f"(got {self.low}, {self.anchor}, {self.high})")

    def clamp(self, price: float) -> float:
        return min(max(price, self.low), self.high)


def yearly_factor(monthly: float | None, yearly: float | None) -> float | None:
    """yearly / (12 × monthly), the plan's yearly discount as a factor (0.9 = 10% off);
    None when either price is missing or not positive."""
    if monthly is None or yearly is None:
        return None
    if not (math.isfinite(monthly) and math.isfinite(yearly)) or monthly <= 0 or yearly <= 0:
        return None
    return yearly / (MONTHS_PER_YEAR * monthly)


def plan_band(
    plan_id: str,
    plan_name: str,
    list_monthly: float,
    list_yearly: float | None,
    recorded: Mapping[str, float] | None,
    overrides: Mapping[str, AnchorOverride],
    min_ratio: float,
    max_ratio: float,
) -> PlanBand:
    """The band of one plan. An override (keyed by plan id or name; the id wins) beats
    the recorded anchor, which beats tonight's list price. `recorded` holds the prices
    first seen: {"monthly": ..., "yearly": ...}. The yearly discount is the one first
    seen when recorded (an apply moves the monthly price and leaves the yearly one, so
    the current ratio is no longer the plan's discount), else tonight's, else none."""
    if min_ratio > 1.0 or max_ratio < 1.0:
        raise ValueError("pricing bounds must satisfy min_ratio <= 1 <= max_ratio")
    override = overrides.get(plan_id) or overrides.get(plan_name)
    recorded_monthly = _number((recorded or {}).get("monthly"))
    recorded_yearly = _number((recorded or {}).get("yearly"))
    if override is not None:
        anchor, source = float(override.anchor), SETTINGS
    elif recorded_monthly is not None:
        anchor, source = float(recorded_monthly), RECORDED
    else:
        anchor, source = float(list_monthly), LIST
    if not math.isfinite(anchor) or anchor < 0:
        raise ValueError(f"plan {plan_name} ({plan_id}): no usable anchor price ({anchor})")
    low, high = anchor * min_ratio, anchor * max_ratio
    if override is not None:
        low = low if override.min_price is None else float(override.min_price)
        high = high if override.max_price is None else float(override.max_price)
    factor = (yearly_factor(recorded_monthly, recorded_yearly)
              or yearly_factor(list_monthly, list_yearly) or 1.0)
    return PlanBand(plan_id, anchor, low, high, source, factor, plan_name)


def cycle_factor(billing_cycle: Iterable[str], yearly_discount: np.ndarray | float) -> np.ndarray:
    """Monthly price → price per billing cycle: 1 for monthly, 12 × the plan's yearly
    discount for yearly. Anything but 'yearly' is billed monthly."""
    cycle = np.asarray([str(c).lower() for c in billing_cycle], dtype=object)
    factor = np.broadcast_to(np.asarray(yearly_discount, dtype=float), cycle.shape)
    return np.where(cycle == "yearly", MONTHS_PER_YEAR * factor, 1.0)


def banded_proposal(mean_dynamic: float, band: PlanBand) -> float:
    """A plan's proposed monthly price: whole rupees, inside the band (rounding to the
    nearest rupee must not step over an edge)."""
    low = math.ceil(band.low - 1e-9)
    high = math.floor(band.high + 1e-9) if math.isfinite(band.high) else math.inf
    proposed = float(round(mean_dynamic))
    if low > high:  # a band narrower than a rupee
        return round(band.clamp(mean_dynamic), 2)
    return float(min(max(proposed, low), high))


def proposed_yearly_price(proposed_monthly: float, band: PlanBand) -> float:
    """The yearly list price that keeps the plan's yearly discount at the proposed
    monthly price (whole rupees)."""
    return float(round(MONTHS_PER_YEAR * band.yearly_factor * proposed_monthly))


@dataclass(frozen=True)
class ProposalState:
    """What eligibility needs of one existing `pricingproposals` document."""

    proposal_id: str
    status: str
    updated_at: dt.datetime | None
    plan_ids: frozenset[str]


def proposal_blockers(
    plan_ids: Iterable[str],
    proposals: Iterable[ProposalState],
    now: dt.datetime,
    cooldown_days: float,
) -> dict[str, str]:
    """plan id → why no new proposal may be made for it tonight (plans free to propose
    are absent). A plan is held while one of its proposals is pending or approved but
    not applied, and for `cooldown_days` after one was applied (its updatedAt is when
    the app set it applied). Rejected and expired proposals hold nothing."""
    wanted = set(plan_ids)
    reasons: dict[str, str] = {}
    cooldown = dt.timedelta(days=cooldown_days)
    # In-flight first, then the latest applied: one reason per plan, the most telling.
    ordered = sorted(proposals, key=lambda p: (p.status not in IN_FLIGHT,
                                               -(p.updated_at.timestamp() if p.updated_at
                                                 else 0.0)))
    for proposal in ordered:
        for plan in proposal.plan_ids & wanted:
            if plan in reasons:
                continue
            if proposal.status in IN_FLIGHT:
                reasons[plan] = f"proposal {proposal.proposal_id} {IN_FLIGHT[proposal.status]}"
            # An applied proposal without a time (not written by the app) places no cool-down.
            elif (proposal.status == "applied" and proposal.updated_at is not None
                  and now - proposal.updated_at < cooldown):
                until = proposal.updated_at + cooldown
                reasons[plan] = (f"cool-down after proposal {proposal.proposal_id} applied "
                                 f"{proposal.updated_at:%Y-%m-%d %H:%M} UTC, until "
                                 f"{until:%Y-%m-%d %H:%M} UTC")
    return reasons


def change_id(night: str, plan_id: str) -> bytes:
    """12 bytes derived from the night and the plan: a retried write or a rerun of the
    same night gives a change the same _id."""
    return hashlib.sha256(f"pricing-change:{night}:{plan_id}".encode()).digest()[:12]


def plan_bands(
    plans: pd.DataFrame,
    recorded: Mapping[str, Mapping[str, float]],
    overrides: Mapping[str, AnchorOverride],
    min_ratio: float,
    max_ratio: float,
) -> dict[str, PlanBand]:
    """plan id → band, for every plan of the lake's plans table (columns plan_id,
    plan_name, monthly_price, yearly_price) with a usable price or an override."""
    bands: dict[str, PlanBand] = {}
    for plan in plans.drop_duplicates("plan_id").itertuples(index=False):
        plan_id, name = str(plan.plan_id), str(plan.plan_name)
        monthly = _number(plan.monthly_price)
        has_anchor = (plan_id in overrides or name in overrides
                      or _number(recorded.get(plan_id, {}).get("monthly")) is not None)
        if monthly is None and not has_anchor:
            continue  # a plan without a price prices no one (scoring refuses its customers)
        bands[plan_id] = plan_band(plan_id, name, monthly if monthly is not None else math.nan,
                                   _number(getattr(plan, "yearly_price", None)),
                                   recorded.get(plan_id), overrides, min_ratio, max_ratio)
    return bands


def customer_bands(scores: pd.DataFrame, bands: Mapping[str, PlanBand],
                            plans: pd.DataFrame) -> pd.DataFrame:
    """Adds to `scores` (columns plan_id, base_price = the plan's monthly list price,
    optional billing_cycle) per customer: the plan's anchor_price, band_low/band_high
    (monthly), anchor_source, yearly_factor, static_price (tonight's list price held to
    the band), billing_cycle (monthly unless yearly), cycle_factor (monthly price →
    price per cycle) and cycle_list_price (the plan's yearly list price for yearly
    subscribers; without one, the discounted monthly price × 12)."""
    missing = sorted(set(scores["plan_id"].astype(str)) - set(bands))
    if missing:
        raise ValueError(f"customers on plans without a price band: {missing[:5]}")
    band = pd.DataFrame([vars(b) for b in bands.values()]).set_index("plan_id")
    keys = scores["plan_id"].astype(str)
    scores["anchor_price"] = keys.map(band["anchor"]).to_numpy(float)
    scores["band_low"] = keys.map(band["low"]).to_numpy(float)
    scores["band_high"] = keys.map(band["high"]).to_numpy(float)
    scores["anchor_source"] = keys.map(band["source"]).to_numpy(object)
    scores["yearly_factor"] = keys.map(band["yearly_factor"]).to_numpy(float)
    scores["static_price"] = np.clip(scores["base_price"].to_numpy(float),
                                     scores["band_low"], scores["band_high"])
    if "billing_cycle" not in scores.columns:
        scores["billing_cycle"] = "monthly"
    scores["billing_cycle"] = np.where(
        scores["billing_cycle"].astype(str).str.lower() == "yearly", "yearly", "monthly")
    scores["cycle_factor"] = cycle_factor(scores["billing_cycle"], scores["yearly_factor"])
    plan_rows = plans.drop_duplicates("plan_id").reindex(columns=["plan_id", "yearly_price"])
    yearly_list = keys.map(plan_rows.set_index(plan_rows["plan_id"].astype(str))
                           ["yearly_price"]).astype(float)
    scores["cycle_list_price"] = np.where(
        scores["billing_cycle"] == "yearly",
        yearly_list.where(yearly_list > 0).fillna(scores["base_price"] * scores["cycle_factor"]),
        scores["base_price"])
    return scores


def paid_per_cycle(scores: pd.DataFrame, subscriptions: list[pd.DataFrame]) -> np.ndarray:
    """What each customer pays per billing cycle today: the scored subscription's
    pricing.finalPrice, else its totalAmount; NaN when neither is known.
    `subscriptions`: frames indexed by subscription id with those two columns."""
    if "subscription_id" not in scores.columns or not subscriptions:
        return np.full(len(scores), np.nan)
    subs = pd.concat(subscriptions)
    subs = subs[~subs.index.duplicated(keep="last")]
    paid = subs["final_price"].where(subs["final_price"] > 0).fillna(
        subs["total_amount"].where(subs["total_amount"] > 0))
    return scores["subscription_id"].astype(str).map(paid).to_numpy(float)


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None
