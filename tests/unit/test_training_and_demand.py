"""Training set, customer split, segmentation features and the demand factor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.demand import network_demand_factor
from features.registry import CHURN_FEATURE_NAMES
from features.segmentation import SEGMENTATION_FEATURE_NAMES, build_segmentation_features
from features.training import build_training_set, split_by_customer
from tests.unit.synthetic import make_tables, table

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")
D = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def tables():
    return make_tables(n_customers=400, seed=11)


@pytest.fixture(scope="module")
def training(tables):
    cutoffs = [AS_OF - 30 * D - 30 * i * D for i in range(3)]
    return build_training_set(tables, cutoffs, 30, "cancelled")


def test_training_set_shape_and_labels(tables, training) -> None:
    assert {"user_id", "label", "cutoff", *CHURN_FEATURE_NAMES} <= set(training.columns)
    assert training["cutoff"].nunique() == 3
    assert not training.duplicated(["user_id", "cutoff"]).any()
    assert set(training["label"].unique()) == {0, 1}
    # A label 1 means that customer's cancellation request lies in the window.
    subs = tables.subscriptions.set_index("user_id")
    positives = training[training["label"] == 1]
    requested = subs.loc[positives["user_id"], "cancel_requested_at"].reset_index(drop=True)
    cut = positives["cutoff"].reset_index(drop=True)
    assert ((requested > cut) & (requested <= cut + 30 * D)).all()


def test_split_has_no_customer_in_both(training) -> None:
    train, valid = split_by_customer(training, 0.25, seed=7)
    assert set(train["user_id"]).isdisjoint(valid["user_id"])
    assert len(train) + len(valid) == len(training)
    share = valid["user_id"].nunique() / training["user_id"].nunique()
    assert 0.2 < share < 0.3
    assert valid["label"].sum() > 0 and train["label"].sum() > 0
    # Deterministic and independent of row order.
    shuffled = training.sample(frac=1.0, random_state=1)
    _, valid2 = split_by_customer(shuffled, 0.25, seed=7)
    assert set(valid2["user_id"]) == set(valid["user_id"])
    _, valid3 = split_by_customer(training, 0.25, seed=8)
    assert set(valid3["user_id"]) != set(valid["user_id"])


def test_segmentation_features_are_finite_and_pit(tables) -> None:
    cut = AS_OF - 40 * D
    seg = build_segmentation_features(tables, cut)
    assert list(seg.columns) == list(SEGMENTATION_FEATURE_NAMES)
    assert np.isfinite(seg.to_numpy()).all()
    assert seg["peak_hour_share"].between(0, 1).all()
    late = tables.usagelogs["timestamp"] >= cut
    cropped = type(tables)(**vars(tables))
    cropped.usagelogs = tables.usagelogs[~late]
    pd.testing.assert_frame_equal(seg, build_segmentation_features(cropped, cut))


def test_peak_hours_are_ist(tables) -> None:
    user = tables.subscriptions.loc[
        tables.subscriptions["subscription_status"].eq("active"), "user_id"
    ].iloc[0]
    day = AS_OF - 3 * D
    usage = table(
        "usagelogs",
        session_id=["aa" * 12, "bb" * 12, "cc" * 12],
        user_id=[user] * 3,
        # 14:00 UTC = 19:30 IST (peak); 13:00 UTC = 18:30 IST; 17:45 UTC = 23:15 IST.
        timestamp=[
            day + pd.Timedelta(hours=14),
            day + pd.Timedelta(hours=13),
            day + pd.Timedelta(hours=17, minutes=45),
        ],
        download_gb=[3.0, 1.0, 6.0],
        upload_gb=0.0,
    )
    t = type(tables)(**vars(tables))
    t.usagelogs = usage
    seg = build_segmentation_features(t, AS_OF)
    assert seg.loc[user, "peak_hour_share"] == pytest.approx(0.3)


def daily_usage(values: list[float], cutoff: pd.Timestamp) -> pd.DataFrame:
    """One session per day, the last value on the day before the cutoff."""
    n = len(values)
    return table(
        "usagelogs",
        session_id=[f"{i:024x}" for i in range(n)],
        user_id="ab" * 12,
        timestamp=[cutoff - (n - i) * D + pd.Timedelta(hours=12) for i in range(n)],
        download_gb=values,
        upload_gb=0.0,
    )


def test_demand_factor() -> None:
    cut = AS_OF
    busy_now = daily_usage([10.0] * 83 + [50.0] * 7, cut)
    quiet_now = daily_usage([50.0] * 83 + [10.0] * 7, cut)
    assert network_demand_factor(busy_now, cut, 7, 90) == pytest.approx(1.0)
    assert network_demand_factor(quiet_now, cut, 7, 90) == pytest.approx(0.0)
    mid = daily_usage([10.0] * 40 + [30.0] * 7 + [50.0] * 36 + [30.0] * 7, cut)
    assert network_demand_factor(mid, cut, 7, 90) == pytest.approx(0.5)
    flat = daily_usage([20.0] * 90, cut)
    assert network_demand_factor(flat, cut, 7, 90) == 0.5
    assert network_demand_factor(flat.iloc[:0], cut, 7, 90) == 0.5
    # A flood after the cutoff changes nothing.
    future = table(
        "usagelogs",
        session_id=["ff" * 12],
        user_id="ab" * 12,
        timestamp=[cut + pd.Timedelta(hours=1)],
        download_gb=1e6,
        upload_gb=0.0,
    )
    flooded = pd.concat([quiet_now, future], ignore_index=True)
    assert network_demand_factor(flooded, cut, 7, 90) == pytest.approx(0.0)


def test_new_customer_rates_use_only_live_days(tables) -> None:
    user = "ee" * 12
    start = AS_OF - 5 * D
    t = type(tables)(**vars(tables))
    t.subscriptions = pd.concat(
        [
            tables.subscriptions,
            table(
                "subscriptions",
                subscription_id=["ef" * 12],
                user_id=[user],
                plan_id=[tables.plans["plan_id"].iloc[0]],
                subscription_status="active",
                start_date=[start],
                updated_at=[start],
                billing_cycle="monthly",
            ),
        ],
        ignore_index=True,
    )
    t.usagelogs = table(
        "usagelogs",
        session_id=[f"{i:024x}" for i in range(5)],
        user_id=[user] * 5,
        timestamp=[start + i * D + pd.Timedelta(hours=2) for i in range(5)],
        download_gb=2.0,
        upload_gb=0.0,
    )
    row = build_segmentation_features(t, AS_OF).loc[user]
    assert row["active_day_share_30d"] == pytest.approx(1.0)
    assert row["usage_cv_30d"] == pytest.approx(0.0)  # same GB every live day
    assert row["monthly_gb"] == pytest.approx(10.0 * 30 / 5)
