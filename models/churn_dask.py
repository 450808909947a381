"""The churn model's tuning on a Dask cluster with `xgboost.dask` (pure model code).

The same random search, early stopping, calibration and threshold as
`models.churn.tune_churn_model`; only the boosters are fitted across the cluster's
workers. Training and validation rows are cut into one block per worker, in row
order, and block i is placed on the i-th worker by address, so a rerun on the same
cluster (same workers) builds the same histograms and gives the same model. A
different worker count gives a slightly different (equally valid) model: XGBoost's
quantile sketch depends on how rows are split.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
from xgboost import dask as dxgb

from models.churn import (
    ChurnModel,
    ChurnParams,
    TuningTrial,
    _calibrated_model,
    _labels,
    _numeric_matrix,
    booster_params,
    candidate_params,
    label_window_intercept,
    label_window_offsets,
)


def _placed_array(client: Any, values: np.ndarray, workers: list[str]) -> da.Array:
    """`values` as a dask array with block i held by workers[i] (deterministic placement)."""
    blocks = [b for b in np.array_split(values, len(workers)) if len(b)]
    parts = []
    for block, worker in zip(blocks, workers, strict=False):
        future = client.scatter(block, workers=[worker], broadcast=False)
        parts.append(da.from_delayed(dask.delayed(future), shape=block.shape, dtype=block.dtype))
    return da.concatenate(parts, axis=0)


def dask_matrix(
    client: Any, frame: pd.DataFrame, names: list[str], y: np.ndarray, workers: list[str],
    intercept: float | None = None,
) -> dxgb.DaskDMatrix:
    x = _placed_array(client, _numeric_matrix(frame, names), workers)
    label = _placed_array(client, np.asarray(y, dtype=np.float32), workers)
    margin = (None if intercept is None else
              _placed_array(client, label_window_offsets(frame, intercept), workers))
    return dxgb.DaskDMatrix(client, x, label, base_margin=margin, feature_names=names)


def tune_churn_model_dask(
    client: Any,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    feature_names: list[str],
    base: ChurnParams,
    trials: int,
) -> tuple[ChurnModel, list[TuningTrial]]:
    """`tune_churn_model` with every trial's booster trained by `xgboost.dask.train`."""
    names = list(feature_names)
    y_train, y_valid = _labels(train, valid)
    pos = float(y_train.sum())
    scale_pos_weight = float(np.sqrt((len(y_train) - pos) / pos))
    workers = sorted(client.scheduler_info()["workers"])
    intercept = label_window_intercept(train, valid)  # partly labelled rows: offsets
    best_fit = None
    history: list[TuningTrial] = []
    with client.as_current():  # xgboost.dask looks the client up as the current one
        dtrain = dask_matrix(client, train, names, y_train, workers, intercept)
        dvalid_cluster = dask_matrix(client, valid, names, y_valid, workers, intercept)
        for params in candidate_params(base, max(1, trials)):
            out = dxgb.train(
                client, booster_params(params, scale_pos_weight, intercept), dtrain,
                num_boost_round=params.n_estimators, evals=[(dvalid_cluster, "valid")],
                early_stopping_rounds=params.early_stopping_rounds, verbose_eval=False,
            )
            booster = out["booster"]
            best = int(getattr(booster, "best_iteration", params.n_estimators - 1))
            score = float(getattr(booster, "best_score", float("nan")))
            history.append(TuningTrial(params, score, best))
            if best_fit is None or score > best_fit[2]:
                best_fit = (booster, best, score)
    assert best_fit is not None
    # Calibration and threshold on the (small) validation rows, here, as locally.
    model = _calibrated_model(best_fit[0], best_fit[1], valid, y_valid, names, scale_pos_weight)
    winner = max(history, key=lambda t: t.valid_pr_auc)
    model.info["valid_pr_auc_tuning"] = winner.valid_pr_auc
    model.info["tuning_trials"] = float(len(history))
    model.info["dask_workers"] = float(len(workers))
    history.sort(key=lambda t: -t.valid_pr_auc)
    return model, history
