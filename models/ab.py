"""A/B arms of the pricing experiment and the fairness report (pure).

Assignment: the stable hash of the user id salted with the experiment
(`features.stable_hash`, scheme sha256) read as a number in [0, 1); below the
treatment share → "treatment" (dynamic price), else "control" (the plan's static
price). The same customer and experiment always land in the same arm, on any
machine, without storing anything; a new experiment name reshuffles everyone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from features.stable_hash import stable_hash

CONTROL = "control"
TREATMENT = "treatment"


def arm_position(user_id: str, experiment: str) -> float:
    """Where the customer falls in [0, 1) for this experiment."""
    return float(_positions([user_id], experiment)[0])


def _positions(user_ids: Iterable[str], experiment: str) -> np.ndarray:
    return stable_hash(user_ids, experiment, scheme="sha256").astype(np.float64) / 2.0**64


def assign_arms(user_ids: Iterable[str], experiment: str, treatment_share: float) -> np.ndarray:
    """'treatment' or 'control' per user id (array of str)."""
    if not 0.0 <= treatment_share <= 1.0:
        raise ValueError("treatment_share must be within [0, 1]")
    if not experiment:
        raise ValueError("an experiment needs a name")
    positions = _positions([str(u) for u in user_ids], experiment)
    return np.where(positions < treatment_share, TREATMENT, CONTROL).astype(object)


def arm_prices(static: np.ndarray, dynamic: np.ndarray, arms: np.ndarray) -> np.ndarray:
    """The price each customer is offered: control always pays the static price."""
    static, dynamic, arms = np.broadcast_arrays(
        np.asarray(static, float), np.asarray(dynamic, float), np.asarray(arms, object)
    )
    return np.where(arms == TREATMENT, dynamic, static)


def age_band(date_of_birth: pd.Series, as_of: dt.date, edges: list[int]) -> pd.Series:
    """'<25', '25-34', ..., '65+' (edges in years); 'unknown' without a usable date."""
    if sorted(edges) != list(edges) or not edges:
        raise ValueError("age band edges must be a non-empty increasing list")
    born = pd.to_datetime(date_of_birth, utc=True, errors="coerce")
    as_of_ts = pd.Timestamp(as_of, tz="UTC")
    age = (as_of_ts - born).dt.days / 365.25
    labels = [f"<{edges[0]}"] + [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f"{edges[-1]}+")
    bands = pd.cut(age, [-np.inf, *edges, np.inf], labels=labels, right=False)
    out = bands.astype(object).where(age.between(0, 120), "unknown")
    return out.fillna("unknown")


def fairness_report(
    ratio: pd.Series, groups: pd.DataFrame, max_gap: float, min_group: int
) -> pd.DataFrame:
    """Mean dynamic/base ratio per group of each column of `groups` (same index as
    `ratio`), its gap to the overall mean, and whether the gap breaks `max_gap`.

    Columns: dimension, group, customers, mean_ratio, gap, flagged. Groups smaller
    than `min_group` are listed but never flagged (too noisy to judge).
    """
    overall = float(ratio.mean()) if len(ratio) else float("nan")
    rows = []
    for dimension in groups.columns:
        stats = ratio.groupby(groups[dimension].fillna("unknown")).agg(["size", "mean"])
        for group, (size, mean) in stats.iterrows():
            gap = float(mean) - overall
            rows.append({
                "dimension": dimension, "group": str(group), "customers": int(size),
                "mean_ratio": float(mean), "gap": gap,
                "flagged": bool(size >= min_group and abs(gap) > max_gap),
            })
    report = pd.DataFrame(rows, columns=["dimension", "group", "customers", "mean_ratio", "gap",
                                         "flagged"])
    report.attrs["overall_mean_ratio"] = overall
    return report
