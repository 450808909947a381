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
    "monthly_price",
    "payment_failure_rate_90d",
    "logins_per_month",
    "active_day_share_30d",
    "tenure_months",
)
IST = pd.Timedelta(hours=5, minutes=30)
PEAK_HOURS_IST = (19, 23)  # [19:00, 23:00) local time


def build_segmentation_features(tables: LakeTables, cutoff: pd.Timestamp) -> pd.DataFrame:
    """One row per customer live at cutoff; index user_id; columns SEGMENTATION_FEATURE_NAMES.

    - monthly_gb: GB over the last 90 days scaled to 30 days, over the days the
      subscription has existed (a 20-day-old customer is not diluted by 70 empty days);
    - usage_cv_30d: coefficient of variation of daily GB over the last 30 days, or
      over the days since the subscription started if fewer (days without usage
      count as 0; 0 when nothing was used);
    - peak_hour_share: share of the last 90 days' GB in sessions starting 19:00-23:00
      IST (UTC+5:30); customers without usage get the population's share;
    - monthly_price: plan list price; payment_failure_rate_90d: failed / all payment
      attempts created in the last 90 days (0 without attempts);
    - logins_per_month: portal logins in the last 30 days, per 30 days live;
      active_day_share_30d: share of the last 30 live days with a session;
      tenure_months: since customer_since.
    Per-day rates use only the days the subscription existed, so a customer who
    joined last week is not read as a low-engagement outlier.
    All values are finite (K-Means cannot take NaN).
    """
    cutoff = to_utc(cutoff)
    pop = customer_population(tables, cutoff)
    idx = pd.Index(pop.index, name="user_id")
    n = len(idx)
    out = pd.DataFrame(index=idx)

    usage = events_before(tables.usagelogs, tables.usagelogs["timestamp"], idx, cutoff, 90)
    gb = np.nan_to_num(_column(usage.frame, "download_gb")) + np.nan_to_num(
        _column(usage.frame, "upload_gb")
    )
    start_age = ((cutoff - pop["start_date"]) / DAY).to_numpy(dtype=float)
    covered = np.clip(start_age, 1.0, 90.0)
    out["monthly_gb"] = usage.total(gb) * 30.0 / covered

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
    total = usage.total(gb)
    peak_gb = usage.total(gb, peak)
    overall = peak_gb.sum() / total.sum() if total.sum() > 0 else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["peak_hour_share"] = np.where(
            total > 0, peak_gb / np.where(total > 0, total, 1), overall
        )

    plans = tables.plans.drop_duplicates("plan_id").set_index("plan_id")
    price = pd.to_numeric(plans["monthly_price"], errors="coerce").reindex(
        pop["plan_id"].to_numpy()
    )
    price = price.to_numpy(dtype=float)
    out["monthly_price"] = np.where(np.isnan(price), np.nanmedian(price) if n else 0.0, price)

    pay = tables.payments
    attempts = events_before(pay, pay["created_at"], idx, cutoff, 90)
    failed = attempts.frame["payment_status"].eq("failed").to_numpy() | (
        attempts.frame["failed_at"].notna().to_numpy()
    )
    n_attempts = attempts.count()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["payment_failure_rate_90d"] = np.where(
            n_attempts > 0, attempts.count(failed) / np.where(n_attempts > 0, n_attempts, 1), 0.0
        )

    logins = events_before(tables.auditlogs, tables.auditlogs["timestamp"], idx, cutoff, 30)
    out["logins_per_month"] = logins.count() * 30.0 / covered30
    active_pos = np.unique(key) // 30
    active_days = np.bincount(active_pos, minlength=n).astype(float)
    out["active_day_share_30d"] = np.clip(active_days / covered30, 0.0, 1.0)
    tenure = ((cutoff - customer_since(tables, pop)) / DAY).to_numpy(dtype=float)
    out["tenure_months"] = np.clip(np.nan_to_num(tenure), 0.0, None) / DAYS_PER_MONTH
    return out[list(SEGMENTATION_FEATURE_NAMES)]
