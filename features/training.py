"""Point-in-time training rows (customer × cutoff) and a customer-level split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.customer import LakeTables, build_churn_features
from features.labels import ChurnDefinition, churn_labels
from features.subscriptions import to_utc


def build_training_set(
    tables: LakeTables,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    definition: ChurnDefinition,
) -> pd.DataFrame:
    """Features at each cutoff + `label` (churn in the next horizon) + `cutoff`.

    One row per (customer live at cutoff, cutoff); `user_id` is a column and the
    index is a plain RangeIndex (a customer appears once per cutoff). The caller
    must pick cutoffs whose label window has fully happened (cutoff + horizon <=
    the data's as-of), see features/cutoffs.py.
    """
    frames = []
    for raw in sorted(to_utc(c) for c in cutoffs):
        features = build_churn_features(tables, raw)
        labels = churn_labels(tables.subscriptions, features.index, raw, horizon_days, definition)
        frame = features.assign(label=labels.to_numpy(), cutoff=raw)
        frames.append(frame.reset_index())
    if not frames:
        raise ValueError("build_training_set needs at least one cutoff")
    return pd.concat(frames, ignore_index=True)


def split_by_customer(
    df: pd.DataFrame, validation_share: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, valid) with every row of a customer on one side only.

    Customers are stratified by whether they ever churned so both sides see
    churners; the draw is deterministic for a seed and independent of row order.
    """
    if not 0.0 < validation_share < 1.0:
        raise ValueError("validation_share must be in (0, 1)")
    users = df["user_id"] if "user_id" in df.columns else df.index.to_series(index=df.index)
    ever = (
        df["label"].groupby(users.to_numpy()).max()
        if "label" in df.columns
        else pd.Series(0, index=pd.unique(users))
    ).sort_index()
    rng = np.random.default_rng(seed)
    valid_users: list[object] = []
    for value in (0, 1):
        group = ever.index[ever.to_numpy() == value].to_numpy()
        take = int(round(len(group) * validation_share))
        if len(group) >= 2:
            take = min(max(take, 1), len(group) - 1)
        valid_users.extend(rng.permutation(group)[:take])
    in_valid = users.isin(valid_users).to_numpy()
    return df.loc[~in_valid].copy(), df.loc[in_valid].copy()
