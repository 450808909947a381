"""Per-customer behaviour features for K-Means segmentation (pure, point in time).

Same population and event rules as the churn features (features/customer.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.customer import (
    DAY,
    DAYS_PER_MONTH,
    LakeTables,
    _column,
    customer_population,
    customer_since,
    events_before,
)
from features.subscriptions import to_utc, utc_series

SEGMENTATION_FEATURE_NAMES: tuple[str, ...] = (
    "monthly_gb",
    "usage_cv_30d",
    "peak_hour_share",
    "peak_session_share_180d",
    "sessions_per_day_180d",
    "device_types_180d",
    "monthly_price",
    "yearly_billing",
    "payment_failure_rate_90d",
    "payment_failure_rate",
    "logins_per_month",
    "active_day_share_30d",
    "tenure_months",
)
IST = pd.Timedelta(hours=5, minutes=30)
PEAK_HOURS_IST = (19, 23)  # [19:00, 23:00) local time
# Habits (volume, sessions, peak share, devices, logins) are read over six months: a
# customer's segment is lasting behaviour, and one month of sessions is too noisy to
# tell 30-60 GB users from 50-80 GB ones.
HABIT_DAYS = 180
# Smoothing priors (pseudo-counts, fixed so every customer's value is their own rows'
# alone): a customer with few sessions or charges is pulled towards a neutral value.
PEAK_PRIOR_SESSIONS = 2.0  # towards the peak hours' share of the day (4/24)
FAILURE_PRIOR = (0.5, 9.5)  # Beta(a, b) pseudo failed / succeeded charges: 5 % failure


def build_segmentation_features(tables: LakeTables, cutoff: pd.Timestamp) -> pd.DataFrame:
    """One row per customer live at cutoff; index user_id; columns SEGMENTATION_FEATURE_NAMES.

    Rates are per day the subscription existed within the window (a customer who
    joined last week is neither diluted by empty days nor read as a light user), so
    tenure does not leak into them. Six-month windows are HABIT_DAYS long.

    - monthly_gb: GB over the last six months scaled to 30 days;
    - usage_cv_30d: coefficient of variation of daily GB over the last 30 days, or
      over the days since the subscription started if fewer (days without usage
      count as 0; 0 when nothing was used);
    - peak_hour_share: share of the last 90 days' GB in sessions starting 19:00-23:00
      IST (UTC+5:30); customers without usage get the population's share;
    - peak_session_share_180d: share of the last six months' sessions starting in
      those hours, smoothed by PEAK_PRIOR_SESSIONS towards 4/24 (counting sessions is
      far less noisy than weighting them by their heavy-tailed GB);
    - sessions_per_day_180d: sessions per live day over the last six months;
    - device_types_180d: distinct device types (Mobile, Desktop, ...) seen in six
      months: a household with more devices shows more kinds;
    - monthly_price: plan list price; yearly_billing: 1 on yearly billing, else 0;
    - payment_failure_rate_90d: failed / all payment attempts created in the last 90
      days (0 without attempts); payment_failure_rate: failed / all attempts over the
      whole history, smoothed by the FAILURE_PRIOR pseudo-counts (a customer's
      lasting payment trouble; three monthly charges alone say little);
    - logins_per_month: portal logins per 30 live days over the last six months;
      active_day_share_30d: share of the last 30 live days with a session;
      tenure_months: since customer_since.
    Every value is the customer's own rows' (peak_hour_share's and monthly_price's
    fills aside: features/buckets.py recomputes those over all buckets), and all are
    finite (K-Means cannot take NaN).
    """
    cutoff = to_utc(cutoff)
    pop = customer_population(tables, cutoff)
    idx = pd.Index(pop.index, name="user_id")
    n = len(idx)
    out = pd.DataFrame(index=idx)
    start_age = ((cutoff - pop["start_date"]) / DAY).to_numpy(dtype=float)

    usage = events_before(tables.usagelogs, tables.usagelogs["timestamp"], idx, cutoff, HABIT_DAYS)
    gb = np.nan_to_num(_column(usage.frame, "download_gb")) + np.nan_to_num(
        _column(usage.frame, "upload_gb")
    )
    live = np.clip(start_age, 1.0, float(HABIT_DAYS))
    out["monthly_gb"] = usage.total(gb) * 30.0 / live
    sessions = usage.count()
    out["sessions_per_day_180d"] = sessions / live

    last30 = usage.mask(30)
    day = np.floor(usage.age_days[last30]).astype(np.int64)
    key = usage.pos[last30] * 30 + day
    daily = np.bincount(key, weights=gb[last30], minlength=n * 30).reshape(n, 30)
    covered30 = np.clip(np.ceil(start_age), 1.0, 30.0)
    in_life = np.arange(30)[None, :] < covered30[:, None]  # day k back is after the start
    mean = daily.sum(axis=1) / covered30
    var = ((daily - mean[:, None]) ** 2 * in_life).sum(axis=1) / covered30
    std = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["usage_cv_30d"] = np.where(mean > 0, std / np.where(mean > 0, mean, 1), 0.0)

    local_hour = (utc_series(usage.frame["timestamp"]) + IST).dt.hour.to_numpy()
    peak = (local_hour >= PEAK_HOURS_IST[0]) & (local_hour < PEAK_HOURS_IST[1])
    last90 = usage.mask(90)
    total = usage.total(gb, last90)
    peak_gb = usage.total(gb, last90 & peak)
    overall = peak_gb.sum() / total.sum() if total.sum() > 0 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["peak_hour_share"] = np.where(
            total > 0, peak_gb / np.where(total > 0, total, 1), overall
        )
    peak_hours = PEAK_HOURS_IST[1] - PEAK_HOURS_IST[0]
    out["peak_session_share_180d"] = (
        usage.count(peak) + PEAK_PRIOR_SESSIONS * peak_hours / 24.0
    ) / (sessions + PEAK_PRIOR_SESSIONS)
    device = usage.frame["device_type"].astype("string").fillna("").to_numpy(dtype=object)
    seen = pd.DataFrame({"pos": usage.pos, "device": device}).drop_duplicates()
    seen = seen.loc[seen["device"] != ""]
    out["device_types_180d"] = np.bincount(seen["pos"], minlength=n).astype(float)

    plans = tables.plans.drop_duplicates("plan_id").set_index("plan_id")
    price = pd.to_numeric(plans["monthly_price"], errors="coerce").reindex(
        pop["plan_id"].to_numpy()
    )
    price = price.to_numpy(dtype=float)
    out["monthly_price"] = np.where(np.isnan(price), np.nanmedian(price) if n else 0.0, price)
    cycle = pop["billing_cycle"].astype("string").str.lower().to_numpy(dtype=object)
    out["yearly_billing"] = (cycle == "yearly").astype(float)

    pay = tables.payments
    attempts = events_before(pay, pay["created_at"], idx, cutoff, None)
    failed = attempts.frame["payment_status"].eq("failed").to_numpy() | (
        attempts.frame["failed_at"].notna().to_numpy()
    )
    recent = attempts.mask(90)
    n_recent = attempts.count(recent)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["payment_failure_rate_90d"] = np.where(
            n_recent > 0,
            attempts.count(failed & recent) / np.where(n_recent > 0, n_recent, 1),
            0.0,
        )
    a, b = FAILURE_PRIOR
    out["payment_failure_rate"] = (attempts.count(failed) + a) / (attempts.count() + a + b)

    logins = events_before(
        tables.auditlogs, tables.auditlogs["timestamp"], idx, cutoff, HABIT_DAYS
    )
    out["logins_per_month"] = logins.count() * 30.0 / live
    active_pos = np.unique(key) // 30
    active_days = np.bincount(active_pos, minlength=n).astype(float)
    out["active_day_share_30d"] = np.clip(active_days / covered30, 0.0, 1.0)
    tenure = ((cutoff - customer_since(tables, pop)) / DAY).to_numpy(dtype=float)
    out["tenure_months"] = np.clip(np.nan_to_num(tenure), 0.0, None) / DAYS_PER_MONTH
    return out[list(SEGMENTATION_FEATURE_NAMES)]
