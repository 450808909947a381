"""When each subscription started and ended, judged from dates (point in time).

The current `subscription_status` describes *now*; for a past cutoff it leaks the
future. So a subscription's life is reduced to two instants:

- `start_date` (event-dated, set at signup);
- `ended_at`: when it stopped being a live contract, or NaT while it is live.
  * status `cancelled`: the cancellation *request* date (else the effective date,
    else updated_at). The request is the customer's decision: once made there is
    nothing left to prevent, so from then on the customer is neither scored nor
    a training row, and the churn label fires at the request (the earliest,
    actionable signal). Dates are capped at updated_at: a document cannot have
    been cancelled after its last update (guards against future-dated dirt).
  * status `grace_period`/`suspended`/`expired` (non-renewal): end_date capped at
    updated_at (else updated_at).
  * status `active`: never ended, whatever stale cancellation sub-document it
    carries (every subscription has one by default; a current active status
    means any old request was revoked).
  * other statuses (`trialing`, `pending`, missing: outside the app's enum) are
    dropped: we cannot say when such a contract was live.

The status is used only to say *which kind* of end a subscription had; *when*
comes from dates, so for cutoff = now "live at cutoff" is exactly "status active
and started" and for past cutoffs a later cancellation does not leak back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CANCELLED = "cancelled"
NONRENEWAL_STATUSES: tuple[str, ...] = ("grace_period", "suspended", "expired")
KNOWN_STATUSES: tuple[str, ...] = ("active", CANCELLED, *NONRENEWAL_STATUSES)
DAY = pd.Timedelta(days=1)
DAYS_PER_MONTH = 30.4375  # 365.25 / 12: the month every "_months" feature counts in


def to_utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    """A tz-aware UTC timestamp (naive input is taken as UTC)."""
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def utc_series(values: pd.Series) -> pd.Series:
    """A datetime column as tz-aware UTC (tolerates naive or object input)."""
    s = pd.to_datetime(values, utc=True, errors="coerce")
    return s


def subscription_lifecycle(subscriptions: pd.DataFrame) -> pd.DataFrame:
    """One row per known-status subscription with `start_date`, `ended_at`, `end_kind`.

    `end_kind` is "cancelled", "nonrenewal" or None (live now).
    """
    subs = subscriptions[subscriptions["subscription_status"].isin(KNOWN_STATUSES)].copy()
    subs = subs[subs["user_id"].notna()]
    status = subs["subscription_status"]
    start = utc_series(subs["start_date"])
    updated = utc_series(subs["updated_at"])
    requested = utc_series(subs["cancel_requested_at"])
    effective = utc_series(subs["cancel_effective_at"])
    end_date = utc_series(subs["end_date"])

    cancel_at = requested.fillna(effective)
    nonrenew_at = end_date
    raw_end = pd.Series(pd.NaT, index=subs.index, dtype=start.dtype)
    is_cancel = status.eq(CANCELLED)
    is_nonrenew = status.isin(NONRENEWAL_STATUSES)
    raw_end = raw_end.mask(is_cancel, cancel_at).mask(is_nonrenew, nonrenew_at)
    ended = pd.concat([raw_end, updated], axis=1).min(axis=1)  # NaT-skipping min
    ended = ended.where(is_cancel | is_nonrenew)
    # An ended subscription with no usable date at all never counts as live.
    ended = ended.fillna(start.where(is_cancel | is_nonrenew))

    subs["start_date"] = start
    subs["ended_at"] = ended.astype(start.dtype)
    subs["end_kind"] = np.select(
        [is_cancel.to_numpy(), is_nonrenew.to_numpy()], ["cancelled", "nonrenewal"], None
    )
    return subs


def live_at(lifecycle: pd.DataFrame, cutoff: pd.Timestamp) -> pd.Series:
    """Mask: started strictly before cutoff and not ended at or before it."""
    cutoff = to_utc(cutoff)
    ended = lifecycle["ended_at"]
    return (lifecycle["start_date"] < cutoff) & (ended.isna() | (ended > cutoff))


def current_subscription(lifecycle: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per user, the latest-started subscription live at cutoff; index user_id (sorted).

    Taking the latest among the *live* ones (not the latest started overall) keeps a
    customer whose newest contract already ended while an older one still runs.
    """
    live = lifecycle[live_at(lifecycle, cutoff)]
    live = live.sort_values(["user_id", "start_date", "subscription_id"])
    current = live.drop_duplicates("user_id", keep="last").set_index("user_id")
    return current.sort_index()
