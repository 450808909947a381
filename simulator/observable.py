"""The observable reference: P(cancel within the horizon | what the documents show up to
as-of), the accuracy a model of the app's data can reach (unlike the oracle in
simulator/truth.py, which knows a customer's private decision before any footprint).

Wind-down worlds (default, short-history, drift): a customer cancels on day C drawn from
the realised daily hazard (P(C = c) = G(c-1) - G(c), G the survival), and winds down over
the D days before it (D uniform on the scenario's decline range): activity
a(d) = 1 - (1 - floor) * sqrt(clip((d - (C - D)) / D, 0, 1)). Given the customer's own
latent rates, the documents of the last days before as-of t are:
  sessions per day ~ Poisson(sessions_per_day * weekend factor * a),
  a login on a day ~ Bernoulli(min(logins_per_day * a, 0.9)),
  log bytes per session ~ Normal(log(mean bytes) - 0.32 + log(0.4 + 0.6 a), 0.8^2),
  log minutes per session ~ Normal(3.5 + log(0.5 + 0.5 a), 0.7^2)
(simulator/activity.py). The forward filter weighs every (C >= t, D) with its prior and
the likelihood ratio of those documents against "no wind-down yet" (days before the
customer's start or before the usage history was written carry nothing), and returns
P(t <= C < t + horizon | documents, live at t). The hazard's noise term ("what no data
shows: life events, competitor offers", catalog.HAZARD_WEIGHTS) is integrated out over
its normal prior (Gauss-Hermite); its other drivers (line quality, payment stress, price
pressure) are taken as known, since the documents show them (latency and loss per
session, failed charges, the price paid). It uses the simulator's own model and the
customer's latent rates, so no model of the same documents can do better on average; it
is generous where it takes latent drivers as known and, like the oracle, uses the
realised hazard path (the next weeks' incidents and failed charges); it leaves
non-renewals out.

contract-driven: the hazard is a function of the documents, so the reference is the true
probability itself.
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from simulator.activity import BYTES_PER_GB, WEEKEND_BOOST
from simulator.catalog import HAZARD_WEIGHTS, LEAVER_ACTIVITY_FLOOR
from simulator.encode import SECONDS_PER_DAY
from simulator.population import Population, _zscore, price_pressure_of
from simulator.scenarios import decline_range
from simulator.truth import HORIZON_DAYS, churn_probabilities
from simulator.world import World, in_service

LOG_BYTES_SHIFT, LOG_BYTES_SD = -0.32, 0.8  # activity.usage_documents' lognormal
LOG_MINUTES_MEAN, LOG_MINUTES_SD = 3.5, 0.7
MAX_LOGIN_CHANCE = 0.9
NOISE_NODES = 9  # Gauss-Hermite nodes over the hazard's standard-normal noise term


class ActivityDays:
    """Per customer and day before as-of (column j: j + 1 days ago), for the last `days`."""

    def __init__(self, world: World, day: int, days: int) -> None:
        self.world, self.day, self.days = world, day, days
        n = world.pop.size
        self.sessions = np.zeros((n, days))
        self.log_bytes_excess = np.zeros((n, days))  # sum over sessions of x - mean
        self.log_minutes_excess = np.zeros((n, days))
        self.logged_in = np.zeros((n, days))

    def _cells(self, customer: np.ndarray, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start = self.world.full.window.start_seconds
        ago = self.day - (np.asarray(seconds, dtype=np.int64) - start) // SECONDS_PER_DAY
        keep = (ago >= 1) & (ago <= self.days) & (customer >= 0)
        return customer[keep], (ago[keep] - 1).astype(np.int64)

    def add_sessions(self, customer: np.ndarray, seconds: np.ndarray, download_bytes: np.ndarray,
                     minutes: np.ndarray) -> None:
        """Usage sessions (customer position, -1 unknown; epoch seconds; bytes; minutes)."""
        pop = self.world.pop
        customer = np.asarray(customer, dtype=np.int64)
        start = self.world.full.window.start_seconds
        ago = self.day - (np.asarray(seconds, dtype=np.int64) - start) // SECONDS_PER_DAY
        keep = (ago >= 1) & (ago <= self.days) & (customer >= 0)
        c, j = customer[keep], (ago[keep] - 1).astype(np.int64)
        mean_bytes = pop.monthly_gb * BYTES_PER_GB / (30.0 * pop.sessions_per_day)
        with np.errstate(divide="ignore", invalid="ignore"):
            xb = np.log(np.asarray(download_bytes, dtype=float)[keep]) - (
                np.log(mean_bytes[c]) + LOG_BYTES_SHIFT)
            xm = np.log(np.asarray(minutes, dtype=float)[keep]) - LOG_MINUTES_MEAN
        np.add.at(self.sessions, (c, j), 1.0)
        np.add.at(self.log_bytes_excess, (c, j), np.where(np.isfinite(xb), xb, 0.0))
        np.add.at(self.log_minutes_excess, (c, j), np.where(np.isfinite(xm), xm, 0.0))

    def add_logins(self, customer: np.ndarray, seconds: np.ndarray) -> None:
        c, j = self._cells(np.asarray(customer, dtype=np.int64), seconds)
        self.logged_in[c, j] = 1.0


def _weekend_factor(world: World, day: int, days: int) -> np.ndarray:
    """Session-rate factor of each day before `day` (column j: j + 1 days ago)."""
    index = day - 1 - np.arange(days)
    epoch_day = world.full.window.start_seconds // SECONDS_PER_DAY + index
    return np.where(np.isin((epoch_day + 3) % 7, (5, 6)), WEEKEND_BOOST, 1.0)


def observable_probability(world: World, day: int, activity: ActivityDays | None) -> np.ndarray:
    """P(cancel in [day, day + HORIZON_DAYS) | documents before `day`) per customer; NaN
    for customers not live at `day`. `activity` holds those documents (None only for
    a world without wind-down, where the true probability is the reference)."""
    shortest, longest = decline_range(world.spec.scenario)
    live = in_service(world, day)
    if longest == 0:
        return churn_probabilities(world, day)[1]
    if activity is None or activity.days < longest:
        raise ValueError(f"the observable reference needs the last {longest} days of activity")
    pop, tl = world.pop, world.full
    k_days = longest
    cum = np.cumsum(tl.daily_hazard, axis=0, dtype=np.float64)
    last = cum.shape[0] - 1
    # Days that carry documents under both hypotheses: served, and written.
    ago = np.arange(1, k_days + 1)
    index = day - ago
    written = (index[None, :] >= pop.start_day[:, None]) & (index[None, :] >= tl.activity_from_day)
    weekend = _weekend_factor(world, day, k_days)
    lam = pop.sessions_per_day[:, None] * weekend[None, :] * written
    p1 = np.minimum(pop.logins_per_day, MAX_LOGIN_CHANCE)[:, None]
    n = activity.sessions * written
    xb, xm = activity.log_bytes_excess * written, activity.log_minutes_excess * written
    logged = activity.logged_in * written
    not_logged = (1.0 - activity.logged_in) * written

    # Likelihood ratio of the documents for each (D, C = day + k) whose wind-down began.
    lengths = list(range(shortest, longest + 1))
    log_lr: dict[tuple[int, int], np.ndarray] = {}
    for length in lengths:
        for k in range(length):  # the wind-down began D - k days ago
            progress = np.clip((length - k - ago) / length, 0.0, 1.0)
            a = 1.0 - (1.0 - LEAVER_ACTIVITY_FLOOR) * np.sqrt(progress)
            if np.all(a == 1.0):
                log_lr[length, k] = np.zeros(pop.size)
                continue
            db, dm = np.log(0.4 + 0.6 * a), np.log(0.5 + 0.5 * a)
            pa = np.minimum(pop.logins_per_day[:, None] * a[None, :], MAX_LOGIN_CHANCE)
            log_lr[length, k] = (
                n @ np.log(a) - lam @ (a - 1.0)
                + xb @ (db / LOG_BYTES_SD**2) - n @ (db**2 / (2 * LOG_BYTES_SD**2))
                + xm @ (dm / LOG_MINUTES_SD**2) - n @ (dm**2 / (2 * LOG_MINUTES_SD**2))
                + np.sum(logged * np.log(pa / p1), axis=1)
                + np.sum(not_logged * np.log((1.0 - pa) / (1.0 - p1)), axis=1)
            )

    # The hazard's unobservable part (life events, competitor offers) is integrated out.
    unseen = pop.static_log_hazard - visible_log_hazard(pop)
    nodes, weights = hermegauss(NOISE_NODES)
    numerators, totals = [], []
    for z, weight in zip(nodes, weights / weights.sum(), strict=True):
        factor = np.exp(HAZARD_WEIGHTS["noise"] * z - unseen)
        num, tot = _posterior_terms(cum * factor[None, :], last, day, lengths, log_lr)
        numerators.append(num + np.log(weight))
        totals.append(tot + np.log(weight))
    p = np.exp(logsumexp(np.vstack(numerators), axis=0) - logsumexp(np.vstack(totals), axis=0))
    return np.where(live, np.clip(p, 0.0, 1.0), np.nan)


def _posterior_terms(cum: np.ndarray, last: int, day: int, lengths: list[int],
                     log_lr: dict[tuple[int, int], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """log of (mass with C in the horizon, total mass) over (C >= day, D), given the
    cumulative hazard `cum` (days, n) and the documents' likelihood ratios."""
    n = cum.shape[1]

    def log_survival(x: int) -> np.ndarray:  # log G(x): not cancelled by the end of day x
        return -cum[min(x, last)] if x >= 0 else np.zeros(n)

    base = log_survival(day - 1)
    log_d = -np.log(len(lengths))
    with np.errstate(divide="ignore"):
        log_prior_c = [np.log(np.maximum(np.exp(log_survival(day + k - 1) - base)
                                         - np.exp(log_survival(day + k) - base), 1e-300))
                       for k in range(max(lengths))]
        horizon_end = np.exp(log_survival(day + HORIZON_DAYS - 1) - base)
    numerator, total = [], []
    for length in lengths:
        # No wind-down visible yet: C >= day + D (and, for the numerator, C < day + horizon).
        rest = log_survival(day + length - 1) - base
        total.append(rest + log_d)
        if length < HORIZON_DAYS:
            with np.errstate(divide="ignore"):
                numerator.append(np.log(np.maximum(np.exp(rest) - horizon_end, 1e-300))
                                 + log_d)
        for k in range(length):
            term = log_prior_c[k] + log_lr[length, k] + log_d
            total.append(term)
            if k < HORIZON_DAYS:
                numerator.append(term)
    return (logsumexp(np.vstack(numerator), axis=0), logsumexp(np.vstack(total), axis=0))


def visible_log_hazard(pop: Population) -> np.ndarray:
    """The static log-hazard without its noise term: line quality, payment stress and
    price pressure (population.draw_population's drivers), which the documents show in
    part (latency and loss per session, failed charges, the price paid)."""
    w = HAZARD_WEIGHTS
    paid = pop.monthly_list_price * (1 - pop.discount_rate)
    pressure = price_pressure_of(paid, pop.reference_price, pop.elasticity)
    return (
        w["latency"] * _zscore(np.log(pop.latency_ms))
        + w["packet_loss"] * _zscore(np.log(pop.packet_loss_pct))
        + w["payment_stress"] * _zscore(pop.payment_stress)
        + w["price_pressure"] * _zscore(pressure)
    )


def activity_from_lake(world: World, day: int, usagelogs, auditlogs) -> ActivityDays:
    """ActivityDays from lake tables (bbx.lake columns: user_id hex, timestamp,
    download_gb, session_minutes; logins user_id, timestamp)."""
    import pandas as pd

    position = pd.Series(np.arange(world.pop.size), index=world.user_ids)
    activity = ActivityDays(world, day, decline_range(world.spec.scenario)[1] or 1)

    def seconds(values) -> np.ndarray:
        return pd.to_datetime(values, utc=True).dt.tz_convert(None).to_numpy(
            dtype="datetime64[s]").astype(np.int64)

    customer = position.reindex(usagelogs["user_id"].to_numpy()).fillna(-1).to_numpy(int)
    activity.add_sessions(customer, seconds(usagelogs["timestamp"]),
                          usagelogs["download_gb"].to_numpy(float) * BYTES_PER_GB,
                          usagelogs["session_minutes"].to_numpy(float))
    customer = position.reindex(auditlogs["user_id"].to_numpy()).fillna(-1).to_numpy(int)
    activity.add_logins(customer, seconds(auditlogs["timestamp"]))
    return activity
