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


def partly_labelled_cutoffs(
    as_of: dt.date, horizon_days: int, spacing_days: int
) -> list[pd.Timestamp]:
    """The cutoffs after the latest labelled one, `spacing_days` apart, whose label window
    has happened for at least `spacing_days` days by as-of (empty when the spacing is not
    shorter than the horizon).

    Their rows are labelled over that part of the horizon only, and the booster reads the
    shorter window as an offset (models/churn.py). They bring the most recent leavers and
    the longest usage history any labelled row can have: where usage logs are kept for
    weeks, the fully labelled cutoffs see a horizon less of them than scoring does."""
    end = as_of_cutoff(as_of)
    latest = end - pd.Timedelta(days=horizon_days)
    step = pd.Timedelta(days=spacing_days)
    found: list[pd.Timestamp] = []
    cutoff = latest + step
    while end - cutoff >= step:
        found.append(cutoff)
        cutoff += step
    return found


def cutoff_candidates(
    cutoffs: list[pd.Timestamp], held_out: int, candidates: list[tuple[int, int]]
) -> dict[str, list[pd.Timestamp]]:
    """Candidate training cutoffs, each a subset of the built `cutoffs` before the
    `held_out` latest ones (the out-of-time check's): `(count, every)` takes the `count`
    cutoffs nearest the held-out ones, every `every`-th. Named "<count>x<every>"; a
    candidate the built cutoffs cannot hold is dropped (at least one always stays: the
    nearest earlier cutoff alone)."""
    earlier = sorted(cutoffs)[:-held_out] if held_out else sorted(cutoffs)
    if not earlier:
        raise ValueError("no cutoff before the held-out ones to train on")
    newest_first = earlier[::-1]
    chosen: dict[str, list[pd.Timestamp]] = {}
    for count, every in candidates:
        if count < 1 or every < 1:
            raise ValueError(f"cutoff candidate {(count, every)}: count and every must be >= 1")
        picked = newest_first[::every][:count]
        if len(picked) == count:
            chosen[f"{count}x{every}"] = sorted(picked)
    return chosen or {"1x1": newest_first[:1]}
