"""Segmentation habits: six-month per-live-day rates, smoothed shares, devices, billing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.segmentation import (
    FAILURE_PRIOR,
    HABIT_DAYS,
    PEAK_PRIOR_SESSIONS,
    build_segmentation_features,
)
from tests.unit.synthetic import make_tables, table, with_customer

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")
D = pd.Timedelta(days=1)
H = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def tables():
    return make_tables(n_customers=200, seed=5)


def _sessions(user: str, when: list[pd.Timestamp], devices: list[str]) -> pd.DataFrame:
    return table(
        "usagelogs",
        session_id=[f"{i:024x}" for i in range(len(when))],
        user_id=[user] * len(when),
        timestamp=when,
        download_gb=1.0,
        upload_gb=0.0,
        device_type=devices,
    )


def test_habits_are_per_live_day_over_six_months(tables) -> None:
    """Two customers with the same daily habits, one ten times older: same rates."""
    old, new = "e1" * 12, "e2" * 12
    t = with_customer(tables, old, AS_OF - 1000 * D)
    t = with_customer(t, new, AS_OF - 20 * D)
    t.subscriptions.loc[t.subscriptions.index[-1], "subscription_id"] = "f0" * 12
    # One session a day at 20:30 IST (15:00 UTC, peak) from one of two devices; the old
    # customer's sessions before the six-month window do not count.
    old_days = [AS_OF - k * D + 15 * H for k in range(1, 400)]
    new_days = [AS_OF - k * D + 15 * H for k in range(1, 21)]
    usage = pd.concat([
        _sessions(old, old_days, ["Mobile", "Desktop"] * 199 + ["Mobile"]),
        _sessions(new, new_days, ["Mobile", "Desktop"] * 10),
    ], ignore_index=True)
    usage["session_id"] = [f"{i:024x}" for i in range(len(usage))]
    t.usagelogs = usage
    seg = build_segmentation_features(t, AS_OF)
    for user, sessions in ((old, HABIT_DAYS), (new, 20)):
        row = seg.loc[user]
        assert row["sessions_per_day_180d"] == pytest.approx(1.0, rel=0.01)
        assert row["monthly_gb"] == pytest.approx(30.0, rel=0.01)
        assert row["device_types_180d"] == 2.0
        # All sessions in the peak, pulled towards 4/24 by the prior's pseudo-sessions.
        smoothed = (sessions + PEAK_PRIOR_SESSIONS * 4 / 24) / (sessions + PEAK_PRIOR_SESSIONS)
        assert row["peak_session_share_180d"] == pytest.approx(smoothed, rel=0.01)
    assert seg.loc[new, "peak_session_share_180d"] < seg.loc[old, "peak_session_share_180d"]


def test_quiet_customer_gets_the_prior_not_nan(tables) -> None:
    user = "e3" * 12
    t = with_customer(tables, user, AS_OF - 60 * D, cycle="yearly")
    t.usagelogs = t.usagelogs.iloc[0:0]
    t.payments = t.payments.iloc[0:0]
    seg = build_segmentation_features(t, AS_OF)
    assert np.isfinite(seg.to_numpy()).all()
    row = seg.loc[user]
    assert row["peak_session_share_180d"] == pytest.approx(4 / 24)
    assert row["sessions_per_day_180d"] == 0.0 and row["device_types_180d"] == 0.0
    assert row["yearly_billing"] == 1.0
    a, b = FAILURE_PRIOR
    assert row["payment_failure_rate"] == pytest.approx(a / (a + b))


def test_payment_failure_rate_uses_the_whole_history(tables) -> None:
    user = "e4" * 12
    t = with_customer(tables, user, AS_OF - 400 * D)
    created = [AS_OF - (30 * k + 3) * D for k in range(12)]  # one charge a month, a year
    failed = [k >= 6 for k in range(12)]  # the six oldest failed, the recent ones did not
    t.payments = table(
        "payments",
        payment_id=[f"{i:024x}" for i in range(12)],
        user_id=[user] * 12,
        payment_status=["failed" if f else "captured" for f in failed],
        created_at=created,
        failed_at=[c if f else pd.NaT for c, f in zip(created, failed, strict=True)],
    )
    row = build_segmentation_features(t, AS_OF).loc[user]
    assert row["payment_failure_rate_90d"] == 0.0
    a, b = FAILURE_PRIOR
    assert row["payment_failure_rate"] == pytest.approx((6 + a) / (12 + a + b))
    assert row["yearly_billing"] == 0.0
