"""Per-customer churn features as of a cutoff (pure, point in time).

Rules that make a feature row safe for a past cutoff:
- population: customers whose subscription is live at the cutoff, judged from
  dates (features/subscriptions.py), not from the current status;
- events: only rows with event time strictly before the cutoff (usage
  timestamp, payment failed_at/created_at, ticket and feedback created_at,
  login timestamp);
- current-state fields (users.last_login_at, nps_score, account_status,
  subscription_status as a value, paymentFailures) are never read. Plan fields
  (price, category, speed) are the one exception: the pipeline never changes
  them and the app changes them rarely (a known, documented gap).

Everything is vectorised: user ids are mapped to integer positions once per
table, then counts/sums are `np.bincount` over positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import account
from features.coverage import COVERAGE_SOURCES, Coverage, EventDays, event_days
from features.registry import CHURN_CONTEXT_COLUMNS, CHURN_FEATURE_NAMES, CHURN_FEATURES
from features.subscriptions import (
    DAY,
    DAYS_PER_MONTH,
    current_subscription,
    subscription_lifecycle,
    to_utc,
    utc_series,
)

CATEGORY_CODES = {"residential": 0.0, "business": 1.0, "enterprise": 2.0}
CLOSED_TICKET_STATUSES = ("resolved", "closed")
NETWORK_TICKET_CATEGORIES = ("network", "technical")
ACCOUNT_TICKET_CATEGORY = "account"  # leaving is handled as an account matter
# Wind-down detection: leavers taper their use over a few weeks before they go, so the
# recent weeks are compared with the customer's own usual behaviour just before them.
WIND_DOWN_DAYS = 42  # recent days searched for the start of a drop (6 weeks)
BASELINE_DAYS = 84  # the customer's usual behaviour: the 12 weeks before those
USAGE_LOOKBACK_DAYS = WIND_DOWN_DAYS + BASELINE_DAYS
# Shorter histories have no baseline (NaN wind-down features). One whole week, so the
# weekend's extra sessions are in it; the likelihood ratios already weigh a short
# baseline as weak evidence. (14 left customers with a month of usage history, as in
# an app whose usage logs are kept for weeks, nearly no window to search.)
MIN_BASELINE_DAYS = 7
WEEKS = WIND_DOWN_DAYS // 7
MIN_LOG_SPREAD = 0.1  # floor of a customer's spread of log GB / log minutes per session
# The longest window the features read of each windowed source (usage: the wind-down
# look-back; logins: the same search). Scoring caps a source shorter than this at the
# latest labelled cutoff's coverage (features/coverage.py).
HISTORY_WINDOWS: dict[str, float] = {
    "usagelogs": float(USAGE_LOOKBACK_DAYS),
    "auditlogs": float(USAGE_LOOKBACK_DAYS),
}


@dataclass
class LakeTables:
    """The validated lake tables (columns as in bbx.lake), one field per collection."""

    users: pd.DataFrame
    plans: pd.DataFrame
    subscriptions: pd.DataFrame
    usagelogs: pd.DataFrame
    payments: pd.DataFrame
    billings: pd.DataFrame
    supporttickets: pd.DataFrame
    auditlogs: pd.DataFrame
    feedbacks: pd.DataFrame


@dataclass(frozen=True)
class Events:
    """Rows of one event table before the cutoff, aligned to population positions."""

    pos: np.ndarray  # int position of the customer in the population index
    age_days: np.ndarray  # (cutoff - event time) in days, > 0
    frame: pd.DataFrame  # the matching rows (same order), for value columns
    n: int  # population size

    def mask(self, max_age_days: float, min_age_days: float = 0.0) -> np.ndarray:
        return (self.age_days < max_age_days) & (self.age_days >= min_age_days)

    def count(self, mask: np.ndarray | None = None) -> np.ndarray:
        pos = self.pos if mask is None else self.pos[mask]
        return np.bincount(pos, minlength=self.n).astype(float)

    def total(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if mask is not None:
            return np.bincount(self.pos[mask], weights=values[mask], minlength=self.n)
        return np.bincount(self.pos, weights=values, minlength=self.n)

    def mean(self, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Mean of non-null values per customer; NaN where there is none."""
        keep = ~np.isnan(values)
        if mask is not None:
            keep &= mask
        n = self.count(keep)
        s = self.total(np.nan_to_num(values), keep)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / np.where(n > 0, n, 1), np.nan)


def events_before(
    frame: pd.DataFrame,
    time: pd.Series,
    population: pd.Index,
    cutoff: pd.Timestamp,
    max_days: float | None,
) -> Events:
    """Rows with `time` in [cutoff - max_days, cutoff) whose user is in `population`."""
    time = utc_series(time)
    keep = time < cutoff
    if max_days is not None:
        keep &= time >= cutoff - pd.Timedelta(days=max_days)
    rows = np.flatnonzero(keep.fillna(False).to_numpy(dtype=bool))
    pos = population.get_indexer(frame["user_id"].to_numpy()[rows])
    known = pos >= 0
    rows = rows[known]
    # One take of the frame's rows (a take copies every column, Arrow strings included).
    sub = frame.take(rows)
    age = ((cutoff - time.take(rows)) / DAY).to_numpy(dtype=float)
    return Events(pos=pos[known].astype(np.int64), age_days=age, frame=sub, n=len(population))


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def customer_population(tables: LakeTables, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Customers with a subscription live at cutoff: their current subscription rows.

    Index user_id (sorted). Admin users are excluded (role is fixed at signup).
    """
    current = current_subscription(subscription_lifecycle(tables.subscriptions), cutoff)
    admins = tables.users.loc[tables.users["role"].eq("admin"), "user_id"]
    return current[~current.index.isin(admins)]


def customer_since(tables: LakeTables, population: pd.DataFrame) -> pd.Series:
    """Event-dated customer start: customer_since, else users.created_at, else sub start."""
    users = tables.users.drop_duplicates("user_id").set_index("user_id")
    since = utc_series(users["customer_since"]).fillna(utc_series(users["created_at"]))
    since = since.reindex(population.index)
    return since.fillna(population["start_date"])


def build_churn_features(
    tables: LakeTables, cutoff: pd.Timestamp, lake_days: EventDays | None = None,
    history_days: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per customer live at `cutoff`; index user_id.

    Columns: CHURN_CONTEXT_COLUMNS (subscription_id, plan_id, billing_cycle), then
    CHURN_FEATURE_NAMES in registry order. Where each source's history begins is read
    from its events before the cutoff (features/coverage.py): from `lake_days` (the
    whole lake's, when `tables` is one bucket of customers), else from `tables`;
    windowed per-day rates divide by the covered days of their window. `history_days`
    (a model's, for scoring): read at most that many days of those sources, as the rows
    the model was fitted and calibrated on could (coverage.scoring_history_days).
    """
    cutoff = to_utc(cutoff)
    coverage = (event_days(tables) if lake_days is None else lake_days).coverage(cutoff)
    if history_days:
        coverage = coverage.capped(cutoff, history_days)
        tables = _events_from(tables, coverage, list(history_days))
    pop = customer_population(tables, cutoff)
    idx = pd.Index(pop.index, name="user_id")
    out = pd.DataFrame(index=idx)

    # Usage: one pass over the look-back (90-day features mask it to 90 days).
    usage = events_before(
        tables.usagelogs, tables.usagelogs["timestamp"], idx, cutoff,
        max_days=USAGE_LOOKBACK_DAYS,
    )
    last90 = usage.mask(90)
    gb = np.nan_to_num(_column(usage.frame, "download_gb")) + np.nan_to_num(
        _column(usage.frame, "upload_gb")
    )
    last30 = usage.mask(30)
    gb_30 = usage.total(gb, last30)
    gb_prev30 = usage.total(gb, usage.mask(60, 30))
    with np.errstate(invalid="ignore", divide="ignore"):
        decline = np.where(gb_prev30 > 0, 100.0 * (gb_prev30 - gb_30) / gb_prev30, 0.0)
    # No baseline but some usage now: growth, floored like any other growth.
    decline = np.where((gb_prev30 <= 0) & (gb_30 > 0), -100.0, decline)
    out["usage_decline_30d_pct"] = np.clip(decline, -100.0, 100.0)

    # Last login from the login history only (users.last_login_at is current state).
    logins = events_before(
        tables.auditlogs, tables.auditlogs["timestamp"], idx, cutoff, max_days=None
    )
    last_login_age = np.full(len(idx), np.inf)
    np.minimum.at(last_login_age, logins.pos, logins.age_days)
    since = customer_since(tables, pop)
    since_age = ((cutoff - since) / DAY).to_numpy(dtype=float)
    days_since_login = np.where(np.isfinite(last_login_age), last_login_age, since_age)
    out["days_since_last_login"] = np.clip(np.nan_to_num(days_since_login), 0.0, None)

    # Payment failures are events: failed_at if set, else created_at of a failed row.
    pay = tables.payments
    failed_time = utc_series(pay["failed_at"]).fillna(
        utc_series(pay["created_at"]).where(pay["payment_status"].eq("failed"))
    )
    failures = events_before(pay, failed_time, idx, cutoff, max_days=90)
    out["payment_failures_90d"] = failures.count()

    tickets_all = events_before(
        tables.supporttickets, tables.supporttickets["created_at"], idx, cutoff, max_days=None
    )
    out["support_tickets_90d"] = tickets_all.count(tickets_all.mask(90))
    # Status is current state: it tells the state at cutoff only if the ticket has not
    # changed since (updated_at < cutoff); otherwise count it as still open then.
    tf = tickets_all.frame
    closed_before = tf["ticket_status"].isin(CLOSED_TICKET_STATUSES).to_numpy() & (
        (utc_series(tf["updated_at"]) < cutoff).fillna(False).to_numpy(dtype=bool)
    )
    out["open_tickets"] = tickets_all.count(~closed_before)

    start_age = ((cutoff - pop["start_date"]) / DAY).to_numpy(dtype=float)
    out["contract_age_months"] = np.clip(start_age, 0.0, None) / DAYS_PER_MONTH

    out["usage_gb_7d"] = usage.total(gb, usage.mask(7))
    out["usage_gb_30d"] = gb_30
    gb_90 = usage.total(gb, last90)
    out["usage_gb_90d"] = gb_90
    day_key = usage.pos[last30] * 30 + np.floor(usage.age_days[last30]).astype(np.int64)
    active_pos = np.unique(day_key) // 30
    out["active_days_30d"] = np.bincount(active_pos, minlength=len(idx)).astype(float)
    out["sessions_30d"] = usage.count(last30)
    out["mean_latency_ms_30d"] = usage.mean(_column(usage.frame, "latency_ms"), last30)
    out["mean_packet_loss_pct_30d"] = usage.mean(_column(usage.frame, "packet_loss_pct"), last30)

    plans = tables.plans.drop_duplicates("plan_id").set_index("plan_id")
    plan = plans.reindex(pop["plan_id"].to_numpy())
    out["monthly_price"] = pd.to_numeric(plan["monthly_price"], errors="coerce").to_numpy()
    out["plan_category_code"] = plan["category"].map(CATEGORY_CODES).to_numpy(dtype=float)
    out["plan_download_mbps"] = pd.to_numeric(plan["download_mbps"], errors="coerce").to_numpy()

    yearly = pop["billing_cycle"].eq("yearly").to_numpy()
    out["billing_cycle_yearly"] = yearly.astype(float)
    base = pd.to_numeric(pop["base_price"], errors="coerce").to_numpy(dtype=float)
    discount = pd.to_numeric(pop["discount_applied"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(base > 0, np.nan_to_num(discount) / base, 0.0)
    out["discount_share"] = np.clip(share, 0.0, 1.0)
    cycle_days = np.where(yearly, 365.25, DAYS_PER_MONTH)
    out["days_to_renewal"] = cycle_days - np.mod(np.clip(start_age, 0.0, None), cycle_days)

    out["logins_30d"] = logins.count(logins.mask(30))
    feedback = events_before(
        tables.feedbacks, tables.feedbacks["created_at"], idx, cutoff, max_days=90
    )
    out["feedback_mean_rating_90d"] = feedback.mean(_column(feedback.frame, "overall_rating"))
    tenure = ((cutoff - since) / DAY).to_numpy(dtype=float)
    out["customer_tenure_months"] = np.clip(np.nan_to_num(tenure), 0.0, None) / DAYS_PER_MONTH

    # Recent trouble: failures, tickets, service quality, feedback, invoices.
    out["payment_failures_30d"] = failures.count(failures.mask(30))
    last30_tickets = tickets_all.mask(30)
    out["support_tickets_30d"] = tickets_all.count(last30_tickets)
    network = tf["category"].isin(NETWORK_TICKET_CATEGORIES).to_numpy(dtype=bool)
    out["network_tickets_30d"] = tickets_all.count(last30_tickets & network)
    last90_tickets = tickets_all.mask(90)
    urgent = tf["priority"].isin(account.HIGH_PRIORITIES).to_numpy(dtype=bool)
    out["high_priority_tickets_90d"] = tickets_all.count(last90_tickets & urgent)
    resolution = (
        (utc_series(tf["updated_at"]) - utc_series(tf["created_at"])) / DAY
    ).to_numpy(dtype=float)
    resolved_recent = last90_tickets & closed_before
    out["mean_resolution_days_90d"] = tickets_all.mean(resolution, resolved_recent)
    out["ticket_satisfaction_90d"] = tickets_all.mean(
        _column(tf, "satisfaction_rating"), resolved_recent
    )

    latency = _column(usage.frame, "latency_ms")
    loss = _column(usage.frame, "packet_loss_pct")
    usual_latency = usage.mean(latency, last90)  # 90-day mean per customer
    usual_loss = usage.mean(loss, last90)
    last7 = usage.mask(7)
    with np.errstate(invalid="ignore"):
        degraded = (latency > 2.0 * usual_latency[usage.pos]) | (
            loss > usual_loss[usage.pos] + 2.0
        )
    out["degraded_sessions_7d"] = usage.count(last7 & degraded)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["latency_ratio_7d_90d"] = usage.mean(latency, last7) / np.where(
            usual_latency > 0, usual_latency, np.nan
        )
    out["negative_feedback_90d"] = feedback.count(
        _column(feedback.frame, "overall_rating") <= 2.0
    )

    # Against the customer's own baseline (per day, so windows compare).
    # Per day over the covered part of the 90 days (a short usage history is not a drop).
    days_90 = max(coverage.covered_days("usagelogs", cutoff, 90.0), 7.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_day_90 = np.where(gb_90 > 0, gb_90 / days_90, np.nan)
        out["usage_ratio_7d_90d"] = (out["usage_gb_7d"].to_numpy() / 7.0) / per_day_90
        out["usage_ratio_14d_90d"] = (usage.total(gb, usage.mask(14)) / 14.0) / per_day_90
        sessions_90 = usage.count(last90)
        out["sessions_ratio_7d_90d"] = (usage.count(last7) / 7.0) / np.where(
            sessions_90 > 0, sessions_90 / days_90, np.nan
        )
    last_session = np.full(len(idx), 90.0)
    np.minimum.at(last_session, usage.pos[last90], usage.age_days[last90])
    out["days_since_last_session"] = last_session

    for name, values in wind_down_features(usage, gb, logins).items():
        out[name] = values
    account_matter = tf["category"].eq(ACCOUNT_TICKET_CATEGORY).to_numpy(dtype=bool)
    out["account_tickets_14d"] = tickets_all.count(tickets_all.mask(14) & account_matter)

    bills = tables.billings
    issued = events_before(bills, bills["created_at"], idx, cutoff, max_days=None)
    due = utc_series(issued.frame["due_date"])
    paid = utc_series(issued.frame["paid_at"])
    overdue = ((due < cutoff) & (paid.isna() | (paid >= cutoff))).fillna(False)
    out["overdue_invoices"] = issued.count(overdue.to_numpy(dtype=bool))

    for name, values in _account_features(
        tables, pop, idx, cutoff, coverage, since, usage, tickets_all
    ).items():
        out[name] = values

    _unknown_where_uncovered(out, coverage, cutoff)
    context = pop[["subscription_id", "plan_id", "billing_cycle"]]
    result = pd.concat([context, out[list(CHURN_FEATURE_NAMES)]], axis=1)
    assert tuple(result.columns[: len(CHURN_CONTEXT_COLUMNS)]) == CHURN_CONTEXT_COLUMNS
    return result


# The sources an app keeps for a limited time (usage logs, logins): before they began, a
# customer's activity is unknown. The coverage features say "nothing covered" (0); they stay.
ACTIVITY_SOURCES = ("usagelogs", "auditlogs")
COVERAGE_FEATURE_NAMES = ("usage_covered_days", "login_covered_days")


def _unknown_where_uncovered(out: pd.DataFrame, coverage: Coverage,
                             cutoff: pd.Timestamp) -> None:
    """Set to NaN (in place) the features of an activity source that had recorded nothing
    before `cutoff`. Its counts would read 0 and its recency the longest possible, which
    is what a customer who has gone quiet looks like: rows from before usage logs were
    kept (accounts years old, usage kept for weeks) would teach the trees that silence
    is ordinary. Unknown is what they are."""
    for source in ACTIVITY_SOURCES:
        if coverage.covered_days(source, cutoff, np.inf) > 0:
            continue
        names = [f.name for f in CHURN_FEATURES if f.source_collection == source
                 and f.name not in COVERAGE_FEATURE_NAMES]
        out[names] = np.nan


def _events_from(tables: LakeTables, coverage: Coverage, sources: list[str]) -> LakeTables:
    """`tables` without the events of `sources` before their coverage starts."""
    kept = dict(vars(tables))
    for source in sources:
        start = coverage.start(source)
        if pd.isna(start):
            continue
        frame = kept[source]
        times = utc_series(frame[COVERAGE_SOURCES[source]])
        kept[source] = frame.loc[(times >= start).fillna(False).to_numpy(dtype=bool)]
    return LakeTables(**kept)


def _account_features(
    tables: LakeTables, pop: pd.DataFrame, idx: pd.Index, cutoff: pd.Timestamp,
    coverage: Coverage, since: pd.Series, usage: Events, tickets: Events,
) -> dict[str, np.ndarray]:
    """Lifetime complaints and failures, contract terms, payment method, spend, age band,
    devices, plan changes and coverage (features/account.py)."""
    out = account.coverage_features(coverage, cutoff, since)
    out |= account.complaint_features(tickets, out["ticket_history_months"])
    pay = tables.payments
    failed_time = utc_series(pay["failed_at"]).fillna(
        utc_series(pay["created_at"]).where(pay["payment_status"].eq("failed"))
    )
    failures = events_before(pay, failed_time, idx, cutoff, max_days=None)
    attempts = events_before(pay, pay["created_at"], idx, cutoff, max_days=None)
    paid_rows = pay[pay["payment_status"].isin(account.PAID_STATUSES)]
    paid_time = utc_series(paid_rows["captured_at"]).fillna(utc_series(paid_rows["created_at"]))
    paid = events_before(paid_rows, paid_time, idx, cutoff, max_days=None)
    out |= account.failure_features(failures, paid, out["payment_history_months"])
    out |= account.payment_method_features(attempts)
    out |= account.spend_features(paid, out["payment_history_months"])
    out |= account.contract_features(tables, pop)
    out["age_band"] = account.age_band(tables, idx, cutoff)
    out["age_band_at_signup"] = account.age_band_at_signup(tables, idx, cutoff, since)
    out["device_types_90d"] = account.device_types(usage)
    out |= account.plan_changes(tables, idx, cutoff)
    return out


def _daily_matrix(pos: np.ndarray, age: np.ndarray, n: int, weights: np.ndarray | None = None,
                  days: int = WIND_DOWN_DAYS) -> np.ndarray:
    """(n, days) sums per customer and whole day before the cutoff (column 0: the last day)."""
    day = np.floor(age).astype(np.int64)
    keep = day < days
    cell = pos[keep] * days + day[keep]
    w = None if weights is None else weights[keep]
    return np.bincount(cell, weights=w, minlength=n * days).reshape(n, days)


def _xlogx_over(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """x * log(x / t), 0 where x == 0 (the Poisson log-likelihood at its fitted rate)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0) / t), 0.0)


def _poisson_drop_llr(recent: np.ndarray, recent_days: np.ndarray, before: np.ndarray,
                      before_days: np.ndarray) -> np.ndarray:
    """Log-likelihood ratio of "a lower rate in the recent span than before it" vs one rate
    throughout (two Poisson samples); 0 when the recent rate is not lower."""
    total, days = recent + before, recent_days + before_days
    llr = (_xlogx_over(recent, recent_days) + _xlogx_over(before, before_days)
           - _xlogx_over(total, days))
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = recent / recent_days < before / before_days
    return np.where(lower, llr, 0.0)


def _mean_drop_llr(recent_sum: np.ndarray, recent_n: np.ndarray, before_sum: np.ndarray,
                   before_n: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Log-likelihood ratio of a lower Gaussian mean in the recent span than before it vs
    one mean throughout (known sigma); 0 when it is not lower or a side is empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = recent_sum / recent_n - before_sum / before_n
        weight = recent_n * before_n / (recent_n + before_n)
        llr = weight * shift**2 / (2.0 * sigma**2)
    return np.where((shift < 0) & (recent_n > 0) & (before_n > 0), llr, 0.0)


def _log_positive(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)


def wind_down_features(usage: Events, gb: np.ndarray, logins: Events) -> dict[str, np.ndarray]:
    """Has the customer's activity started to fall below their own usual level, and when?

    A change-point search over the look-back (USAGE_LOOKBACK_DAYS, counted from the
    customer's first session in it, so new customers and short histories are not
    mistaken for a drop): for every start s = 1..WIND_DOWN_DAYS days ago that leaves at
    least MIN_BASELINE_DAYS before it, the evidence for "activity has been lower since s
    than before s" is the summed log-likelihood ratio against one level throughout:
    Poisson for session and login counts per day, Gaussian mean shifts (at the customer's
    own spread) for log GB and log minutes per session. Every figure is the customer's
    own: no population term. Features: the largest evidence, its start, the session rate
    since then relative to before; weekly session ratios and 14-day per-session changes
    against the days before the last WIND_DOWN_DAYS. `gb` is GB per row of `usage`.
    """
    n, w, span = usage.n, WIND_DOWN_DAYS, USAGE_LOOKBACK_DAYS
    oldest = np.zeros(n)
    np.maximum.at(oldest, usage.pos, np.ceil(usage.age_days))
    history = np.clip(oldest, 0.0, span)  # days of history in the look-back
    starts = np.arange(1, w + 1, dtype=float)[None, :]  # s: days since the supposed start
    before_days = history[:, None] - starts
    valid = before_days >= MIN_BASELINE_DAYS

    def cumulative(pos: np.ndarray, age: np.ndarray, weights: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        daily = _daily_matrix(pos, age, n, weights, days=span)
        return np.cumsum(daily[:, :w], axis=1), daily.sum(axis=1)[:, None]

    sessions_cum, sessions_total = cumulative(usage.pos, usage.age_days)
    login_span = logins.mask(span)
    logins_cum, logins_total = cumulative(logins.pos[login_span], logins.age_days[login_span])
    with np.errstate(invalid="ignore"):
        evidence = _poisson_drop_llr(sessions_cum, starts, sessions_total - sessions_cum,
                                     before_days)
        evidence = evidence + _poisson_drop_llr(logins_cum, starts, logins_total - logins_cum,
                                                before_days)
    minutes = pd.to_numeric(usage.frame["session_minutes"], errors="coerce").to_numpy(float)
    older = usage.mask(span, w)
    per_session_change: list[np.ndarray] = []
    per_session_level: list[np.ndarray] = []
    for values in (_log_positive(gb), _log_positive(minutes)):
        known = np.isfinite(values)
        pos, age, x = usage.pos[known], usage.age_days[known], values[known]
        sum_cum, sum_total = cumulative(pos, age, x)
        n_cum, n_total = cumulative(pos, age)
        # The customer's own session-to-session spread, at least MIN_LOG_SPREAD so
        # near-constant sessions do not turn rounding into evidence.
        mean = usage.mean(values)
        spread = np.sqrt(usage.mean((values - mean[usage.pos]) ** 2))
        sigma = np.fmax(spread, MIN_LOG_SPREAD)[:, None]
        evidence = evidence + _mean_drop_llr(sum_cum, n_cum, sum_total - sum_cum,
                                             n_total - n_cum, sigma)
        usual = usage.mean(values, older)
        with np.errstate(invalid="ignore", divide="ignore"):
            level = sum_cum[:, 13] / np.where(n_cum[:, 13] > 0, n_cum[:, 13], np.nan)
        per_session_level.append(level)
        per_session_change.append(level - usual)
    evidence = np.where(valid, np.nan_to_num(evidence), 0.0)
    evidence = np.where(evidence > 1e-9, evidence, 0.0)  # rounding noise is no drop
    has_base = valid.any(axis=1)
    # Averaged over the possible starts (a Bayes factor with a uniform prior on s): less
    # inflated by noise than the best start alone, which is picked as the largest of 42.
    with np.errstate(over="ignore", divide="ignore"):
        peak = evidence.max(axis=1, keepdims=True)
        average = peak[:, 0] + np.log(
            np.sum(np.exp(evidence - peak) * valid, axis=1) / np.maximum(valid.sum(axis=1), 1))
    best = np.argmax(evidence, axis=1)
    rows = np.arange(n)
    best_evidence = evidence[rows, best]
    found = best_evidence > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recent_rate = sessions_cum[rows, best] / (best + 1.0)
        before_rate = (sessions_total[:, 0] - sessions_cum[rows, best]) / before_days[rows, best]
        out = {
            "wind_down_evidence": np.where(has_base, best_evidence, np.nan),
            "wind_down_bayes_factor": np.where(has_base, average, np.nan),
            "wind_down_days": np.where(has_base, np.where(found, best + 1.0, 0.0), np.nan),
            "wind_down_activity_ratio": np.where(
                has_base, np.where(found, recent_rate / before_rate, 1.0), np.nan),
        }
        base_days = history - w
        base_rate = np.where(base_days >= MIN_BASELINE_DAYS,
                             usage.count(older) / np.where(base_days > 0, base_days, 1.0),
                             np.nan)
        sessions = np.diff(sessions_cum, axis=1, prepend=0.0)
        for week in range(WEEKS):
            observed = sessions[:, 7 * week: 7 * week + 7].sum(axis=1)
            out[f"sessions_ratio_week{week + 1}"] = observed / (7.0 * base_rate)
    out["gb_per_session_log_change_14d"] = np.where(np.isfinite(base_rate),
                                                    per_session_change[0], np.nan)
    out["minutes_per_session_log_change_14d"] = np.where(np.isfinite(base_rate),
                                                         per_session_change[1], np.nan)
    # The levels themselves, for every customer with recent sessions: a new customer has
    # no baseline to change from, but short sessions are still short.
    out["gb_per_session_log_14d"] = per_session_level[0]
    out["minutes_per_session_log_14d"] = per_session_level[1]
    return out
