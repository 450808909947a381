"""Consecutive nights beside the live app (bench/soak.py, small): the world grows a day
between nights with the app's own writers on, and the admin applies the first night's
proposal before the second night proposes again. Every night publishes, nothing the app
writes is quarantined, and prices stay in the band around each plan's anchor whatever
the list price became."""

from __future__ import annotations

import datetime as dt

import pytest

from bbx.settings import Settings
from bench.soak import run_soak
from simulator import simulate

FIRST_AS_OF = dt.date(2026, 11, 20)


@pytest.mark.slow
def test_two_nights_beside_the_app_publish_and_hold_the_band(
    flow_env: Settings, mongo_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BBX_PRICING__PROPOSAL_COOLDOWN_DAYS", "0")
    db = mongo_client[flow_env.mongo.database]
    simulate(db, customers=300, days=60, seed=7, end=FIRST_AS_OF - dt.timedelta(days=1))
    list_prices = {p["name"]: p["pricing"]["monthly"] for p in db.plans.find()}

    reports = run_soak(db, nights=2, first_as_of=FIRST_AS_OF, seed=7, progress=lambda _: None)

    assert [r.published for r in reports] == [True, True], [r.error for r in reports]
    assert all(r.quarantined_share < 0.001 for r in reports), [r.quarantined for r in reports]
    # The app's hourly generator ran between the nights: batches of sessions sharing one
    # timestamp, all of which reached the lake (nothing quarantined above).
    batch = next(db.usagelogs.aggregate([
        {"$match": {"timestamp": {"$gte": dt.datetime(2026, 11, 20, tzinfo=dt.UTC)}}},
        {"$group": {"_id": {"u": "$userId", "t": "$timestamp"}, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}}, {"$limit": 1}]), None)
    assert batch is not None
    # The admin applied the first night's proposal: list prices moved ...
    applied = reports[0].applied
    assert applied
    now = {p["name"]: p["pricing"]["monthly"] for p in db.plans.find()}
    assert any(now[plan] != list_prices[plan] for plan in applied)
    # ... and yet every later proposal and published price stays in the anchor band.
    band = flow_env.pricing.max_ratio - 1
    for report in reports:
        for deviation in (report.max_proposal_deviation, report.max_price_deviation):
            assert deviation is None or deviation <= band + 1e-6
    assert reports[-1].max_price_deviation is not None
    # A proposal followed an apply (no cool-down here), and it too stayed in the band.
    assert any(r.proposed_plans and r.max_proposal_deviation is not None for r in reports[1:])
