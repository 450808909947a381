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
    cutoff = to_utc(cutoff)
    ts = utc_series(usagelogs["timestamp"])
    keep = ((ts < cutoff) & (ts >= cutoff - pd.Timedelta(days=baseline_days))).fillna(False)
    keep = keep.to_numpy(dtype=bool)
    if not keep.any():
        return 0.5
    gb = np.nan_to_num(
        pd.to_numeric(usagelogs["download_gb"], errors="coerce").to_numpy(dtype=float)[keep]
    ) + np.nan_to_num(
        pd.to_numeric(usagelogs["upload_gb"], errors="coerce").to_numpy(dtype=float)[keep]
    )
    days_back = np.floor(((cutoff - ts[keep]) / pd.Timedelta(days=1)).to_numpy(dtype=float))
    daily = np.bincount(days_back.astype(np.int64), weights=gb, minlength=baseline_days)
    chronological = daily[:baseline_days][::-1]  # oldest first; last = day before cutoff
    window = np.ones(window_days) / window_days
    trailing = np.convolve(chronological, window, mode="valid")
    lo, hi, now = trailing.min(), trailing.max(), trailing[-1]
    if not np.isfinite(hi - lo) or hi - lo <= 1e-12:
        return 0.5
    return float(np.clip((now - lo) / (hi - lo), 0.0, 1.0))
