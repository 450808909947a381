"""P = P_base × (1 + α·D + β·E + γ·R), its bounds, and the risk bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models.ab import CONTROL, TREATMENT, arm_prices, assign_arms
from models.pricing import PricingWeights, dynamic_price, price_terms, risk_band, risk_score

W = PricingWeights(alpha=0.10, beta=0.05, gamma=-0.15)


def test_formula_by_hand() -> None:
    # 500 × (1 + 0.1·0.5 + 0.05·(-1.2) + (-0.15)·0.2) = 500 × 0.96 = 480
    price = dynamic_price(
        np.array([500.0, 1000.0]),
        0.5,
        np.array([-1.2, -0.3]),
        np.array([0.2, 0.0]),
        W,
        0.8,
        1.2,
        np.array([False, False]),
    )
    # 1000 × (1 + 0.05 - 0.015 + 0) = 1035
    np.testing.assert_allclose(price, [480.0, 1035.0])
    terms = price_terms(0.5, np.array([-1.2, -0.3]), np.array([0.2, 0.0]), W)
    np.testing.assert_allclose(terms["demand"], [0.05, 0.05])
    np.testing.assert_allclose(terms["elasticity"], [-0.06, -0.015])
    np.testing.assert_allclose(terms["risk"], [-0.03, 0.0])


def test_prices_within_bounds_and_high_risk_never_above_base() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    base = rng.choice([399.0, 499.0, 799.0, 3999.0], n)
    weights = PricingWeights(alpha=1.0, beta=0.3, gamma=-1.0)  # extreme, to hit both bounds
    high = rng.random(n) < 0.3
    price = dynamic_price(
        base, rng.random(n), rng.uniform(-3, 0, n), rng.random(n), weights, 0.8, 1.2, high
    )
    assert (price >= 0.8 * base - 1e-9).all() and (price <= 1.2 * base + 1e-9).all()
    assert (price[high] <= base[high] + 1e-9).all()
    assert (price[~high] > base[~high]).any() and np.isclose(price, 1.2 * base).any()
    assert np.isclose(price, 0.8 * base).any()


def test_clamps_by_hand() -> None:
    w = PricingWeights(alpha=1.0, beta=0.0, gamma=-1.0)
    up = dynamic_price(500.0, 1.0, 0.0, 0.0, w, 0.8, 1.2, np.array(False))
    assert up == pytest.approx(600.0)
    assert dynamic_price(500.0, 1.0, 0.0, 0.0, w, 0.8, 1.2, np.array(True)) == pytest.approx(500)
    down = dynamic_price(500.0, 0.0, 0.0, 1.0, w, 0.8, 1.2, np.array(True))
    assert down == pytest.approx(400.0)


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0.0, "low"),
        (39.99, "low"),
        (40.0, "medium"),
        (55.0, "medium"),
        (70.0, "medium"),
        (70.01, "high"),
        (100.0, "high"),
    ],
)
def test_risk_band_boundaries(score: float, band: str) -> None:
    assert risk_band(score, 40.0, 70.0) == band
    assert list(risk_band(np.array([score]), 40.0, 70.0)) == [band]


def test_risk_score() -> None:
    np.testing.assert_allclose(
        risk_score(np.array([-0.1, 0.0, 0.4, 1.0, 1.5])), [0.0, 0.0, 40.0, 100.0, 100.0]
    )
    with pytest.raises(ValueError):
        risk_band(50.0, 70.0, 40.0)


def test_risk_score_over_several_horizons_compounds_the_hazard() -> None:
    # 10% a month held for 12 months: 1 - 0.9^12 = 71.8% within the year.
    np.testing.assert_allclose(risk_score(np.array([0.1]), periods=12), [100 * (1 - 0.9**12)])
    np.testing.assert_allclose(risk_score(np.array([0.0, 1.0]), periods=12), [0.0, 100.0])
    scores = risk_score(np.linspace(0, 1, 11), periods=365 / 30)
    assert np.all(np.diff(scores) >= 0)
    with pytest.raises(ValueError):
        risk_score(0.5, periods=0)


# --- properties (hypothesis) ----------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
weights_st = st.builds(PricingWeights, alpha=finite, beta=finite, gamma=finite)
bounds_st = st.tuples(st.floats(0.01, 1.0), st.floats(1.0, 5.0))


@hsettings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 40),
    data=st.data(),
    weights=weights_st,
    bounds=bounds_st,
)
def test_every_price_within_its_bounds_for_any_inputs(n, data, weights, bounds) -> None:
    base = data.draw(arrays(float, n, elements=st.floats(1.0, 1e5)))
    # Any floats at all for the model inputs, NaN and infinities included.
    demand = data.draw(arrays(float, n, elements=st.floats(allow_nan=True)))
    elasticity = data.draw(arrays(float, n, elements=st.floats(allow_nan=True)))
    churn = data.draw(arrays(float, n, elements=st.floats(allow_nan=True)))
    high = data.draw(arrays(bool, n))
    lo, hi = bounds
    price = dynamic_price(base, demand, elasticity, churn, weights, lo, hi, high)
    assert np.all(np.isfinite(price))
    assert np.all(price >= lo * base * (1 - 1e-12))
    assert np.all(price <= hi * base * (1 + 1e-12))
    assert np.all(price[high] <= base[high])


@hsettings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=24), min_size=1, max_size=50, unique=True),
    share=st.floats(0.0, 1.0),
    experiment=st.text(min_size=1, max_size=20),
    dynamic=st.floats(1.0, 1e5),
)
def test_control_arm_always_pays_the_static_price(ids, share, experiment, dynamic) -> None:
    arms = assign_arms(ids, experiment, share)
    static = np.full(len(ids), 499.0)
    offered = arm_prices(static, np.full(len(ids), dynamic), arms)
    assert set(arms) <= {CONTROL, TREATMENT}
    assert np.all(offered[arms == CONTROL] == 499.0)
    assert np.all(offered[arms == TREATMENT] == dynamic)


@hsettings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1, max_size=24), min_size=1, max_size=50, unique=True),
    share=st.floats(0.0, 1.0),
    experiment=st.text(min_size=1, max_size=20),
)
def test_assignment_is_stable(ids, share, experiment) -> None:
    first = assign_arms(ids, experiment, share)
    # Same customer, same experiment: same arm, whatever else is in the batch or its order.
    again = assign_arms(list(reversed(ids)), experiment, share)[::-1]
    alone = np.array([assign_arms([u], experiment, share)[0] for u in ids])
    assert list(first) == list(again) == list(alone)
    # A larger treatment share only ever moves customers into treatment.
    wider = assign_arms(ids, experiment, min(1.0, share + 0.2))
    assert np.all(wider[first == TREATMENT] == TREATMENT)


def test_assignment_share_and_extremes() -> None:
    ids = [f"{i:024x}" for i in range(20_000)]
    arms = assign_arms(ids, "exp-a", 0.3)
    assert abs(np.mean(arms == TREATMENT) - 0.3) < 0.015
    assert np.all(assign_arms(ids[:100], "exp-a", 0.0) == CONTROL)
    assert np.all(assign_arms(ids[:100], "exp-a", 1.0) == TREATMENT)
    # Another experiment reshuffles (independent hash), at the same share.
    other = assign_arms(ids, "exp-b", 0.3)
    assert abs(np.mean(other[arms == TREATMENT] == TREATMENT) - 0.3) < 0.03
    with pytest.raises(ValueError):
        assign_arms(ids[:3], "exp-a", 1.5)


def test_price_history_of_a_cohort_where_nobody_left() -> None:
    # A bucket of customers with no ended subscription: the end dates are all missing,
    # and must still compare as UTC times (a pandas all-NaT column loses its time zone).
    from features.price_history import price_response_history
    from tests.unit.synthetic import make_tables

    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    tables = make_tables(n_customers=60, churn_share=0.0, seed=3, as_of=as_of)
    tables.subscriptions["cancel_requested_at"] = pd.NaT
    tables.subscriptions["subscription_status"] = "active"
    history = price_response_history(tables, as_of - pd.Timedelta(days=60), as_of)
    assert len(history) > 0
    assert not history["churned"].any()
    months = 60 / 30.4375
    assert history["exposure_months"].to_numpy() == pytest.approx(months)
