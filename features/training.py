"""Point-in-time training rows (customer × cutoff) and a customer-level split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.coverage import EventDays, event_days
from features.coverage import scoring_history_days as _history_days
from features.customer import HISTORY_WINDOWS, LakeTables, build_churn_features
from features.labels import ChurnDefinition, churn_labels
from features.stable_hash import SIPHASH_SALT_LENGTH, stable_hash, unit_interval
from features.subscriptions import DAY, to_utc

# The share of the horizon a row's label window covers: 1 for a fully labelled cutoff,
# less for a cutoff whose window had only partly happened by as-of.
LABEL_WINDOW_SHARE = "label_window_share"


def build_training_set(
    tables: LakeTables,
    cutoffs: list[pd.Timestamp],
    horizon_days: int,
    definition: ChurnDefinition,
    lake_days: EventDays | None = None,
    labels_until: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Features at each cutoff + `label` (churn in the next horizon) + `cutoff` +
    LABEL_WINDOW_SHARE.

    One row per (customer live at cutoff, cutoff); `user_id` is a column and the
    index is a plain RangeIndex (a customer appears once per cutoff). Without
    `labels_until` the caller must pick cutoffs whose label window has fully happened
    (cutoff + horizon <= the data's as-of), see features/cutoffs.py. With it (the as-of
    cutoff), a later cutoff is labelled over the whole days of its window up to then
    (features/cutoffs.partly_labelled_cutoffs), and its share says how much of the horizon
    that is. `lake_days`: the whole lake's events per day when `tables` is one bucket (see
    build_churn_features).

    Float features are kept as float32, the precision XGBoost reads them in: 16 weekly
    cutoffs of 100k customers are over a million rows, and float64 doubled
    the training process's memory for no change in the model.
    """
    frames = []
    lake_days = event_days(tables) if lake_days is None else lake_days
    for raw in sorted(to_utc(c) for c in cutoffs):
        days = label_days(raw, horizon_days, labels_until)
        features = as_float32(build_churn_features(tables, raw, lake_days))
        labels = churn_labels(tables.subscriptions, features.index, raw, days, definition)
        frame = features.assign(label=labels.to_numpy(), cutoff=raw,
                                **{LABEL_WINDOW_SHARE: days / horizon_days})
        frames.append(frame.reset_index())
    if not frames:
        raise ValueError("build_training_set needs at least one cutoff")
    return pd.concat(frames, ignore_index=True)


def label_days(cutoff: pd.Timestamp, horizon_days: int,
               labels_until: pd.Timestamp | None) -> int:
    """Whole days of `cutoff`'s label window that have happened by `labels_until`."""
    if labels_until is None:
        return horizon_days
    days = int((to_utc(labels_until) - to_utc(cutoff)) // DAY)
    if days < 1:
        raise ValueError(f"cutoff {cutoff} has no labelled day before {labels_until}")
    return min(horizon_days, days)


def partly_labelled(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose label window covers only part of the horizon (False without the column)."""
    if LABEL_WINDOW_SHARE not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[LABEL_WINDOW_SHARE].to_numpy(dtype=float) < 1.0


def scoring_history_days(lake_days: EventDays, cutoffs: list[pd.Timestamp]) -> dict[str, float]:
    """Days of each windowed source that scoring may read for a model trained on `cutoffs`
    (partly labelled ones included): the coverage its newest rows had, where shorter than
    the features' windows (features/coverage.py). Pass it to build_churn_features when
    scoring."""
    return _history_days(lake_days, max(to_utc(c) for c in cutoffs), HISTORY_WINDOWS)


def as_float32(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its float64 columns as float32 (other columns untouched)."""
    wide = [name for name, dtype in frame.dtypes.items() if dtype == np.float64]
    return frame.astype(dict.fromkeys(wide, np.float32)) if wide else frame


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


@dataclass(frozen=True)
class ChurnSplits:
    """Customer-disjoint train/validation/test, and out of time.

    - train, valid: train/validation customers at cutoffs before the latest fully
      labelled ones (`test_cutoffs`), and at the partly labelled cutoffs after them
      (`partly_labelled`): what boosters are fitted and early-stopped on;
    - calibration: every non-test customer at the latest cutoffs, which no booster saw:
      the out-of-time check that picks the training cutoffs, and the rows the
      calibration and decision threshold are fitted on (the churn rate of now);
    - test: test customers at the latest cutoffs: the headline metric;
    - test_pooled: test customers at every cutoff (a pooled figure, named as such);
    - latest_train: the train customers' rows of `calibration`. Once the calibration is
      fitted, the final boosters are refitted with them (`churn.refit_with_latest_cutoff`,
      models.churn.with_calibration_of): the leavers with the newest history.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    test_cutoffs: tuple[pd.Timestamp, ...]
    calibration: pd.DataFrame
    test_pooled: pd.DataFrame
    latest_train: pd.DataFrame


def customer_split_draw(user_ids: pd.Series, seed: int) -> np.ndarray:
    """A stable uniform draw in [0, 1) per customer id (same id, same draw, every run).

    Stable across runs on purpose: a customer held out for testing today stays
    held out tomorrow, so the champion trained last week has never seen the
    customers the challenger is compared on.
    """
    salt = f"churn-split-{seed}".ljust(SIPHASH_SALT_LENGTH, "0")[:SIPHASH_SALT_LENGTH]
    return unit_interval(stable_hash(user_ids.astype(str), salt))


def split_train_valid_test(
    df: pd.DataFrame, validation_share: float, test_share: float, test_cutoffs: int, seed: int
) -> ChurnSplits:
    """Split training rows by customer and by time (see ChurnSplits).

    Customers are assigned to train/validation/test by `customer_split_draw`
    (shares 1 - v - t / v / t). Train and validation rows come from the cutoffs other than
    the latest `test_cutoffs` fully labelled ones; the test is the test customers at those
    latest cutoffs (out of customer); the other customers' rows at the latest cutoffs are
    the calibration rows. Partly labelled rows (later cutoffs) are train or validation rows
    only, never test, pooled test or calibration.
    """
    if not (0.0 < validation_share < 1.0 and 0.0 < test_share < 1.0):
        raise ValueError("validation_share and test_share must be in (0, 1)")
    if validation_share + test_share >= 1.0:
        raise ValueError("validation_share + test_share must leave customers to train on")
    partial = partly_labelled(df)
    cutoffs = sorted(pd.unique(df.loc[~partial, "cutoff"]))
    if len(cutoffs) <= test_cutoffs:
        raise ValueError(
            f"{len(cutoffs)} training cutoff(s) cannot hold {test_cutoffs} out-of-time test "
            "cutoff(s) and still leave one to train on"
        )
    latest = cutoffs[-test_cutoffs:]
    draw = customer_split_draw(df["user_id"], seed)
    is_test_customer = draw < test_share
    is_valid_customer = (draw >= test_share) & (draw < test_share + validation_share)
    in_test_period = df["cutoff"].isin(latest).to_numpy()
    return ChurnSplits(
        train=df.loc[~in_test_period & ~is_test_customer & ~is_valid_customer].copy(),
        valid=df.loc[~in_test_period & is_valid_customer].copy(),
        test=df.loc[in_test_period & is_test_customer].copy(),
        test_cutoffs=tuple(pd.Timestamp(c) for c in latest),
        calibration=df.loc[in_test_period & ~is_test_customer].copy(),
        test_pooled=df.loc[is_test_customer & ~partial].copy(),
        latest_train=df.loc[in_test_period & ~is_test_customer & ~is_valid_customer].copy(),
    )


def at_cutoffs(frame: pd.DataFrame, cutoffs: list[pd.Timestamp]) -> pd.DataFrame:
    """The rows of `frame` at the given cutoffs."""
    return frame.loc[frame["cutoff"].isin(cutoffs)]


def combine_training_sets(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Training rows built per bucket of customers, as one set in the order
    `build_training_set` gives for all customers at once (cutoff, then user_id), so
    the seeded row sampling in training sees the same rows in the same order."""
    kept = [f for f in frames if len(f)] or frames[:1]
    if not kept:
        raise ValueError("combine_training_sets needs at least one bucket")
    data = pd.concat(kept, ignore_index=True)
    return data.sort_values(["cutoff", "user_id"], kind="stable", ignore_index=True)
