"""Where each source's recorded history begins (the lake's coverage).

An app's collections do not all start on the same day: accounts, subscriptions and
payments may be years old while usage logs and logins were kept only for the last
months. A windowed feature computed at a cutoff whose window reaches before its
source's first recorded event silently counts less history, and the model then
learns which cutoff a row comes from. The pipeline's choice (docs/features.md,
"Coverage"): windowed features are computed over the covered part of their window,
per-day rates divide by the covered days, and coverage features say how much was
covered, so every cutoff can be used and the out-of-time check (features/cutoffs.py)
decides how far back training goes.

The start is robust to a few back-dated rows (known dirt): it is the day of the
COVERAGE_QUANTILE quantile of the source's event times, floored to midnight UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.subscriptions import utc_series

# One event in a thousand may be back-dated test data without moving the start.
COVERAGE_QUANTILE = 0.001
COVERAGE_SOURCES: dict[str, str] = {
    "usagelogs": "timestamp",
    "auditlogs": "timestamp",
    "supporttickets": "created_at",
    "payments": "created_at",
    "billings": "created_at",
    "feedbacks": "created_at",
}


@dataclass(frozen=True)
class Coverage:
    """First recorded day per event source (NaT: the source has no events at all)."""

    starts: dict[str, pd.Timestamp]

    def start(self, source: str) -> pd.Timestamp:
        return self.starts.get(source, pd.NaT)

    def covered_days(self, source: str, cutoff: pd.Timestamp, window_days: float) -> float:
        """Days of `window_days` before `cutoff` that the source has history for (0..window)."""
        start = self.start(source)
        if pd.isna(start):
            return 0.0
        days = (cutoff - start) / pd.Timedelta(days=1)
        return float(np.clip(days, 0.0, window_days))


def history_start(times: pd.Series) -> pd.Timestamp:
    """The day a source's recorded history begins (NaT without any event)."""
    values = utc_series(times).dropna()
    if values.empty:
        return pd.NaT
    rank = int(np.floor(COVERAGE_QUANTILE * (len(values) - 1)))
    first = pd.Timestamp(np.partition(values.to_numpy(dtype="datetime64[ns]"), rank)[rank])
    return first.tz_localize("UTC").floor("D")


def source_coverage(tables: object, cutoff: pd.Timestamp) -> Coverage:
    """Coverage of every event source of `tables` (a LakeTables), from its events before
    `cutoff` only (what a run at that cutoff would have seen)."""
    starts: dict[str, pd.Timestamp] = {}
    for source, column in COVERAGE_SOURCES.items():
        times = utc_series(getattr(tables, source)[column])
        starts[source] = history_start(times[times < cutoff])
    return Coverage(starts)
