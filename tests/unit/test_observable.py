"""The observable reference reads only what the documents show up to as-of: the coming
weeks are integrated out, the past hazard is the simulator's own, and the documents'
likelihood is the simulator's model of them."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from scipy import stats

from simulator.catalog import LEAVER_ACTIVITY_FLOOR
from simulator.observable import (
    LOG_BYTES_SD,
    LOG_MINUTES_SD,
    RatesFromDocuments,
    RecentDocuments,
    _Evidence,
    _log_mean_bytes,
    _weekend_factor,
    hazard_of,
    observable_probability,
    past_hazard_inputs,
)
from simulator.scenarios import CONTRACT_DRIVEN, DRIFT
from simulator.truth import churn_probabilities
from simulator.world import SimulationSpec, build_world, in_service

END = dt.date(2026, 11, 25)
DAY = 100  # as-of inside the 120 written days; the simulation runs 60 more


def _world(scenario: str = "default", customers: int = 500):
    return build_world(SimulationSpec(customers=customers, days=120, seed=11, end=END,
                                      scenario=scenario, annual_churn=0.4))


def _usual_documents(world, day: int, seed: int = 0) -> RecentDocuments:
    """Documents of customers behaving as usual over the look-back (no wind-down)."""
    rng = np.random.default_rng(seed)
    documents = RecentDocuments(world, day)
    weekend = _weekend_factor(world, day, documents.days)
    rate = world.pop.sessions_per_day[:, None] * weekend[None, :]
    documents.sessions = rng.poisson(rate).astype(float)
    chance = np.minimum(world.pop.logins_per_day, 0.9)[:, None]
    documents.logged_in = (rng.random(rate.shape) < chance).astype(float)
    return documents


def test_future_incidents_do_not_move_the_reference() -> None:
    """Two worlds alike up to as-of whose next weeks differ (other incidents, tickets and
    hazard) give the same observable probability from the same documents."""
    world = _world()
    tl = world.full
    rng = np.random.default_rng(3)
    incident = tl.incident.copy()
    incident[DAY:] = rng.random(incident[DAY:].shape) < 0.3
    hazard = tl.daily_hazard.copy()
    hazard[DAY:] *= np.float32(4.0)
    other = dataclasses.replace(world, full=dataclasses.replace(tl, incident=incident,
                                                                daily_hazard=hazard))
    documents = _usual_documents(world, DAY)
    p = observable_probability(world, DAY, documents, paths=4)
    q = observable_probability(other, DAY, documents, paths=4)
    live = in_service(world, DAY)
    assert np.isfinite(p[live]).all() and np.isnan(p[~live]).all()
    assert np.array_equal(p[live], q[live])
    # The oracle does read the coming weeks: it moves.
    _, oracle, _ = churn_probabilities(world, DAY)
    _, moved, _ = churn_probabilities(other, DAY)
    assert not np.allclose(oracle[live], moved[live])


@pytest.mark.parametrize("scenario", ["default", DRIFT, CONTRACT_DRIVEN])
def test_the_past_hazard_is_the_simulators_own(scenario: str) -> None:
    """Realised tickets, failed charges and incidents before as-of rebuild the timeline's
    hazard exactly for every live customer (the reference adds only the future)."""
    world = _world(scenario)
    live = in_service(world, DAY)
    rebuilt = hazard_of(world, *past_hazard_inputs(world, DAY, DAY))
    assert np.allclose(rebuilt[:, live], world.full.daily_hazard[:DAY, live], rtol=1e-5)


def test_a_fading_month_raises_the_reference() -> None:
    world = _world()
    live = np.flatnonzero(in_service(world, DAY) & (world.pop.start_day < DAY - 60))
    documents = _usual_documents(world, DAY)
    base = observable_probability(world, DAY, documents, paths=2)
    faded = live[:20]
    documents.sessions[faded, :21] = 0.0  # no session, no login for three weeks
    documents.logged_in[faded, :21] = 0.0
    p = observable_probability(world, DAY, documents, paths=2)
    assert (p[faded] > 5 * base[faded]).all()
    assert np.allclose(p[live[20:]], base[live[20:]])


def test_a_call_about_leaving_raises_the_reference() -> None:
    """Without a wind-down (contract-driven) an "account" ticket of the last days is the
    documents' one sign of a decision; an older one says nothing."""
    world = _world(CONTRACT_DRIVEN)
    live = np.flatnonzero(in_service(world, DAY))
    documents = RecentDocuments(world, DAY)
    base = observable_probability(world, DAY, documents, paths=2)
    recent, old = live[:20], live[20:40]
    documents.account_tickets[recent, 1] = 1.0  # two days ago
    documents.account_tickets[old, 9] = 1.0  # ten days ago: before any call about leaving
    p = observable_probability(world, DAY, documents, paths=2)
    # How much depends on how much of the horizon's hazard falls in the call's days.
    assert (p[recent] > 1.3 * base[recent]).all()
    assert np.median(p[recent] / base[recent]) > 5
    assert np.allclose(p[old], base[old])


def test_the_wind_down_likelihood_is_the_simulators_model_of_the_documents() -> None:
    """The evidence's algebra against the model written out per session and per day."""
    world = _world(customers=60)
    pop = world.pop
    rng = np.random.default_rng(5)
    documents = RecentDocuments(world, DAY)
    days = documents.days
    weekend = _weekend_factor(world, DAY, days)
    sessions = rng.poisson(1.5, (pop.size, days))
    logged = rng.random((pop.size, days)) < 0.3
    xb = [[rng.normal(0, LOG_BYTES_SD, s) for s in row] for row in sessions]
    xm = [[rng.normal(0, LOG_MINUTES_SD, s) for s in row] for row in sessions]
    documents.sessions = sessions.astype(float)
    documents.logged_in = logged.astype(float)
    documents.log_bytes_excess = np.array([[x.sum() for x in row] for row in xb])
    documents.log_minutes_excess = np.array([[x.sum() for x in row] for row in xm])
    evidence = _Evidence(world, DAY, documents)
    served = np.flatnonzero(pop.start_day < DAY - days)
    for length, k in ((14, 0), (30, 7), (42, 3)):
        got = evidence.log_lr(length, k)
        for i in served[:5]:
            expected = 0.0
            for j in range(days):
                progress = np.clip((length - k - (j + 1)) / length, 0.0, 1.0)
                a = 1.0 - (1.0 - LEAVER_ACTIVITY_FLOOR) * np.sqrt(progress)
                rate = pop.sessions_per_day[i] * weekend[j]
                expected += (stats.poisson.logpmf(sessions[i, j], rate * a)
                             - stats.poisson.logpmf(sessions[i, j], rate))
                shift_b, shift_m = np.log(0.4 + 0.6 * a), np.log(0.5 + 0.5 * a)
                expected += np.sum(stats.norm.logpdf(xb[i][j], shift_b, LOG_BYTES_SD)
                                   - stats.norm.logpdf(xb[i][j], 0.0, LOG_BYTES_SD))
                expected += np.sum(stats.norm.logpdf(xm[i][j], shift_m, LOG_MINUTES_SD)
                                   - stats.norm.logpdf(xm[i][j], 0.0, LOG_MINUTES_SD))
                usual = min(pop.logins_per_day[i], 0.9)
                now = min(pop.logins_per_day[i] * a, 0.9)
                expected += (np.log(now / usual) if logged[i, j]
                             else np.log((1 - now) / (1 - usual)))
            assert got[i] == pytest.approx(expected, abs=1e-8)


def _simulated_documents(world, day: int) -> RecentDocuments:
    """The documents the simulator writes for the look-back before `day`."""
    from simulator.activity import BYTES_PER_GB, Identity, login_documents, usage_documents
    from simulator.population import MAX_DEVICES
    from simulator.timeline import TICKET_CAUSE_LEAVING

    documents = RecentDocuments(world, day)
    n = world.pop.size
    ident = Identity(world.keys.user_ids, [[f"d{i}-{d}" for d in range(MAX_DEVICES)]
                                           for i in range(n)],
                     ["49.0.0.1"] * n, [f"c{i}@example.com" for i in range(n)])
    days = np.arange(day - documents.days, day)
    position = {str(u): i for i, u in enumerate(world.keys.user_ids)}
    rng = np.random.default_rng(1)
    usage, _ = usage_documents(rng, world.pop, world.full, ident, days)
    logins, _ = login_documents(rng, world.pop, world.full, ident, days)

    def epoch(docs):
        return np.array([int(d["timestamp"].timestamp()) for d in docs])

    documents.add_sessions(np.array([position[str(d["userId"])] for d in usage]), epoch(usage),
                           np.array([d["download"] for d in usage]),
                           np.array([d["sessionDuration"] for d in usage]))
    documents.add_logins(np.array([position[str(d["userId"])] for d in logins]), epoch(logins))
    t = world.full.tickets
    documents.add_tickets(t.customer, t.seconds,
                          np.where(t.cause == TICKET_CAUSE_LEAVING, "account", "technical"))
    assert BYTES_PER_GB > 0 and documents.sessions.sum() > 0
    return documents


def test_the_reference_follows_the_churn_rate() -> None:
    """On the simulator's own documents the reference is calibrated (its mean is the
    oracle's: both are expectations of the same outcome) and ranks leavers well, though
    below the oracle, which knows decisions before they show."""
    from sklearn.metrics import roc_auc_score

    world = _world(customers=3000)
    live = in_service(world, DAY)
    p = observable_probability(world, DAY, _simulated_documents(world, DAY), paths=8)
    _, oracle, _ = churn_probabilities(world, DAY)
    tl = world.full
    cancelled = ((tl.cancel_day >= DAY) & (tl.cancel_day < DAY + 30))[live]
    assert cancelled.sum() >= 40
    assert p[live].mean() == pytest.approx(np.mean(oracle[live]), rel=0.15)
    observable_auc = roc_auc_score(cancelled, p[live])
    assert 0.7 < observable_auc < roc_auc_score(cancelled, oracle[live])


def _winding_down(world, day: int) -> RecentDocuments:
    """Usual documents, with a third of the sessions and smaller ones over the last 15 days."""
    documents = _usual_documents(world, day, seed=4)
    documents.sessions[:, :15] = np.floor(documents.sessions[:, :15] / 3)
    documents.log_bytes_excess[:, :15] = -0.5 * documents.sessions[:, :15]
    return documents


def test_rates_integrated_out_match_known_rates_given_a_long_history() -> None:
    """With a very long history before the look-back showing each customer's own rates,
    the negative binomial and the shared-offset Gaussian become the known-rate Poisson and
    Gaussian terms: the same log likelihood ratio."""
    world = _world()
    documents = _winding_down(world, DAY)
    rates = RatesFromDocuments(world, DAY)
    days = 1e7
    rates.exposure = np.full(world.pop.size, days)
    rates.sessions = world.pop.sessions_per_day * days
    rates.log_bytes = _log_mean_bytes(world.pop) * rates.sessions
    known = _Evidence(world, DAY, documents)
    integrated = _Evidence(world, DAY, documents, rates)
    for length, k in ((20, 2), (35, 0), (42, 30)):
        np.testing.assert_allclose(integrated.log_lr(length, k), known.log_lr(length, k),
                                   rtol=1e-4, atol=1e-3)


def test_without_history_a_drop_is_weaker_evidence_than_against_known_rates() -> None:
    """A new customer's usual rate is known only from the population's spread and the
    look-back itself, so the same drop in sessions and bytes says less about leaving."""
    world = _world()
    documents = _winding_down(world, DAY)
    rates = RatesFromDocuments(world, DAY)
    rates.exposure[:] = 0.0
    rates.sessions[:] = 0.0
    rates.log_bytes[:] = 0.0
    live = in_service(world, DAY)
    known = _Evidence(world, DAY, documents).log_lr(20, 2)[live]
    unknown = _Evidence(world, DAY, documents, rates).log_lr(20, 2)[live]
    assert np.median(known) > np.median(unknown) > 0
    p_known = observable_probability(world, DAY, documents, paths=2)[live]
    p_unknown = observable_probability(world, DAY, documents, paths=2, rates=rates)[live]
    assert np.median(p_known) > np.median(p_unknown)
    assert np.isfinite(p_unknown).all() and ((p_unknown >= 0) & (p_unknown <= 1)).all()
    # Sessions smaller by the same amount all through the look-back are a customer who
    # downloads less than the population's typical one (the shared offset), not a drop.
    usual = _usual_documents(world, DAY, seed=5)
    smaller = _usual_documents(world, DAY, seed=5)
    smaller.log_bytes_excess = -0.5 * smaller.sessions

    def shift(given: RatesFromDocuments | None) -> np.ndarray:
        return (_Evidence(world, DAY, smaller, given).log_lr(20, 2)
                - _Evidence(world, DAY, usual, given).log_lr(20, 2))[live]

    assert np.median(np.abs(shift(rates))) < 0.5
    assert np.median(shift(None)) > 2.0


def test_documents_removed_before_a_day_are_unwritten_days_not_a_drop() -> None:
    """The bench's short-history comparison removes the usage and logins before a day
    (kept_from_day): those days carry nothing, neither for the rates nor in the look-back,
    so whatever they held does not change the evidence."""
    world = _world()
    kept_from = DAY - 30
    documents = _winding_down(world, DAY)
    removed = _winding_down(world, DAY)
    removed.sessions[:, 30:] = 0.0  # column j is j + 1 days ago: before kept_from
    removed.logged_in[:, 30:] = 0.0
    removed.log_bytes_excess[:, 30:] = 0.0
    kept = RatesFromDocuments(world, DAY, kept_from_day=kept_from)
    whole = RatesFromDocuments(world, DAY)
    # Nothing of the 30 kept days lies before the look-back.
    assert (kept.exposure == 0).all() and (whole.exposure > 0).any()
    for length, k in ((20, 2), (42, 30)):
        np.testing.assert_allclose(_Evidence(world, DAY, removed, kept).log_lr(length, k),
                                   _Evidence(world, DAY, documents, kept).log_lr(length, k))
    # Read as written, the emptied days are a customer whose use rose since: less
    # evidence of a drop than the same customer's whole documents give.
    live = in_service(world, DAY)
    shift = (_Evidence(world, DAY, removed, whole).log_lr(42, 30)
             - _Evidence(world, DAY, documents, whole).log_lr(42, 30))[live]
    assert np.median(shift) < -0.2
