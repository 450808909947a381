"""Network demand factor D (0..1) for the pricing formula (pure, point in time)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.subscriptions import to_utc, utc_series


def network_demand_factor(
    usagelogs: pd.DataFrame, cutoff: pd.Timestamp, window_days: int, baseline_days: int
) -> float:
    """How loaded the network was recently, relative to its own recent range.

    Daily network GB (download + upload, all users) is taken over the
    `baseline_days` days before the cutoff (days = 24 h blocks counted back from
    the cutoff; a day without any session counts 0). Let m_t be the trailing
    `window_days` mean at each day of the baseline (only full windows). Then

        D = (m_now - min_t m_t) / (max_t m_t - min_t m_t)

    where m_now is the mean of the last `window_days` days. D is 0 at the
    baseline's quietest week, 1 at its busiest, and 0.5 (neutral) when there is
    no data or no variation. Only sessions before the cutoff are read.
    """
    if window_days < 1 or baseline_days < window_days:
        raise ValueError("need 1 <= window_days <= baseline_days")
    chronological, _, _ = _daily_load(usagelogs, to_utc(cutoff), baseline_days)
    window = np.ones(window_days) / window_days
    trailing = np.convolve(chronological, window, mode="valid")
    lo, hi, now = trailing.min(), trailing.max(), trailing[-1]
    if not np.isfinite(hi - lo) or hi - lo <= 1e-12:
        return 0.5
    return float(np.clip((now - lo) / (hi - lo), 0.0, 1.0))


IST_OFFSET = pd.Timedelta(hours=5, minutes=30)  # the network's customers live on IST
LEVEL_DAYS = 28  # recent weeks that set the load level of the coming period


def _daily_load(
    usagelogs: pd.DataFrame, cutoff: pd.Timestamp, baseline_days: int
) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    """(daily GB oldest first over the baseline, session timestamps kept, GB per kept session)."""
    ts = utc_series(usagelogs["timestamp"])
    keep = ((ts < cutoff) & (ts >= cutoff - pd.Timedelta(days=baseline_days))).fillna(False)
    keep = keep.to_numpy(dtype=bool)
    gb = np.nan_to_num(
        pd.to_numeric(usagelogs["download_gb"], errors="coerce").to_numpy(dtype=float)[keep]
    ) + np.nan_to_num(
        pd.to_numeric(usagelogs["upload_gb"], errors="coerce").to_numpy(dtype=float)[keep]
    )
    days_back = np.floor(((cutoff - ts[keep]) / pd.Timedelta(days=1)).to_numpy(dtype=float))
    daily = np.bincount(days_back.astype(np.int64), weights=gb, minlength=baseline_days)
    return daily[:baseline_days][::-1], ts[keep], gb


def coming_period_demand(
    usagelogs: pd.DataFrame, cutoff: pd.Timestamp, window_days: int, baseline_days: int
) -> dict[str, float]:
    """Demand factor D (0..1) forecast for the `window_days` days from the cutoff.

    Load model: daily network GB = level × weekday factor. Weekday factors are the
    baseline's mean load per weekday over its overall mean; the level is the last
    28 days' weekday-adjusted mean, so seasonal drift enters through the recent
    level (a baseline shorter than a year cannot hold an annual cycle). The
    forecast mean of the coming days is placed on the baseline's range of trailing
    `window_days` means, as in `network_demand_factor`: 0 the quietest week, 1 the
    busiest, 0.5 without data or variation. Returns demand, forecast_daily_gb,
    level_daily_gb and weekday_factor_<0..6> (Monday = 0, UTC days).
    """
    if window_days < 1 or baseline_days < window_days:
        raise ValueError("need 1 <= window_days <= baseline_days")
    cutoff = to_utc(cutoff)
    daily, _, _ = _daily_load(usagelogs, cutoff, baseline_days)
    day_dates = cutoff.normalize() - pd.to_timedelta(np.arange(baseline_days, 0, -1), unit="D")
    weekday = np.asarray(day_dates.dayofweek)
    overall = daily.mean()
    factors = np.ones(7)
    if overall > 0:
        for d in range(7):
            if (weekday == d).any():
                factors[d] = max(daily[weekday == d].mean() / overall, 1e-6)
    recent = min(LEVEL_DAYS, baseline_days)
    level = float((daily[-recent:] / factors[weekday[-recent:]]).mean())
    coming = (cutoff.normalize() + pd.to_timedelta(np.arange(window_days), unit="D")).dayofweek
    forecast = float(level * factors[np.asarray(coming)].mean())
    out = {"forecast_daily_gb": forecast, "level_daily_gb": level}
    out |= {f"weekday_factor_{d}": float(factors[d]) for d in range(7)}
    trailing = np.convolve(daily, np.ones(window_days) / window_days, mode="valid")
    lo, hi = trailing.min(), trailing.max()
    if overall <= 0 or not np.isfinite(hi - lo) or hi - lo <= 1e-12:
        return out | {"demand": 0.5}
    return out | {"demand": float(np.clip((forecast - lo) / (hi - lo), 0.0, 1.0))}


def hourly_demand_profile(
    usagelogs: pd.DataFrame, cutoff: pd.Timestamp, baseline_days: int
) -> pd.DataFrame:
    """Load by hour of day (IST) over the baseline, for time-of-day offers.

    Index hour_ist 0..23; columns mean_daily_gb (network GB in that hour per day),
    load_share (of the day's load) and demand (0 the quietest hour, 1 the busiest;
    0.5 everywhere without data or variation).
    """
    if baseline_days < 1:
        raise ValueError("baseline_days must be positive")
    return hourly_profile_from_load(_hourly_load(usagelogs, to_utc(cutoff), baseline_days),
                                    baseline_days)


def _hourly_load(
    usagelogs: pd.DataFrame, cutoff: pd.Timestamp, baseline_days: int
) -> np.ndarray:
    """Network GB per IST hour of day (24) over the `baseline_days` before cutoff."""
    _, ts, gb = _daily_load(usagelogs, cutoff, baseline_days)
    hours = (ts + IST_OFFSET).dt.hour.to_numpy()
    return np.bincount(hours.astype(np.int64), weights=gb, minlength=24)[:24]


def hourly_profile_from_load(per_hour: np.ndarray, baseline_days: int) -> pd.DataFrame:
    """`hourly_demand_profile` of a network whose GB per IST hour over the baseline is
    `per_hour` (24 values; additive over customers, so bucket sums combine exactly)."""
    per_hour = np.asarray(per_hour, dtype=float)
    total = per_hour.sum()
    spread = per_hour.max() - per_hour.min()
    demand = (per_hour - per_hour.min()) / spread if spread > 1e-12 else np.full(24, 0.5)
    return pd.DataFrame({
        "mean_daily_gb": per_hour / baseline_days,
        "load_share": per_hour / total if total > 0 else np.full(24, 1 / 24),
        "demand": demand,
    }, index=pd.RangeIndex(24, name="hour_ist"))
