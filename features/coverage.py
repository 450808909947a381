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

Scoring sees more history than any labelled row can: a source that began recording N days
before as-of covers only N - horizon days at the latest labelled cutoff, and a little more
at the newest partly labelled one (N - 9 with the defaults; features/cutoffs.py). Where
that is less than the window the features read, scoring reads only as many days of the
source as the newest training rows had (`scoring_history_days`, kept with the model), so
a model never scores rows with more history than it was trained on.

The start is robust to a few back-dated rows (known dirt): it is the day of the
COVERAGE_QUANTILE quantile of the source's events before the cutoff's day. Computed
from per-day event counts (EventDays), which buckets of customers sum to the whole
lake's, so a bucketed run sees the same coverage as a whole one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.subscriptions import to_utc, utc_series

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

    def capped(self, cutoff: pd.Timestamp, history_days: Mapping[str, float]) -> Coverage:
        """This coverage with each source in `history_days` starting no earlier than that
        many days before `cutoff`."""
        starts = dict(self.starts)
        for source, days in history_days.items():
            start = starts.get(source, pd.NaT)
            if not pd.isna(start):
                starts[source] = max(start, to_utc(cutoff) - pd.Timedelta(days=float(days)))
        return Coverage(starts)


def scoring_history_days(lake_days: EventDays, newest_cutoff: pd.Timestamp,
                         windows: Mapping[str, float]) -> dict[str, float]:
    """Days of history scoring may read per source: for each source whose coverage at the
    newest training cutoff is shorter than the window its features read (`windows`), that
    coverage; sources covered for their whole window are not capped."""
    latest = to_utc(newest_cutoff)
    coverage = lake_days.coverage(latest)
    caps: dict[str, float] = {}
    for source, window in windows.items():
        covered = coverage.covered_days(source, latest, float("inf"))
        if covered < window:
            caps[source] = covered
    return caps


@dataclass(frozen=True)
class EventDays:
    """Events per UTC day of every source (days since the epoch, sorted; counts): all a
    coverage needs, small, and summable over buckets of customers, so bucketed features
    see the whole lake's coverage."""

    days: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]

    def coverage(self, cutoff: pd.Timestamp) -> Coverage:
        """Where each source's history begins, from its events on days before `cutoff`'s
        (the COVERAGE_QUANTILE quantile event's day)."""
        last = _epoch_day(cutoff)
        starts: dict[str, pd.Timestamp] = {}
        for source, days in self.days.items():
            before = days < last
            counts = self.counts[source][before]
            if counts.sum() == 0:
                starts[source] = pd.NaT
                continue
            rank = int(np.floor(COVERAGE_QUANTILE * (counts.sum() - 1)))
            first = days[before][int(np.searchsorted(np.cumsum(counts), rank, side="right"))]
            starts[source] = pd.Timestamp(int(first) * 86_400, unit="s", tz="UTC")
        return Coverage(starts)


def _epoch_day(when: pd.Timestamp) -> int:
    return int(pd.Timestamp(when).value // (86_400 * 10**9))


def event_days(tables: object) -> EventDays:
    """EventDays of `tables` (a LakeTables, or any object with the sources as frames)."""
    days, counts = {}, {}
    for source, column in COVERAGE_SOURCES.items():
        times = utc_series(getattr(tables, source)[column]).dropna()
        stamps = times.dt.tz_convert(None).to_numpy(dtype="datetime64[D]").astype(np.int64)
        days[source], counts[source] = np.unique(stamps, return_counts=True)
    return EventDays(days, counts)


def combine_event_days(parts: list[EventDays]) -> EventDays:
    """The EventDays of buckets of customers, as one for the whole lake."""
    days, counts = {}, {}
    for source in COVERAGE_SOURCES:
        all_days = np.concatenate([p.days[source] for p in parts]) if parts else np.zeros(0, int)
        all_counts = (np.concatenate([p.counts[source] for p in parts]) if parts
                      else np.zeros(0, int))
        days[source], where = np.unique(all_days, return_inverse=True)
        counts[source] = np.bincount(where, weights=all_counts,
                                     minlength=len(days[source])).astype(np.int64)
    return EventDays(days, counts)


def source_coverage(tables: object, cutoff: pd.Timestamp) -> Coverage:
    """Coverage of every event source of `tables` (a LakeTables), from its events before
    `cutoff`'s day only (what a run at that cutoff would have seen)."""
    return event_days(tables).coverage(cutoff)
