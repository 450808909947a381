"""The observable reference: P(cancel within the horizon | what the documents show up to
as-of), the accuracy a model of the app's data can reach (unlike the oracle in
simulator/truth.py, which knows a customer's private decision and the coming weeks).

A customer cancels on day C drawn from the daily hazard (P(C = c) = G(c-1) - G(c), G the
survival from the first simulated day) and, in wind-down worlds (default, short-history,
drift), winds down over the D days before it (D uniform on the scenario's decline range):
activity a(d) = 1 - (1 - floor) * sqrt(clip((d - (C - D)) / D, 0, 1)). Given the
customer's latent rates, the documents of the days before as-of t are
(simulator/activity.py, timeline.py, documents.py):
  sessions per day ~ Poisson(sessions_per_day * weekend factor * a),
  a login on a day ~ Bernoulli(min(logins_per_day * a, 0.9)),
  log bytes per session ~ Normal(log(mean bytes) - 0.32 + log(0.4 + 0.6 a), 0.8^2),
  log minutes per session ~ Normal(3.5 + log(0.5 + 0.5 a), 0.7^2),
  feedback ratings: a point lower from the wind-down's start,
  an "account" ticket about leaving: for a share of leavers, 0..9 days before C
  (otherwise "account" tickets come at the general rate of such tickets).
The reference weighs every C >= t (and D) with its prior and the likelihood ratio of those
documents against "no wind-down and no leaving call yet" (days before the customer's start
or before usage history was written carry nothing), and returns
P(t <= C < t + horizon | documents, live at t).

What the documents cannot show is integrated out:
- the hazard's noise term ("life events, competitor offers", catalog.HAZARD_WEIGHTS), over
  its normal prior (Gauss-Hermite), weighted by the customer having survived to t;
- the coming weeks: the hazard after t depends on tickets, failed charges and network
  incidents that have not happened yet. They are drawn FUTURE_PATHS times from the
  simulator's own processes (city incidents, the billing calendar and its retries, ticket
  rates), with a fixed seed, on top of the realised events before t, and the hazard is
  rebuilt by timeline._daily_hazard (so each scenario's hazard applies).
The other drivers (line quality, payment stress, price pressure, satisfaction, the past
network incidents) are taken as known, as are the customer's latent usage rates: the
documents show them only in part, so the reference stays an upper bound of what any model
of those documents can reach on average. Non-renewals are left out.

contract-driven: no wind-down, and the static hazard is read off the documents, so the
reference is the hazard with the coming weeks integrated out, and the leaving calls.

Given `rates` (RatesFromDocuments), the two latent rates whose knowledge is worth most are
integrated out too, over their posterior given the customer's documents before the
lookback (where no wind-down can show) and the population's spread as the prior:
sessions per day (Gamma prior: the Poisson likelihood ratio becomes the negative
binomial's) and the log mean bytes per session (Normal prior: the recent sessions share
one unknown offset). That is the reference from the documents alone, for those rates;
login rates and the hazard's drivers stay known (worth little: measured in the notes).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import log_ndtr, logsumexp, ndtr

from simulator.activity import BYTES_PER_GB, WEEKEND_BOOST
from simulator.catalog import (
    BASE_TICKET_RATE,
    CITIES,
    HAZARD_WEIGHTS,
    LEAVER_ACTIVITY_FLOOR,
    MAX_PAYMENT_ATTEMPTS,
    PAYMENT_RETRY_DAYS,
    PLANS,
    TICKET_CATEGORIES,
    TICKET_RATE_PER_FAILURE,
    TICKET_RATE_PER_INCIDENT,
)
from simulator.documents import (
    GENERAL_TICKET_CATEGORY_SHARES,
    RATING_MEAN,
    RATING_PER_SATISFACTION,
    RATING_SD,
    WIND_DOWN_RATING_PENALTY,
)
from simulator.encode import SECONDS_PER_DAY
from simulator.population import Population, _zscore, price_pressure_of
from simulator.scenarios import CONTRACT_DRIVEN, DEFAULT, decline_range, hooks_for
from simulator.timeline import (
    LEAVING_TICKET_DAYS,
    LEAVING_TICKET_SHARE,
    TICKET_CAUSE_LEAVING,
    _daily_hazard,
    billing_schedule,
)
from simulator.truth import HORIZON_DAYS
from simulator.world import World, in_service

LOG_BYTES_SHIFT, LOG_BYTES_SD = -0.32, 0.8  # activity.usage_documents' lognormal
LOG_MINUTES_MEAN, LOG_MINUTES_SD = 3.5, 0.7
MAX_LOGIN_CHANCE = 0.9
NOISE_NODES = 9  # Gauss-Hermite nodes over the hazard's standard-normal noise term
FUTURE_PATHS = 24  # Monte Carlo draws of the coming weeks' incidents, charges and tickets
FUTURE_SEED = 15_2026  # fixed: the same world and documents give the same reference
ACCOUNT_CATEGORY = "account"  # the category a call about leaving is filed under


def lookback_days(scenario: str) -> int:
    """Days before as-of whose documents the reference reads."""
    return max(decline_range(scenario)[1], LEAVING_TICKET_DAYS)


class RecentDocuments:
    """What the documents of the last `days` days before as-of show, per customer and day
    (column j: j + 1 days ago): sessions and their volumes and lengths, logins, "account"
    tickets, and feedback ratings (as log-likelihood ratios of a wind-down)."""

    def __init__(self, world: World, day: int, days: int | None = None) -> None:
        self.world, self.day = world, day
        self.days = lookback_days(world.spec.scenario) if days is None else days
        shape = (world.pop.size, self.days)
        self.sessions = np.zeros(shape)
        self.log_bytes_excess = np.zeros(shape)  # sum over sessions of x - mean
        self.log_minutes_excess = np.zeros(shape)
        self.logged_in = np.zeros(shape)
        self.account_tickets = np.zeros(shape)
        self.feedback_log_lr = np.zeros(shape)  # log P(ratings | winding down) / P(... | not)

    def _cells(self, customer: np.ndarray, seconds: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        customer = np.asarray(customer, dtype=np.int64)
        start = self.world.full.window.start_seconds
        ago = self.day - (np.asarray(seconds, dtype=np.int64) - start) // SECONDS_PER_DAY
        keep = (ago >= 1) & (ago <= self.days) & (customer >= 0)
        return customer[keep], (ago[keep] - 1).astype(np.int64), keep

    def add_sessions(self, customer: np.ndarray, seconds: np.ndarray, download_bytes: np.ndarray,
                     minutes: np.ndarray) -> None:
        """Usage sessions (customer position, -1 unknown; epoch seconds; bytes; minutes)."""
        c, j, keep = self._cells(customer, seconds)
        with np.errstate(divide="ignore", invalid="ignore"):
            xb = np.log(np.asarray(download_bytes, dtype=float)[keep]) - (
                _log_mean_bytes(self.world.pop)[c] + LOG_BYTES_SHIFT)
            xm = np.log(np.asarray(minutes, dtype=float)[keep]) - LOG_MINUTES_MEAN
        np.add.at(self.sessions, (c, j), 1.0)
        np.add.at(self.log_bytes_excess, (c, j), np.where(np.isfinite(xb), xb, 0.0))
        np.add.at(self.log_minutes_excess, (c, j), np.where(np.isfinite(xm), xm, 0.0))

    def add_logins(self, customer: np.ndarray, seconds: np.ndarray) -> None:
        c, j, _ = self._cells(customer, seconds)
        self.logged_in[c, j] = 1.0

    def add_tickets(self, customer: np.ndarray, seconds: np.ndarray,
                    category: np.ndarray) -> None:
        """Support tickets (customer position, epoch seconds, category)."""
        account = np.asarray(category).astype(str) == ACCOUNT_CATEGORY
        c, j, _ = self._cells(np.asarray(customer)[account], np.asarray(seconds)[account])
        np.add.at(self.account_tickets, (c, j), 1.0)

    def add_feedback(self, customer: np.ndarray, seconds: np.ndarray,
                     rating: np.ndarray) -> None:
        """Feedback forms (customer position, epoch seconds, overall rating 1..5)."""
        c, j, keep = self._cells(customer, seconds)
        r = np.asarray(rating, dtype=float)[keep]
        rated = np.isfinite(r)
        c, j, r = c[rated], j[rated], r[rated]
        usual = RATING_MEAN + RATING_PER_SATISFACTION * self.world.pop.satisfaction[c]
        llr = (_log_rating_chance(r, usual - WIND_DOWN_RATING_PENALTY)
               - _log_rating_chance(r, usual))
        np.add.at(self.feedback_log_lr, (c, j), llr)


def _log_rating_chance(rating: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """log P(rating) for round(mean + Normal(0, RATING_SD)) clipped to 1..5."""
    upper = np.where(rating >= 5, np.inf, (rating + 0.5 - mean) / RATING_SD)
    lower = np.where(rating <= 1, -np.inf, (rating - 0.5 - mean) / RATING_SD)
    with np.errstate(divide="ignore"):
        return np.where(np.isinf(lower), log_ndtr(upper),
                        np.log(np.maximum(ndtr(upper) - ndtr(lower), 1e-300)))


class RatesFromDocuments:
    """What the documents before the reference's lookback show of each customer's usual
    sessions per day and log mean bytes per session (a < 1 cannot show there), and the
    population's spread of both (the prior a model could learn from the whole base).

    add_sessions(customer, seconds, download_bytes): every usage session before as-of
    (those inside the lookback are ignored here). `kept_from_day`: the documents before
    that day were removed after the simulation (the bench's short-history comparison
    keeps the last N days of the same world): those days show nothing, here and inside the
    lookback (observable_probability reads this day from `rates`)."""

    def __init__(self, world: World, day: int, kept_from_day: int = 0) -> None:
        pop, tl = world.pop, world.full
        self.world = world
        self.kept_from_day = kept_from_day
        self.before = day - lookback_days(world.spec.scenario)  # days [.., before) count
        index = np.arange(max(self.before, 0))
        weight = _weekend_factor(world, self.before, self.before)[::-1]  # day 0 .. before-1
        self.first_day = np.maximum(np.maximum(pop.start_day, tl.activity_from_day),
                                    kept_from_day)
        served = index[None, :] >= self.first_day[:, None]
        self.exposure = served @ weight  # weekend-weighted days the rate shows on
        self.sessions = np.zeros(pop.size)
        self.log_bytes = np.zeros(pop.size)  # sum over sessions of log bytes - shift
        # The population's spread: moments of the latent rates across customers.
        rate = pop.sessions_per_day
        self.rate_shape = rate.mean() ** 2 / rate.var()
        self.rate_scale = rate.mean() / rate.var()  # Gamma(shape, rate=scale)
        mu = _log_mean_bytes(pop)
        self.mu_mean, self.mu_var = mu.mean(), mu.var()

    def add_sessions(self, customer: np.ndarray, seconds: np.ndarray,
                     download_bytes: np.ndarray) -> None:
        customer = np.asarray(customer, dtype=np.int64)
        start = self.world.full.window.start_seconds
        index = (np.asarray(seconds, dtype=np.int64) - start) // SECONDS_PER_DAY
        known = customer >= 0
        keep = known & (index < self.before) & (
            index >= self.first_day[np.where(known, customer, 0)])
        with np.errstate(divide="ignore"):
            x = np.log(np.asarray(download_bytes, dtype=float)[keep]) - LOG_BYTES_SHIFT
        c = customer[keep]
        np.add.at(self.sessions, c, 1.0)
        np.add.at(self.log_bytes, c, np.where(np.isfinite(x), x, self.mu_mean))

    def posterior(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(Gamma shape, Gamma rate) of sessions per day; (mean, variance) of the log mean
        bytes per session, per customer."""
        precision = 1.0 / self.mu_var + self.sessions / LOG_BYTES_SD**2
        mean = (self.mu_mean / self.mu_var + self.log_bytes / LOG_BYTES_SD**2) / precision
        return (self.rate_shape + self.sessions, self.rate_scale + self.exposure,
                mean, 1.0 / precision)


def _log_mean_bytes(pop: Population) -> np.ndarray:
    """log of each customer's usual bytes per session (activity.usage_documents)."""
    return np.log(pop.monthly_gb * BYTES_PER_GB / (30.0 * pop.sessions_per_day))


def _weekend_factor(world: World, day: int, days: int) -> np.ndarray:
    """Session-rate factor of each day before `day` (column j: j + 1 days ago)."""
    index = day - 1 - np.arange(days)
    epoch_day = world.full.window.start_seconds // SECONDS_PER_DAY + index
    return np.where(np.isin((epoch_day + 3) % 7, (5, 6)), WEEKEND_BOOST, 1.0)


def observable_probability(world: World, day: int, documents: RecentDocuments,
                           paths: int = FUTURE_PATHS, seed: int = FUTURE_SEED,
                           rates: RatesFromDocuments | None = None) -> np.ndarray:
    """P(cancel in [day, day + HORIZON_DAYS) | documents before `day`) per customer; NaN
    for customers not live at `day`. `documents` holds what the last lookback_days days
    show; `paths` Monte Carlo draws of the weeks after `day` (seeded by `seed`). With
    `rates`, sessions per day and bytes per session are integrated out (module doc)."""
    scenario = world.spec.scenario
    shortest, longest = decline_range(scenario)
    explicit = lookback_days(scenario)  # C = day + k is weighed one by one for k < explicit
    if documents.days < explicit:
        raise ValueError(f"the observable reference needs the last {explicit} days of documents")
    until = day + max(explicit, HORIZON_DAYS)
    if day < 1 or until > world.full.window.days:
        raise ValueError(f"day {day}: the reference needs the simulation to run to day "
                         f"{until} (it runs {world.full.window.days} days)")
    pop = world.pop
    lengths = list(range(shortest, longest + 1))
    log_d = -np.log(len(lengths))
    calls = _leaving_call_log_lr(world, documents, explicit)
    evidence = _Evidence(world, day, documents, rates)
    per_c = np.empty((explicit, pop.size))  # log of sum_D P(D) LR(documents | C = day + k, D)
    for k in range(explicit):
        terms = [(evidence.log_lr(length, k) if k < length else np.zeros(pop.size)) + log_d
                 for length in lengths]
        per_c[k] = logsumexp(np.vstack(terms), axis=0) + calls[k]

    if scenario == CONTRACT_DRIVEN:  # its static hazard is read off the documents
        nodes, weights, unseen = np.zeros(1), np.ones(1), np.zeros(pop.size)
    else:
        nodes, weights = hermegauss(NOISE_NODES)
        weights = weights / weights.sum()
        unseen = pop.static_log_hazard - visible_log_hazard(pop)
    numerators, totals = [], []
    for cum in _cumulative_hazard_paths(world, day, until, paths, seed):
        for z, weight in zip(nodes, weights, strict=True):
            factor = np.exp(HAZARD_WEIGHTS["noise"] * z - unseen)
            num, tot = _posterior_terms(cum * factor[None, :], per_c)
            numerators.append(num + np.log(weight))
            totals.append(tot + np.log(weight))
    p = np.exp(logsumexp(np.vstack(numerators), axis=0) - logsumexp(np.vstack(totals), axis=0))
    return np.where(in_service(world, day), np.clip(p, 0.0, 1.0), np.nan)


class _Evidence:
    """The documents' sufficient statistics for the wind-down likelihood, per customer and
    day, counted only on days that carry documents under both hypotheses (served, written)."""

    def __init__(self, world: World, day: int, documents: RecentDocuments,
                 rates: RatesFromDocuments | None = None) -> None:
        pop, tl = world.pop, world.full
        span = documents.days
        self.ago = np.arange(1, span + 1)
        index = day - self.ago
        written = ((index[None, :] >= pop.start_day[:, None])
                   & (index[None, :] >= tl.activity_from_day)
                   & (index[None, :] >= (rates.kept_from_day if rates is not None else 0)))
        weekend = _weekend_factor(world, day, span)
        self.lam = pop.sessions_per_day[:, None] * weekend[None, :] * written
        self.sessions = documents.sessions * written
        self.xb = documents.log_bytes_excess * written
        self.xm = documents.log_minutes_excess * written
        self.logged = documents.logged_in * written
        self.not_logged = (1.0 - documents.logged_in) * written
        self.logins_per_day = pop.logins_per_day[:, None]
        self.p1 = np.minimum(pop.logins_per_day, MAX_LOGIN_CHANCE)[:, None]
        # Where even the usual login chance is capped, the login term is worked out in full.
        self.capped = np.flatnonzero(pop.logins_per_day > MAX_LOGIN_CHANCE)
        self.not_logged_cum = np.cumsum(self.not_logged, axis=1)
        self.feedback = documents.feedback_log_lr
        self.rates = None
        if rates is not None:
            shape, scale, mu, mu_var = rates.posterior()
            self.exposure = weekend[None, :] * written  # lam without the rate
            recent = self.sessions.sum(axis=1)
            self.shape = shape + recent  # (shape + sessions) of the negative binomial
            self.scale_all = scale + self.exposure.sum(axis=1)
            # Excess log bytes against the posterior mean, not the latent one; the recent
            # sessions share the mean's remaining uncertainty (mu_var).
            self.xb = self.xb + self.sessions * (_log_mean_bytes(pop) - mu)[:, None]
            self.xb_total = self.xb.sum(axis=1)
            self.shared = mu_var / (LOG_BYTES_SD**2 + recent * mu_var)
            self.rates = rates

    def log_lr(self, length: int, k: int) -> np.ndarray:
        """log LR of the documents for a wind-down of `length` days ending in a
        cancellation on day + k (it began length - k days ago) against none."""
        began = length - k  # days ago; the wind-down shows on the days after it
        feedback = self.feedback[:, :began].sum(axis=1)
        if began <= 1:
            return feedback
        m = began - 1  # days 1..m ago show a < 1: the first m columns
        progress = (began - self.ago[:m]) / length
        a = 1.0 - (1.0 - LEAVER_ACTIVITY_FLOOR) * np.sqrt(progress)
        db, dm = np.log(0.4 + 0.6 * a), np.log(0.5 + 0.5 * a)
        sessions = self.sessions[:, :m]
        if self.rates is None:
            rate_terms = (sessions @ (np.log(a) - db**2 / (2 * LOG_BYTES_SD**2))
                          - self.lam[:, :m] @ (a - 1.0)
                          + self.xb[:, :m] @ (db / LOG_BYTES_SD**2))
        else:
            # Negative binomial: (shape + n) log((scale + S) / (scale + S - sum w (1 - a))).
            rate_terms = sessions @ np.log(a) + self.shape * (
                np.log(self.scale_all) - np.log(self.scale_all - self.exposure[:, :m] @ (1 - a)))
            # Gaussian with one shared offset: d' inv(C) r - d' inv(C) d / 2, where
            # inv(C) = (I - shared 1 1') / sd^2 (Sherman-Morrison).
            d_sum, d_sq = sessions @ db, sessions @ db**2
            d_r = self.xb[:, :m] @ db
            rate_terms = rate_terms + (
                d_r - self.shared * d_sum * self.xb_total
                - 0.5 * (d_sq - self.shared * d_sum**2)) / LOG_BYTES_SD**2
        out = (
            feedback
            + rate_terms
            - sessions @ (dm**2 / (2 * LOG_MINUTES_SD**2))
            + self.xm[:, :m] @ (dm / LOG_MINUTES_SD**2)
            # logins: log(L a / L) on days logged in, log((1 - L a) / (1 - L)) otherwise
            + self.logged[:, :m] @ np.log(a)
            + np.einsum("ij,ij->i", self.not_logged[:, :m],
                        np.log1p(-self.logins_per_day * a[None, :]))
            - self.not_logged_cum[:, m - 1] * np.log1p(-self.logins_per_day[:, 0])
        )
        if len(self.capped):
            c = self.capped
            pa = np.minimum(self.logins_per_day[c] * a[None, :], MAX_LOGIN_CHANCE)
            out[c] = (out[c] - self.logged[c, :m] @ np.log(a)
                      + np.sum(self.logged[c, :m] * np.log(pa / self.p1[c]), axis=1)
                      - np.einsum("ij,ij->i", self.not_logged[c, :m],
                                  np.log1p(-self.logins_per_day[c] * a[None, :]))
                      + self.not_logged_cum[c, m - 1] * np.log1p(-self.logins_per_day[c, 0])
                      + np.sum(self.not_logged[c, :m]
                               * np.log((1.0 - pa) / (1.0 - self.p1[c])), axis=1))
        return out


def _leaving_call_log_lr(world: World, documents: RecentDocuments, explicit: int
                         ) -> np.ndarray:
    """(explicit, n) log LR of the "account" tickets of the last days for a cancellation
    on day + k against none: a share of leavers call 0..LEAVING_TICKET_DAYS - 1 days
    before C, and such a call before as-of means C is near; otherwise "account" tickets
    come at the general rate (timeline._ticket_days' base rate x the category's share)."""
    pop = world.pop
    quality = np.exp(0.5 * (np.log(pop.latency_ms) - np.log(pop.latency_ms).mean()))
    general = BASE_TICKET_RATE * quality * np.exp(0.5 * pop.payment_stress)
    share = GENERAL_TICKET_CATEGORY_SHARES[TICKET_CATEGORIES.index(ACCOUNT_CATEGORY)]
    q = np.clip(general * share, 1e-9, 0.5)
    per_day = LEAVING_TICKET_SHARE / LEAVING_TICKET_DAYS
    out = np.zeros((explicit, pop.size))
    called = documents.account_tickets > 0
    for k in range(min(explicit, LEAVING_TICKET_DAYS)):
        visible = LEAVING_TICKET_DAYS - 1 - k  # the call would be 1..visible days ago
        seen = called[:, :visible].sum(axis=1)
        out[k] = np.log(1.0 - per_day * visible + per_day * seen * (1.0 - q) / q)
    return out


def _posterior_terms(cum: np.ndarray, per_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log of (mass with C in the horizon, total mass) over C >= day, with the survival to
    day; `cum` (rows: days day-1 .. day + max(explicit, horizon) - 1) the cumulative
    hazard, `per_c` the documents' log LR for C = day + k, k < explicit (1 after)."""
    explicit = per_c.shape[0]
    with np.errstate(divide="ignore"):
        log_hit = np.log(-np.expm1(-(cum[1: explicit + 1] - cum[:explicit])))  # P(C=c | C>=c)
        terms = -cum[:explicit] + log_hit + per_c
        rest = -cum[explicit]  # C >= day + explicit: the documents cannot tell
        within = min(explicit, HORIZON_DAYS)
        numerator = [terms[:within]]
        if explicit < HORIZON_DAYS:
            numerator.append((rest + np.log(-np.expm1(-(cum[HORIZON_DAYS] - cum[explicit]))))
                             [None, :])
    total = logsumexp(np.vstack([terms, rest[None, :]]), axis=0)
    return logsumexp(np.vstack(numerator), axis=0), total


def timeline_hooks(world: World):
    """The scenario hooks `build_world` passed to the timeline (None: the default world)."""
    spec = world.spec
    return None if spec.scenario == DEFAULT else hooks_for(spec.scenario, spec.history_days,
                                                           spec.days)


def past_hazard_inputs(world: World, day: int, until: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tickets, failed charges, incidents) per (day index < until, customer) as the
    hazard reads them, realised before `day` and zero from it on."""
    pop, tl = world.pop, world.full
    start = tl.window.start_seconds
    tickets = np.zeros((until, pop.size), dtype=np.float32)
    t = tl.tickets
    t_day = (t.seconds - start) // SECONDS_PER_DAY
    keep = (t.cause != TICKET_CAUSE_LEAVING) & (t_day < day)
    tickets[t_day[keep], t.customer[keep]] = 1.0
    failures = np.zeros((until, pop.size), dtype=np.int16)
    a = tl.attempts
    a_day = (a.seconds - start) // SECONDS_PER_DAY
    failed = a.failed & (a_day < day)
    np.add.at(failures, (a_day[failed], a.customer[failed]), 1)
    incident = np.zeros((until, pop.size), dtype=bool)
    incident[:day] = tl.incident[:day]
    return tickets, failures, incident


def hazard_of(world: World, tickets: np.ndarray, failures: np.ndarray,
              incident: np.ndarray) -> np.ndarray:
    """The scaled daily hazard (days, n) the timeline builds from these inputs."""
    pop, tl = world.pop, world.full
    exposed = np.arange(tickets.shape[0])[:, None] >= pop.start_day[None, :]
    hooks = timeline_hooks(world)
    hazard = _daily_hazard(pop, exposed, tickets, failures, incident, hooks)
    scaled = hazard * np.float32(tl.hazard_scale)
    return scaled if hooks is None else hooks.scaled_hazard(pop, scaled)


def _cumulative_hazard_paths(world: World, day: int, until: int, paths: int, seed: int):
    """Per draw of the days [day, until): the cumulative hazard at days day-1 .. until-1
    (realised events before `day`, the simulator's processes from it on)."""
    pop, tl = world.pop, world.full
    start = tl.window.start_seconds
    tickets0, failures0, incident0 = past_hazard_inputs(world, day, until)
    exposed = (np.arange(day, until)[:, None] >= pop.start_day[None, :])
    # Charges still to come: retries of charges failing before `day`, and new invoices.
    a = tl.attempts
    past = np.flatnonzero((a.seconds - start) // SECONDS_PER_DAY < day)
    last_number = np.zeros(len(tl.invoices.day) + 1, dtype=np.int64)
    np.maximum.at(last_number, a.invoice[past], a.number[past])
    pending = past[a.failed[past] & (a.number[past] == last_number[a.invoice[past]])
                   & (a.number[past] < MAX_PAYMENT_ATTEMPTS)]
    schedule = billing_schedule(pop, tl.window)
    new = np.flatnonzero((schedule.day >= day) & (schedule.day < until))
    rates = np.array([c.incident_rate for c in CITIES])
    cheap = np.array([p.cheap for p in PLANS])[pop.plan]
    quality = np.exp(0.5 * (np.log(pop.latency_ms) - np.log(pop.latency_ms).mean()))
    general = BASE_TICKET_RATE * quality * np.exp(0.5 * pop.payment_stress)
    for path in range(paths):
        rng = np.random.default_rng([seed, day, path])
        failures = failures0.copy()
        chains = [
            (a.customer[pending], a.seconds[pending] + PAYMENT_RETRY_DAYS * SECONDS_PER_DAY,
             a.number[pending] + 1),
            (schedule.customer[new], schedule.seconds[new] + rng.integers(60, 3600, len(new)),
             np.ones(len(new), dtype=np.int64)),
        ]
        for customer, seconds, number in chains:
            while len(customer):
                failed = rng.random(len(customer)) < pop.payment_stress[customer]
                when = (seconds - start) // SECONDS_PER_DAY
                hit = failed & (when < until)
                np.add.at(failures, (when[hit], customer[hit]), 1)
                again = failed & (number < MAX_PAYMENT_ATTEMPTS)
                customer, number = customer[again], number[again] + 1
                seconds = seconds[again] + PAYMENT_RETRY_DAYS * SECONDS_PER_DAY
        down = rng.random((until - day, len(CITIES))) < rates
        incident = incident0.copy()
        incident[day:] = down[:, pop.city] & cheap[None, :] & exposed
        charged = failures[day:] > 0
        u = rng.random(charged.shape)
        billing = u < TICKET_RATE_PER_FAILURE * charged
        network = ~billing & (u < TICKET_RATE_PER_FAILURE * charged
                              + TICKET_RATE_PER_INCIDENT * incident[day:])
        other = rng.random(charged.shape) < general[None, :]
        tickets = tickets0.copy()
        tickets[day:] = (billing | network | other) & exposed
        hazard = hazard_of(world, tickets, failures, incident)
        yield np.cumsum(hazard, axis=0, dtype=np.float64)[day - 1:]


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


def _seconds(values) -> np.ndarray:
    import pandas as pd

    return pd.to_datetime(pd.Series(values), utc=True).dt.tz_convert(None).to_numpy(
        dtype="datetime64[s]").astype(np.int64)


def rates_from_lake(world: World, day: int, usagelogs,
                    kept_from_day: int = 0) -> RatesFromDocuments:
    """RatesFromDocuments from the lake's usagelogs (user_id hex, timestamp, download_gb)."""
    rates = RatesFromDocuments(world, day, kept_from_day)
    rates.add_sessions(_positions(_position_index(world), usagelogs),
                       _seconds(usagelogs["timestamp"]),
                       usagelogs["download_gb"].to_numpy(float) * BYTES_PER_GB)
    return rates


def _position_index(world: World):
    """user_id -> the customer's position in the world, built once per lake read."""
    import pandas as pd

    return pd.Series(np.arange(world.pop.size), index=world.user_ids)


def _positions(position, frame) -> np.ndarray:
    """Each row's customer position (`position`: `_position_index`; -1: not one of the
    world's customers)."""
    return position.reindex(frame["user_id"].to_numpy()).fillna(-1).to_numpy(int)


def documents_from_lake(world: World, day: int, usagelogs, auditlogs, supporttickets,
                        feedbacks) -> RecentDocuments:
    """RecentDocuments from lake tables (bbx.lake columns: user_id hex; usagelogs timestamp,
    download_gb, session_minutes; auditlogs timestamp; supporttickets created_at,
    category; feedbacks created_at, overall_rating)."""
    import pandas as pd

    documents = RecentDocuments(world, day)
    who = functools.partial(_positions, _position_index(world))
    documents.add_sessions(who(usagelogs), _seconds(usagelogs["timestamp"]),
                           usagelogs["download_gb"].to_numpy(float) * BYTES_PER_GB,
                           usagelogs["session_minutes"].to_numpy(float))
    documents.add_logins(who(auditlogs), _seconds(auditlogs["timestamp"]))
    documents.add_tickets(who(supporttickets), _seconds(supporttickets["created_at"]),
                          supporttickets["category"].to_numpy())
    documents.add_feedback(who(feedbacks), _seconds(feedbacks["created_at"]),
                           pd.to_numeric(feedbacks["overall_rating"], errors="coerce")
                           .to_numpy(float))
    return documents
