"""Churn training time and scoring overhead: `python -m bench train [--rows N] [--trials T]`.

The training matrix: a synthetic lake (tests/unit/synthetic.py: planted churn
signal, bbx.lake's columns) of --base-customers customers, turned into
point-in-time training rows at the configured cutoffs (churn.training_cutoffs,
cutoff_spacing_days) by the real feature code, then *resampled by customer* (with
replacement, each copy a new customer id) up to --rows customer-cutoffs. Resampled
copies make the data look bigger than its information, which is fine for timing, not
for judging accuracy.

Figures printed:
- training: split, the out-of-time choice of training cutoffs (one booster per
  churn.cutoff_candidates), tuning with the default budget (churn.tuning_trials) and
  early stopping, calibration on the latest labelled cutoff, test evaluation (wall
  and CPU seconds; goal < 300 s wall on 2 cores for 100k rows);
- scoring: ChurnModel.predict_proba on the feature DataFrame vs a raw
  Booster.predict on a DMatrix of the same float32 matrix (goal ratio <= 1.3),
  and the reasons' cost (pred_contribs + words) per 100k customers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def _training_matrix(base_customers: int, rows: int, seed: int) -> tuple[pd.DataFrame, float]:
    import datetime as dt

    from bbx.settings import load_settings
    from features.cutoffs import as_of_cutoff
    from features.training import build_training_set
    from tasks.train import churn_cutoffs
    from tests.unit.synthetic import make_tables

    settings = load_settings()
    c = settings.churn
    started = time.perf_counter()
    tables = make_tables(n_customers=base_customers, seed=seed)
    as_of = dt.date(2026, 6, 1)
    labelled, partial = churn_cutoffs(settings, as_of)  # as the nightly builds them
    base = build_training_set(tables, labelled + partial, c.horizon_days, c.definition,
                              labels_until=as_of_cutoff(as_of))
    build_seconds = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    customers = base["user_id"].unique()
    per_customer = len(base) / len(customers)
    picked = rng.choice(customers, size=int(np.ceil(1.2 * rows / per_customer)), replace=True)
    by_user = base.groupby("user_id").indices
    index = np.concatenate([by_user[u] for u in picked])
    copy = np.repeat(np.arange(len(picked)), [len(by_user[u]) for u in picked])
    data = base.iloc[index].reset_index(drop=True)
    data["user_id"] = [f"{c:024x}" for c in copy]
    return data.iloc[:rows].reset_index(drop=True), build_seconds


def _load() -> float:
    import os

    return os.getloadavg()[0]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench train")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--base-customers", type=int, default=6000)
    parser.add_argument("--trials", type=int, default=None,
                        help="tuning budget (default: churn.tuning_trials from settings)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)

    import xgboost as xgb

    from bbx.settings import load_settings
    from features.cutoffs import cutoff_candidates
    from features.registry import CHURN_FEATURE_NAMES
    from features.training import partly_labelled, split_train_valid_test
    from models.churn import fit_churn_model, xgboost_threads
    from models.metrics import evaluate_churn
    from models.reasons import churn_reasons, reasons_to_json
    from tasks.train import churn_params, latest_refit_rows

    settings = load_settings()
    c = settings.churn
    trials = args.trials or c.tuning_trials
    names = list(CHURN_FEATURE_NAMES)
    data, build_seconds = _training_matrix(args.base_customers, args.rows, args.seed)
    print(f"matrix: {len(data):,} customer-cutoffs × {len(names)} features "
          f"(resampled from {args.base_customers:,} synthetic customers × "
          f"{data['cutoff'].nunique()} cutoffs; "
          f"building those took {build_seconds:.1f}s), churn rate {data['label'].mean():.3f}, "
          f"xgboost on {c.threads or 'every'} thread(s)")

    started, cpu_started = time.perf_counter(), time.process_time()
    splits = split_train_valid_test(data, c.validation_share, c.test_share, c.test_cutoffs,
                                    c.seed)
    labelled = data.loc[~partly_labelled(data), "cutoff"]
    candidates = cutoff_candidates(sorted(labelled.unique()), c.test_cutoffs,
                                   list(c.cutoff_candidates))
    model, history, choice = fit_churn_model(splits.train, splits.valid, splits.calibration,
                                             candidates, names, churn_params(settings), trials,
                                             latest_refit_rows(settings, splits))
    metrics = evaluate_churn(splits.test["label"].to_numpy(),
                             model.predict_proba(splits.test), model.threshold)
    train_seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    print(f"training: {train_seconds:.1f}s wall, {cpu_seconds:.1f}s CPU (both threads; "
          f"load average now {_load():.1f}) for {len(candidates)} cutoff candidates "
          f"(kept {choice.name}) + {trials} trials "
          f"(train {len(splits.train):,} / valid {len(splits.valid):,} / "
          f"test {len(splits.test):,} rows; best trees {model.best_iteration + 1}; "
          f"goal < 300s) {'OK' if train_seconds < 300 else 'OVER'}")
    print(f"  test roc_auc {metrics['roc_auc']:.3f} pr_auc {metrics['pr_auc']:.3f} "
          f"(resampled data: not an accuracy figure)")

    features = data[names].reset_index(drop=True)
    matrix = features.to_numpy(dtype=np.float32)

    def best_of(fn, repeats: int = 5) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    booster_range = (0, model.best_iteration + 1)
    raw = best_of(lambda: model.booster.predict(
        xgb.DMatrix(matrix, feature_names=names, nthread=xgboost_threads(c.threads)),
        iteration_range=booster_range))
    ours = best_of(lambda: model.predict_proba(features))
    print(f"scoring {len(features):,} rows: raw Booster.predict {raw * 1000:.0f} ms "
          f"({len(features) / raw:,.0f} rows/s); ChurnModel.predict_proba {ours * 1000:.0f} ms "
          f"({len(features) / ours:,.0f} rows/s); ratio {ours / raw:.2f} (goal <= 1.3) "
          f"{'OK' if ours / raw <= 1.3 else 'OVER'}")
    t0 = time.perf_counter()
    reasons_to_json(churn_reasons(features, model.contributions(features), names,
                                  c.reasons_per_customer))
    print(f"reasons (pred_contribs + words, top {c.reasons_per_customer}) for "
          f"{len(features):,} rows: {time.perf_counter() - t0:.1f}s")
