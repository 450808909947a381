"""When the training snapshots are taken."""

from __future__ import annotations

import datetime as dt

import pandas as pd


def as_of_cutoff(as_of: dt.date) -> pd.Timestamp:
    """The instant a run for `as_of` sees data up to: midnight UTC starting that day."""
    return pd.Timestamp(as_of, tz="UTC")


def training_cutoffs(
    as_of: dt.date, horizon_days: int, count: int, spacing_days: int
) -> list[pd.Timestamp]:
    """`count` cutoffs `spacing_days` apart, the latest one horizon before as-of.

    The latest cutoff is as late as possible while its label window
    (cutoff, cutoff + horizon] has fully happened by as-of. Cutoffs closer than the
    horizon overlap in label windows on purpose: the model then sees a leaver's
    wind-down at every stage, not only at the one a monthly snapshot happens to catch.
    """
    latest = as_of_cutoff(as_of) - pd.Timedelta(days=horizon_days)
    return [latest - pd.Timedelta(days=spacing_days * i) for i in reversed(range(count))]
