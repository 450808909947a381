"""What happens to each customer inside the window: bills, failed charges, tickets,
network incidents, and who leaves when.

Built once per run as small per-event arrays (no documents): the heavy, per-session
writing later reads it month by month. Churn is a daily hazard driven by the
customer's latent traits plus recent bad experiences, scaled so the book loses
`annual_churn` of its customers a year.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.catalog import (
    BASE_TICKET_RATE,
    CITIES,
    GRACE_PERIOD_DAYS,
    HAZARD_WEIGHTS,
    LEAVER_ACTIVITY_FLOOR,
    LEAVER_DECLINE_DAYS,
    MAX_PAYMENT_ATTEMPTS,
    NEW_CONTRACT_BOOST,
    NEW_CONTRACT_DAYS,
    NONRENEWAL_SHARE_OF_CHURN,
    PAYMENT_RETRY_DAYS,
    PLANS,
    TICKET_RATE_PER_FAILURE,
    TICKET_RATE_PER_INCIDENT,
)
from simulator.encode import SECONDS_PER_DAY
from simulator.population import Population

if TYPE_CHECKING:
    from simulator.scenarios import TimelineHooks

NEVER = 10**9  # a day index later than any window

TICKET_CAUSE_GENERAL = 0
TICKET_CAUSE_INCIDENT = 1
TICKET_CAUSE_BILLING = 2
TICKET_CAUSE_LEAVING = 3
# A share of leavers call about leaving within the last days before they cancel.
LEAVING_TICKET_SHARE = 0.3
LEAVING_TICKET_DAYS = 10  # the call is 0..LEAVING_TICKET_DAYS - 1 days before the cancellation


@dataclass(frozen=True)
class Window:
    start_seconds: int  # midnight UTC of the first simulated day
    days: int

    @property
    def end_seconds(self) -> int:
        """Last second of the last simulated day."""
        return self.start_seconds + self.days * SECONDS_PER_DAY - 1

    @property
    def start_date(self) -> np.datetime64:
        return np.datetime64(self.start_seconds, "s").astype("M8[D]")

    @property
    def last_date(self) -> np.datetime64:
        return self.start_date + np.timedelta64(self.days - 1, "D")

    def day_seconds(self, day: np.ndarray) -> np.ndarray:
        return self.start_seconds + np.asarray(day, dtype=np.int64) * SECONDS_PER_DAY


@dataclass(frozen=True)
class Invoices:
    customer: np.ndarray
    day: np.ndarray
    seconds: np.ndarray  # issue time (start of the billing period)
    period_end_seconds: np.ndarray


@dataclass(frozen=True)
class Attempts:
    customer: np.ndarray
    invoice: np.ndarray  # index into Invoices
    seconds: np.ndarray
    number: np.ndarray  # 1-based attempt number for the invoice
    failed: np.ndarray


@dataclass(frozen=True)
class Tickets:
    customer: np.ndarray
    seconds: np.ndarray
    cause: np.ndarray  # TICKET_CAUSE_*


@dataclass(frozen=True)
class Timeline:
    window: Window
    invoices: Invoices
    attempts: Attempts
    tickets: Tickets
    incident: np.ndarray  # (days, n) bool: the customer's line suffered a city incident
    cancel_day: np.ndarray  # -1: did not cancel
    cancel_request_seconds: np.ndarray
    cancel_effective_seconds: np.ndarray
    nonrenewal_day: np.ndarray  # -1: renewed; else the day the contract ran out
    nonrenewal_seconds: np.ndarray
    service_end_day: np.ndarray  # first day without service (NEVER: still served)
    decline_start_day: np.ndarray  # leavers start winding down here
    decline_days: np.ndarray
    paid_through_seconds: np.ndarray  # endDate of a live contract
    monthly_hazard: np.ndarray  # latent average monthly churn hazard
    daily_hazard: np.ndarray  # (days, n) float32 scaled cancellation hazard per day
    hazard_scale: float  # calibration factor already applied to daily_hazard
    activity_from_day: int = 0  # no usage or logins written before this day (short history)

    def activity(self, start_day: np.ndarray, days: np.ndarray) -> np.ndarray:
        """(len(days), n) multiplier of normal behaviour: 1 normally, falling before leaving,
        0 before the contract starts and after service ends."""
        d = days[:, None].astype(float)
        served = (d >= start_day[None, :]) & (d < self.service_end_day[None, :])
        served &= d >= self.activity_from_day
        progress = np.clip((d - self.decline_start_day[None, :]) / self.decline_days[None, :], 0, 1)
        progress = np.sqrt(progress)  # disengagement shows early, then levels off
        return np.where(served, 1.0 - (1.0 - LEAVER_ACTIVITY_FLOOR) * progress, 0.0)


# --- billing calendar ----------------------------------------------------------------


def _anniversary(start: np.ndarray, months_after: np.ndarray) -> np.ndarray:
    """start + k calendar months, clamped to the month's last day (as the app's setMonth)."""
    start_month = start.astype("M8[M]")
    day_of_month = (start - start_month.astype("M8[D]")).astype(np.int64)
    month = start_month + months_after.astype("m8[M]")
    first = month.astype("M8[D]")
    days_in_month = ((month + np.timedelta64(1, "M")).astype("M8[D]") - first).astype(np.int64)
    return first + np.minimum(day_of_month, days_in_month - 1).astype("m8[D]")


def _months_between(a: np.ndarray, b: np.datetime64) -> np.ndarray:
    return (b.astype("M8[M]") - a.astype("M8[M]")).astype(np.int64)


def billing_schedule(pop: Population, window: Window) -> Invoices:
    """Every invoice the customers' billing cycles issue inside `window`, whoever leaves."""
    return _invoices(pop, window)


def _invoices(pop: Population, window: Window) -> Invoices:
    start = (window.start_date + pop.start_day.astype("m8[D]")).astype("M8[D]")
    cycle = np.where(pop.yearly, 12, 1)
    first_k = np.maximum(0, _months_between(start, window.start_date) - 1)
    last_k = _months_between(start, window.last_date)
    time_of_day = pop.start_seconds - pop.start_seconds // SECONDS_PER_DAY * SECONDS_PER_DAY
    parts: list[tuple[np.ndarray, ...]] = []
    for offset in range(int(window.days / 28) + 3):
        k = first_k + offset
        date = _anniversary(start, k)
        day = (date - window.start_date).astype(np.int64)
        due = (k <= last_k) & (k % cycle == 0) & (day >= 0) & (day < window.days)
        customers = np.flatnonzero(due)
        period_end = _anniversary(start[customers], k[customers] + cycle[customers])
        period_end_day = (period_end - window.start_date).astype(np.int64)
        parts.append((customers, day[customers], period_end_day))
    customer = np.concatenate([p[0] for p in parts])
    order = np.lexsort((np.concatenate([p[1] for p in parts]), customer))
    customer = customer[order]
    day = np.concatenate([p[1] for p in parts])[order]
    end_day = np.concatenate([p[2] for p in parts])[order]
    tod = time_of_day[customer]
    return Invoices(customer, day, window.day_seconds(day) + tod, window.day_seconds(end_day) + tod)


def _paid_through(pop: Population, window: Window) -> np.ndarray:
    """The next renewal date after the window: the endDate of a live contract."""
    start = (window.start_date + pop.start_day.astype("m8[D]")).astype("M8[D]")
    cycle = np.where(pop.yearly, 12, 1)
    k = np.maximum(0, _months_between(start, window.last_date))
    k = -(-k // cycle) * cycle
    k = np.where(_anniversary(start, k) > window.last_date, k, k + cycle)
    day = (_anniversary(start, k) - window.start_date).astype(np.int64)
    return window.day_seconds(day) + pop.start_seconds % SECONDS_PER_DAY


def _attempts(rng: np.random.Generator, pop: Population, inv: Invoices, days: int) -> Attempts:
    """Charge each invoice; a failed charge is retried up to MAX_PAYMENT_ATTEMPTS times."""
    parts = []
    still_failing = np.ones(len(inv.day), dtype=bool)
    for number in range(1, MAX_PAYMENT_ATTEMPTS + 1):
        day = inv.day + (number - 1) * PAYMENT_RETRY_DAYS
        made = still_failing & (day < days)
        idx = np.flatnonzero(made)
        failed = rng.random(len(idx)) < pop.payment_stress[inv.customer[idx]]
        seconds = inv.seconds[idx] + (number - 1) * PAYMENT_RETRY_DAYS * SECONDS_PER_DAY
        seconds = seconds + rng.integers(60, 3600, len(idx))
        parts.append((idx, seconds, np.full(len(idx), number), failed))
        still_failing = np.zeros_like(still_failing)
        still_failing[idx[failed]] = True
    invoice = np.concatenate([p[0] for p in parts])
    return Attempts(
        customer=inv.customer[invoice],
        invoice=invoice,
        seconds=np.concatenate([p[1] for p in parts]),
        number=np.concatenate([p[2] for p in parts]),
        failed=np.concatenate([p[3] for p in parts]),
    )


# --- experiences and hazard ------------------------------------------------------------


def _rolling_sum(x: np.ndarray, window_days: int) -> np.ndarray:
    total = np.cumsum(x, axis=0, dtype=np.float32)
    shifted = np.zeros_like(total)
    shifted[window_days:] = total[:-window_days]
    return total - shifted


def _incidents(rng: np.random.Generator, pop: Population, days: int) -> np.ndarray:
    city_down = rng.random((days, len(CITIES))) < np.array([c.incident_rate for c in CITIES])
    cheap = np.array([p.cheap for p in PLANS])[pop.plan]
    return city_down[:, pop.city] & cheap[None, :]


def _ticket_days(
    rng: np.random.Generator, pop: Population, incident: np.ndarray, failures: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(days, n) ticket flags and their cause: bad lines and failed charges make people call."""
    quality = np.exp(0.5 * (np.log(pop.latency_ms) - np.log(pop.latency_ms).mean()))
    base = BASE_TICKET_RATE * quality * np.exp(0.5 * pop.payment_stress)
    u = rng.random(incident.shape)
    billing = u < TICKET_RATE_PER_FAILURE * (failures > 0)
    network = ~billing & (
        u < TICKET_RATE_PER_FAILURE * (failures > 0) + TICKET_RATE_PER_INCIDENT * incident
    )
    general = rng.random(incident.shape) < base[None, :]
    cause = np.where(
        billing,
        TICKET_CAUSE_BILLING,
        np.where(network, TICKET_CAUSE_INCIDENT, TICKET_CAUSE_GENERAL),
    )
    return billing | network | general, cause


def _daily_hazard(
    pop: Population,
    exposed: np.ndarray,
    tickets: np.ndarray,
    failures: np.ndarray,
    incident: np.ndarray,
    hooks: TimelineHooks | None = None,
) -> np.ndarray:
    w = HAZARD_WEIGHTS
    days = exposed.shape[0]
    tenure = np.arange(days)[:, None] - pop.start_day[None, :]
    new_contract = 1.0 + NEW_CONTRACT_BOOST * np.exp(-np.maximum(tenure, 0) / NEW_CONTRACT_DAYS)
    recent = (
        w["recent_ticket"] * np.minimum(_rolling_sum(tickets, 30), 3)
        + w["recent_failure"] * np.minimum(_rolling_sum(failures, 30), 3)
        + w["recent_incident"] * (_rolling_sum(incident, 7) > 0)
    )
    hazard = np.exp(pop.static_log_hazard[None, :] + recent) * new_contract
    default = (hazard * exposed).astype(np.float32)
    if hooks is None:
        return default
    return hooks.daily_hazard(pop, exposed, tickets, failures, default, new_contract)


def _hazard_scale(
    total_hazard: np.ndarray, exposure_days: np.ndarray, start_day: np.ndarray, annual_churn: float
) -> float:
    """Scale so the customers already on the book when the window opens cancel at
    `annual_churn` a year (newcomers then leave faster, through the new-contract boost)."""
    if annual_churn <= 0:
        return 0.0
    cohort = start_day <= 0
    if not cohort.any():
        cohort = np.ones_like(cohort)
    hazard, exposure = total_hazard[cohort], exposure_days[cohort]
    target = np.sum(1 - (1 - annual_churn) ** (exposure / 365.0))
    lo, hi = 1e-12, 10.0
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        if np.sum(1 - np.exp(-mid * hazard)) < target:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def _first_crossing(cumulative: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    crossed = cumulative >= threshold[None, :]
    return np.where(crossed[-1], np.argmax(crossed, axis=0), -1)


def _pick_nonrenewals(
    rng: np.random.Generator, pop: Population, inv: Invoices, share: float
) -> np.ndarray:
    """Day a contract is left to run out (-1: renewed), chosen among in-window renewals."""
    n = pop.size
    renewal = inv.day > pop.start_day[inv.customer]
    chosen = rng.random(n) < share
    key = np.where(renewal & chosen[inv.customer], rng.random(len(inv.day)), 2.0)
    best = np.full(n, 2.0)
    np.minimum.at(best, inv.customer, key)
    pick = renewal & (key == best[inv.customer]) & (key < 2.0)
    day = np.full(n, -1, dtype=np.int64)
    day[inv.customer[pick]] = inv.day[pick]
    return day


def build_timeline(
    rng: np.random.Generator, pop: Population, window: Window, annual_churn: float,
    hooks: TimelineHooks | None = None,
) -> Timeline:
    n, days = pop.size, window.days
    day_index = np.arange(days)
    exposed = day_index[:, None] >= pop.start_day[None, :]
    invoices = _invoices(pop, window)
    attempts = _attempts(rng, pop, invoices, days)
    incident = _incidents(rng, pop, days) & exposed

    failures = np.zeros((days, n), dtype=np.int16)
    attempt_day = (attempts.seconds - window.start_seconds) // SECONDS_PER_DAY
    np.add.at(failures, (attempt_day[attempts.failed], attempts.customer[attempts.failed]), 1)
    ticket_flag, ticket_cause = _ticket_days(rng, pop, incident, failures)
    ticket_flag &= exposed

    hazard = _daily_hazard(pop, exposed, ticket_flag.astype(np.float32), failures, incident,
                           hooks)
    exposure_days = exposed.sum(axis=0)
    total_hazard = hazard.sum(axis=0, dtype=np.float64)
    scale = _hazard_scale(total_hazard, exposure_days, pop.start_day, annual_churn)
    scaled = hazard * np.float32(scale)
    if hooks is None:
        cancel_day = _first_crossing(np.cumsum(hazard, axis=0) * scale, rng.exponential(1.0, n))
    else:
        scaled = hooks.scaled_hazard(pop, scaled)
        total_hazard = scaled.sum(axis=0, dtype=np.float64) / scale
        cancel_day = _first_crossing(np.cumsum(scaled, axis=0), rng.exponential(1.0, n))

    # Non-renewals are an extra, smaller way out, taken by customers who did not cancel.
    period_churn = 1 - (1 - annual_churn) ** (days / 365.0)
    nonrenewal_day = _pick_nonrenewals(rng, pop, invoices, NONRENEWAL_SHARE_OF_CHURN * period_churn)
    nonrenewal_day = np.where(cancel_day >= 0, -1, nonrenewal_day)

    cancelled = cancel_day >= 0
    lapsed = nonrenewal_day >= 0
    request = window.day_seconds(np.maximum(cancel_day, 0)) + rng.integers(8 * 3600, 20 * 3600, n)
    request = np.minimum(np.maximum(request, pop.start_seconds + 3600), window.end_seconds)
    # Most cancellations take effect at once; some at a later date (never past the window).
    delay = np.where(rng.random(n) < 0.7, 0, rng.integers(3600, 5 * SECONDS_PER_DAY, n))
    effective = np.minimum(request + delay, window.end_seconds)
    time_of_day = pop.start_seconds % SECONDS_PER_DAY
    lapse_seconds = window.day_seconds(np.maximum(nonrenewal_day, 0)) + time_of_day

    leave_day = np.where(cancelled, cancel_day, np.where(lapsed, nonrenewal_day, NEVER))
    decline_days = rng.integers(LEAVER_DECLINE_DAYS[0], LEAVER_DECLINE_DAYS[1] + 1, n).astype(float)
    if hooks is not None:
        decline_days = hooks.wind_down_days(decline_days)
    service_end = np.where(
        cancelled, cancel_day + 1, np.where(lapsed, nonrenewal_day + GRACE_PERIOD_DAYS, NEVER)
    )

    # Bills and events stop when the customer leaves.
    stop_day = np.where(cancelled, cancel_day, np.where(lapsed, nonrenewal_day, NEVER))
    keep_invoice = invoices.day < stop_day[invoices.customer]
    invoices, attempts = _keep_invoices(invoices, attempts, keep_invoice)
    if len(attempts.seconds):
        in_service = (
            attempts.seconds
            < np.where(cancelled, request, np.iinfo(np.int64).max)[attempts.customer]
        )
        attempts = _subset_attempts(attempts, in_service)

    tickets = _tickets(
        rng, window, ticket_flag, ticket_cause, service_end, cancel_day, pop.start_day
    )
    monthly_hazard = 1 - np.exp(-30.0 * scale * total_hazard / np.maximum(exposure_days, 1))
    return Timeline(
        window=window,
        invoices=invoices,
        attempts=attempts,
        tickets=tickets,
        incident=incident,
        cancel_day=cancel_day,
        cancel_request_seconds=np.where(cancelled, request, -1),
        cancel_effective_seconds=np.where(cancelled, effective, -1),
        nonrenewal_day=nonrenewal_day,
        nonrenewal_seconds=np.where(lapsed, lapse_seconds, -1),
        service_end_day=service_end,
        decline_start_day=(leave_day - decline_days).astype(float),
        decline_days=decline_days,
        paid_through_seconds=_paid_through(pop, window),
        monthly_hazard=monthly_hazard,
        daily_hazard=scaled,
        hazard_scale=scale,
        activity_from_day=0 if hooks is None else hooks.activity_from_day(),
    )


def observed(tl: Timeline, pop: Population, days: int) -> Timeline:
    """The first `days` days of a timeline simulated further: what the app has written by
    then. Outcomes after that (cancellations, lapses, bills, tickets) are dropped, but the
    wind-down of customers who will leave soon has already begun and stays visible."""
    if days >= tl.window.days:
        return tl
    window = Window(tl.window.start_seconds, days)
    end = window.end_seconds
    inv = tl.invoices
    keep_invoice = inv.day < days
    invoices, attempts = _keep_invoices(inv, tl.attempts, keep_invoice)
    attempts = _subset_attempts(attempts, attempts.seconds <= end)
    t = tl.tickets
    in_window = t.seconds <= end
    tickets = Tickets(t.customer[in_window], t.seconds[in_window], t.cause[in_window])
    cancelled = (tl.cancel_day >= 0) & (tl.cancel_day < days)
    lapsed = (tl.nonrenewal_day >= 0) & (tl.nonrenewal_day < days)
    return Timeline(
        window=window,
        invoices=invoices,
        attempts=attempts,
        tickets=tickets,
        incident=tl.incident[:days],
        cancel_day=np.where(cancelled, tl.cancel_day, -1),
        cancel_request_seconds=np.where(cancelled, tl.cancel_request_seconds, -1),
        cancel_effective_seconds=np.where(
            cancelled, np.minimum(tl.cancel_effective_seconds, end), -1
        ),
        nonrenewal_day=np.where(lapsed, tl.nonrenewal_day, -1),
        nonrenewal_seconds=np.where(lapsed, tl.nonrenewal_seconds, -1),
        service_end_day=tl.service_end_day,
        decline_start_day=tl.decline_start_day,
        decline_days=tl.decline_days,
        paid_through_seconds=_paid_through(pop, window),
        monthly_hazard=tl.monthly_hazard,
        daily_hazard=tl.daily_hazard[:days],
        hazard_scale=tl.hazard_scale,
        activity_from_day=tl.activity_from_day,
    )


def _subset_attempts(a: Attempts, keep: np.ndarray) -> Attempts:
    return Attempts(
        a.customer[keep], a.invoice[keep], a.seconds[keep], a.number[keep], a.failed[keep]
    )


def _keep_invoices(inv: Invoices, att: Attempts, keep: np.ndarray) -> tuple[Invoices, Attempts]:
    new_index = np.cumsum(keep) - 1
    kept_att = keep[att.invoice]
    att = _subset_attempts(att, kept_att)
    att = Attempts(att.customer, new_index[att.invoice], att.seconds, att.number, att.failed)
    inv = Invoices(
        inv.customer[keep], inv.day[keep], inv.seconds[keep], inv.period_end_seconds[keep]
    )
    return inv, att


def _tickets(
    rng: np.random.Generator,
    window: Window,
    flag: np.ndarray,
    cause: np.ndarray,
    service_end: np.ndarray,
    cancel_day: np.ndarray,
    start_day: np.ndarray,
) -> Tickets:
    day_index = np.arange(window.days)[:, None]
    flag = flag & (day_index < service_end[None, :])
    day, customer = np.nonzero(flag)
    causes = cause[day, customer]
    # A share of leavers call to ask about leaving in the days before they cancel.
    leavers = np.flatnonzero((cancel_day >= 0)
                             & (rng.random(len(cancel_day)) < LEAVING_TICKET_SHARE))
    leaving_day = cancel_day[leavers] - rng.integers(0, LEAVING_TICKET_DAYS, len(leavers))
    ok = leaving_day >= np.maximum(start_day[leavers], 0)
    customer = np.concatenate([customer, leavers[ok]])
    day = np.concatenate([day, leaving_day[ok]])
    causes = np.concatenate([causes, np.full(int(ok.sum()), TICKET_CAUSE_LEAVING)])
    seconds = window.day_seconds(day) + rng.integers(2 * 3600, 17 * 3600, len(day))
    order = np.lexsort((seconds, customer))
    return Tickets(customer[order], seconds[order], causes[order])
