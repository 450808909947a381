"""Simulator scenarios: each writes app-shaped documents and has its own truth; the
default world is unchanged; `bbx simulate --scenario` refuses unknown names."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pymongo.database import Database
from typer.testing import CliRunner

from simulator import TRUTH_COLLECTION, simulate
from simulator.catalog import SEGMENTS
from simulator.observable import RecentDocuments, observable_probability
from simulator.scenarios import (
    CONTRACT_DRIVEN,
    DRIFT,
    DRIFT_FACTOR,
    DRIFT_SEGMENT,
    SHORT_HISTORY,
    ages_at_signup_days,
)
from simulator.truth import churn_probabilities
from simulator.world import SimulationSpec, build_world

END = dt.date(2026, 11, 25)


def _spec(scenario: str, **kw) -> SimulationSpec:
    return SimulationSpec(customers=400, days=120, seed=9, end=END, scenario=scenario, **kw)


def test_default_scenario_is_the_world_without_one() -> None:
    plain = build_world(SimulationSpec(customers=400, days=120, seed=9, end=END))
    named = build_world(_spec("default"))
    assert np.array_equal(plain.full.cancel_day, named.full.cancel_day)
    assert np.array_equal(plain.full.daily_hazard, named.full.daily_hazard)


@pytest.mark.parametrize("scenario", [CONTRACT_DRIVEN, SHORT_HISTORY, DRIFT])
def test_every_scenario_writes_app_documents_and_its_truth(mongo_db: Database,
                                                           scenario: str) -> None:
    report = simulate(mongo_db, customers=150, days=90, seed=3, end=END, scenario=scenario,
                      history_days=20 if scenario == SHORT_HISTORY else None)
    assert report.customers == 150 and report.documents["usagelogs"] > 0
    assert mongo_db[TRUTH_COLLECTION].count_documents({}) == 150
    first_session = mongo_db.usagelogs.find_one(sort=[("timestamp", 1)])["timestamp"]
    first_login = mongo_db.auditlogs.find_one({"action": "login"},
                                              sort=[("timestamp", 1)])["timestamp"]
    start = dt.datetime(2026, 8, 28, tzinfo=dt.UTC)  # the first of the 90 days
    if scenario == SHORT_HISTORY:
        # Usage and logins only for the last 20 days; accounts and payments from before.
        last_20 = dt.datetime(2026, 11, 6, tzinfo=dt.UTC)
        assert first_session >= last_20 and first_login >= last_20
        assert mongo_db.payments.find_one(sort=[("createdAt", 1)])["createdAt"] < start + \
            dt.timedelta(days=30)
    else:
        assert first_session < start + dt.timedelta(days=2)


def test_short_history_changes_only_what_is_written() -> None:
    full, short = build_world(_spec("default")), build_world(_spec(SHORT_HISTORY,
                                                                   history_days=30))
    assert np.array_equal(full.full.cancel_day, short.full.cancel_day)
    assert short.full.activity_from_day == 90 and full.full.activity_from_day == 0
    days = np.arange(120)
    activity = short.full.activity(short.pop.start_day, days)
    assert (activity[:90] == 0).all() and (activity[90:] > 0).any()


def test_contract_driven_hazard_is_read_off_the_documents(mongo_db: Database) -> None:
    simulate(mongo_db, customers=60, days=40, seed=5, end=END, scenario=CONTRACT_DRIVEN)
    world = build_world(SimulationSpec(customers=60, days=40, seed=5, end=END,
                                       scenario=CONTRACT_DRIVEN))
    # The age the hazard uses is the one users.dateOfBirth shows.
    ages = ages_at_signup_days(5, 60)
    for i, user in enumerate(world.keys.user_ids[:20]):
        doc = mongo_db.users.find_one({"_id": user})
        sub = mongo_db.subscriptions.find_one({"user": user})
        shown = (sub["startDate"] - doc["dateOfBirth"]).total_seconds() / 86_400
        assert shown == pytest.approx(ages[i], abs=1.0)
    # No wind-down: leavers are active as usual up to the day they go, and the truth is
    # the hazard itself (no decided state); the observable reference is that hazard with
    # the coming weeks' tickets and failed charges integrated out.
    tl = world.full
    leavers = np.flatnonzero((tl.cancel_day >= 1) & (tl.cancel_day > world.pop.start_day + 2))
    assert len(leavers)
    for i in leavers[:10]:
        day_before = np.array([tl.cancel_day[i] - 1])
        assert tl.activity(world.pop.start_day, day_before)[0, i] == 1.0
    day = 20
    _, p_cancel, _ = churn_probabilities(world, day)
    cum = np.cumsum(tl.daily_hazard, axis=0, dtype=np.float64)
    expected = 1.0 - np.exp(-(cum[day + 29] - cum[day - 1]))
    live = ~np.isnan(p_cancel)
    assert np.allclose(p_cancel[live], expected[live])
    observable = observable_probability(world, day, RecentDocuments(world, day))[live]
    assert np.corrcoef(observable, p_cancel[live])[0, 1] > 0.9
    assert observable.mean() == pytest.approx(p_cancel[live].mean(), rel=0.25)


def test_drift_raises_one_segments_hazard_from_a_date_inside_the_history() -> None:
    spec = SimulationSpec(customers=2000, days=200, seed=4, end=END, scenario=DRIFT)
    drift, default = build_world(spec), build_world(
        SimulationSpec(customers=2000, days=200, seed=4, end=END))
    segment = drift.pop.segment == [s.name for s in SEGMENTS].index(DRIFT_SEGMENT)
    ratio = drift.full.daily_hazard / np.maximum(default.full.daily_hazard, 1e-30)
    exposed = default.full.daily_hazard > 0
    assert np.allclose(ratio[150:][:, segment][exposed[150:][:, segment]], DRIFT_FACTOR,
                       rtol=1e-4)
    assert np.allclose(ratio[:100][exposed[:100]], 1.0, rtol=1e-4)
    assert np.allclose(ratio[150:][:, ~segment][exposed[150:][:, ~segment]], 1.0, rtol=1e-4)


def test_cli_refuses_an_unknown_scenario() -> None:
    from bbxcli.cli import app

    result = CliRunner().invoke(app, ["simulate", "--scenario", "nonsense", "--customers", "5"])
    assert result.exit_code == 1
    assert "unknown scenario 'nonsense'" in result.output
