"""Plan price policy: anchors, bands, proposal eligibility, cycle prices (pure)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from bbx.settings import PlanAnchorSettings
from models.plan_prices import (
    AnchorOverride,
    PlanBand,
    ProposalState,
    banded_proposal,
    change_id,
    customer_bands,
    cycle_factor,
    paid_per_cycle,
    plan_band,
    plan_bands,
    proposal_blockers,
    proposed_yearly_price,
)

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def test_the_admins_anchor_beats_the_recorded_one_which_beats_the_list_price() -> None:
    recorded = {"monthly": 3999.0, "yearly": 3999.0 * 10.8}
    # Tonight's list price is the one an apply left (4792), yearly untouched.
    band = plan_band("p1", "Enterprise", 4792.0, 3999.0 * 10.8, recorded, {}, 0.8, 1.2)
    assert (band.anchor, band.source) == (3999.0, "recorded")
    assert (band.low, band.high) == pytest.approx((3199.2, 4798.8))
    assert band.yearly_factor == pytest.approx(0.9)  # as first seen, not 10.8·3999/(12·4792)

    by_name = {"Enterprise": AnchorOverride(4000.0, 3500.0, 4500.0)}
    band = plan_band("p1", "Enterprise", 4792.0, None, recorded, by_name, 0.8, 1.2)
    assert (band.anchor, band.low, band.high, band.source) == (4000.0, 3500.0, 4500.0,
                                                               "settings")
    by_both = by_name | {"p1": AnchorOverride(500.0)}
    band = plan_band("p1", "Enterprise", 4792.0, None, recorded, by_both, 0.8, 1.2)
    assert (band.anchor, band.low, band.high) == pytest.approx((500.0, 400.0, 600.0))

    band = plan_band("p2", "Basic", 499.0, None, None, {}, 0.8, 1.2)
    assert (band.anchor, band.source, band.yearly_factor) == (499.0, "list", 1.0)


def test_bands_refuse_bounds_that_do_not_hold_the_anchor() -> None:
    with pytest.raises(ValueError, match="low <= anchor <= high"):
        PlanBand("p", 500.0, 550.0, 600.0, "settings", 1.0)
    with pytest.raises(ValidationError, match="min_price <= anchor <= max_price"):
        PlanAnchorSettings(anchor=500.0, max_price=450.0)
    assert PlanAnchorSettings(anchor=500.0, min_price=400.0, max_price=600.0).max_price == 600


def test_plan_bands_cover_every_priced_plan_of_the_lake() -> None:
    plans = pd.DataFrame({"plan_id": ["a", "b", "c"], "plan_name": ["A", "B", "C"],
                          "monthly_price": [500.0, np.nan, 999.0],
                          "yearly_price": [5400.0, np.nan, np.nan]})
    bands = plan_bands(plans, {"c": {"monthly": 899.0, "yearly": None}}, {}, 0.8, 1.2)
    assert set(bands) == {"a", "c"}  # b: no price, nothing recorded, no override
    assert bands["a"].yearly_factor == pytest.approx(0.9)
    assert bands["c"].anchor == 899.0 and bands["c"].yearly_factor == 1.0


def test_a_proposal_is_whole_rupees_and_never_rounds_over_an_edge() -> None:
    band = PlanBand("p", 399.0, 319.2, 478.8, "recorded", 0.9)
    assert banded_proposal(478.7, band) == 478.0  # round() would give 479 > 478.8
    assert banded_proposal(319.3, band) == 320.0
    assert banded_proposal(5000.0, band) == 478.0
    assert banded_proposal(420.4, band) == 420.0
    assert proposed_yearly_price(420.0, band) == round(12 * 0.9 * 420)


def test_proposals_in_flight_or_recently_applied_hold_their_plans() -> None:
    def state(i: str, status: str, plans: set[str], days_ago: float | None = 1.0):
        updated = None if days_ago is None else NOW - dt.timedelta(days=days_ago)
        return ProposalState(i, status, updated, frozenset(plans))

    proposals = [
        state("p-pending", "pending", {"a"}),
        state("p-approved", "approved", {"b"}, 40),
        state("p-applied-new", "applied", {"c", "a"}, 3),
        state("p-applied-old", "applied", {"d"}, 31),
        state("p-rejected", "rejected", {"e"}),
        state("p-expired", "expired", {"f"}),
        state("p-applied-untimed", "applied", {"g"}, None),
    ]
    blocked = proposal_blockers("abcdefgh", proposals, NOW, cooldown_days=30)
    assert set(blocked) == {"a", "b", "c"}
    assert "p-pending is pending" in blocked["a"]  # in flight says more than a cool-down
    assert "approved but not yet applied" in blocked["b"]
    assert "cool-down" in blocked["c"] and "2026-06-28" in blocked["c"]
    assert set(proposal_blockers("abcd", proposals, NOW, cooldown_days=0)) == {"a", "b"}


def test_change_ids_are_stable_per_night_and_plan() -> None:
    assert change_id("2026-11-30", "a") == change_id("2026-11-30", "a")  # a rerun
    assert len({change_id("2026-11-30", "a"), change_id("2026-11-30", "b"),
                change_id("2026-12-01", "a")}) == 3
    assert len(change_id("2026-11-30", "a")) == 12


def test_yearly_subscribers_are_priced_on_their_cycle() -> None:
    assert list(cycle_factor(["monthly", "yearly", "YEARLY", "trial"], 0.9)) == pytest.approx(
        [1.0, 10.8, 10.8, 1.0])
    bands = {"a": PlanBand("a", 500.0, 400.0, 600.0, "recorded", 0.9)}
    plans = pd.DataFrame({"plan_id": ["a"], "yearly_price": [5400.0]})
    scores = pd.DataFrame({"plan_id": ["a", "a", "a"], "base_price": [650.0, 650.0, 650.0],
                           "billing_cycle": ["monthly", "yearly", None],
                           "subscription_id": ["s1", "s2", "s3"]})
    out = customer_bands(scores, bands, plans)
    assert list(out["billing_cycle"]) == ["monthly", "yearly", "monthly"]
    assert list(out["static_price"]) == [600.0] * 3  # a list price above the band, held
    assert list(out["cycle_list_price"]) == [650.0, 5400.0, 650.0]
    subs = pd.DataFrame({"final_price": [650.0, np.nan, 0.0],
                         "total_amount": [767.0, 5400.0, np.nan]}, index=["s1", "s2", "s3"])
    paid = paid_per_cycle(out, [subs])
    assert paid[:2] == pytest.approx([650.0, 5400.0]) and np.isnan(paid[2])
    with pytest.raises(ValueError, match="without a price band"):
        customer_bands(scores.assign(plan_id="zz"), bands, plans)
