"""Customers in hash buckets: the bucket of an id, and the few population-wide terms.

Every churn feature is a function of one customer's own rows, so a bucket of
customers gives exactly the rows the whole lake would. Three quantities are not
per customer and are combined across buckets here instead (pure, point in time):

- the network's daily load (demand factor D): additive, summed over buckets;
- the network's load per hour of day (pricing's demand profile): additive too;
- the first usage anywhere (pricing's elasticity cohort cutoff): a minimum over buckets;
- segmentation's `peak_hour_share` of customers without usage: the population's
  peak share, Σ peak GB / Σ GB over all buckets;
- segmentation's `monthly_price` of customers whose plan has no price: the
  population's median price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.customer import LakeTables, _column, customer_population, events_before
from features.demand import _daily_load, _hourly_load, coming_period_demand
from features.segmentation import IST, PEAK_HOURS_IST
from features.stable_hash import stable_hash
from features.subscriptions import to_utc, utc_series

# Fixed salt: the same id lands in the same bucket in every process and run.
BUCKET_HASH_KEY = "bbx-buckets-v1.."


MAX_BUCKETS = 999  # bucket files are numbered with three digits


def bucket_count(customers: int, customers_per_bucket: int) -> int:
    """Buckets that hold about `customers_per_bucket` customers each (1..MAX_BUCKETS).

    The bucket size, not the bucket count, is held fixed as the customer base grows:
    a bucket's work and memory then stay the same, and the night grows linearly.
    """
    if customers_per_bucket < 1:
        raise ValueError("customers_per_bucket must be at least 1")
    return int(min(MAX_BUCKETS, max(1, -(-customers // customers_per_bucket))))


def bucket_of(user_ids: np.ndarray, buckets: int) -> np.ndarray:
    """Bucket 0..buckets-1 of each user id (text), stable across processes and runs."""
    hashed = stable_hash(np.asarray(user_ids, dtype=object), BUCKET_HASH_KEY)
    return (hashed % np.uint64(buckets)).astype(np.int64)


def daily_network_load(
    usagelogs: pd.DataFrame, cutoff: pd.Timestamp, baseline_days: int
) -> np.ndarray:
    """Network GB per day over the `baseline_days` before cutoff, oldest first.

    Additive over customers, so the sum over buckets is the whole network's load.
    """
    daily, _, _ = _daily_load(usagelogs, to_utc(cutoff), baseline_days)
    return daily


def hourly_network_load(
    usagelogs: pd.DataFrame, cutoff: pd.Timestamp, baseline_days: int
) -> np.ndarray:
    """Network GB per IST hour of day (24) over the `baseline_days` before cutoff.

    Additive over customers: the sum over buckets is the input of
    `features.demand.hourly_profile_from_load`.
    """
    return _hourly_load(usagelogs, to_utc(cutoff), baseline_days)


def first_usage(usagelogs: pd.DataFrame) -> pd.Timestamp:
    """Earliest usage timestamp (NaT without usage); the min over buckets is the lake's."""
    return utc_series(usagelogs["timestamp"]).min()


def demand_from_daily_load(
    daily: np.ndarray, cutoff: pd.Timestamp, window_days: int, baseline_days: int
) -> dict[str, float]:
    """`coming_period_demand` of a network whose daily load (oldest first) is `daily`.

    One synthetic session per day carries that day's GB, mid-day, so the demand
    model itself (features/demand.py) is reused unchanged.
    """
    cutoff = to_utc(cutoff)
    days_back = np.arange(len(daily), 0, -1) - 0.5  # oldest first, mid-day
    sessions = pd.DataFrame({
        "timestamp": cutoff - pd.to_timedelta(days_back, unit="D"),
        "download_gb": np.asarray(daily, dtype=float),
        "upload_gb": 0.0,
    })
    return coming_period_demand(sessions, cutoff, window_days, baseline_days)


def segmentation_population_terms(tables: LakeTables, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per customer live at cutoff: the inputs of segmentation's population-wide fills.

    Index user_id; columns usage_gb_90d, peak_gb_90d (sessions starting in the IST
    peak hours) and plan_price (NaN when the plan has no price), computed as
    features/segmentation.py computes them.
    """
    cutoff = to_utc(cutoff)
    pop = customer_population(tables, cutoff)
    idx = pd.Index(pop.index, name="user_id")
    usage = events_before(tables.usagelogs, tables.usagelogs["timestamp"], idx, cutoff, 90)
    gb = np.nan_to_num(_column(usage.frame, "download_gb")) + np.nan_to_num(
        _column(usage.frame, "upload_gb")
    )
    local_hour = (utc_series(usage.frame["timestamp"]) + IST).dt.hour.to_numpy()
    peak = (local_hour >= PEAK_HOURS_IST[0]) & (local_hour < PEAK_HOURS_IST[1])
    plans = tables.plans.drop_duplicates("plan_id").set_index("plan_id")
    price = pd.to_numeric(plans["monthly_price"], errors="coerce").reindex(
        pop["plan_id"].to_numpy()
    )
    return pd.DataFrame({
        "usage_gb_90d": usage.total(gb),
        "peak_gb_90d": usage.total(gb, peak),
        "plan_price": price.to_numpy(dtype=float),
    }, index=idx)


def combine_segmentation_features(
    features: list[pd.DataFrame], terms: list[pd.DataFrame]
) -> pd.DataFrame:
    """Bucket segmentation features as one table (sorted by user_id), with the
    population-wide fills recomputed over all buckets (see the module docstring)."""
    kept = [f for f in features if len(f)] or features[:1]
    out = pd.concat(kept).sort_index()
    population = pd.concat([t for t in terms if len(t)] or terms[:1]).reindex(out.index)
    total = population["usage_gb_90d"].to_numpy(dtype=float)
    peak = population["peak_gb_90d"].to_numpy(dtype=float)
    overall = peak.sum() / total.sum() if total.sum() > 0 else 0.0
    out.loc[~(total > 0), "peak_hour_share"] = overall
    price = population["plan_price"].to_numpy(dtype=float)
    if np.isnan(price).any():
        out.loc[np.isnan(price), "monthly_price"] = np.nanmedian(price) if len(out) else 0.0
    return out

