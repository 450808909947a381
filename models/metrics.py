"""Churn metrics (pure): one implementation for training, promotion and `bbx evaluate`."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

ECE_BINS = 10
# The figures `bbx evaluate` reports, in its table's order.
METRIC_KEYS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece")


def expected_calibration_error(
    y_true: np.ndarray, probability: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Σ_bins (n_bin / n) · |mean(p) − mean(y)| over `bins` equal-width bins of p on
    [0, 1] (the last bin includes 1); NaN without rows.

    scikit-learn has no ECE: `calibration_curve` drops empty bins and returns no counts.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.clip(np.asarray(probability, dtype=float), 0.0, 1.0)
    if len(y) == 0:
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    gap = np.abs(np.bincount(which, p, bins) - np.bincount(which, y, bins))
    return float(gap.sum() / len(y))


def top_decile_lift(y_true: np.ndarray, score: np.ndarray) -> float:
    """Churn rate among the 10 % highest scores over the overall churn rate."""
    y = np.asarray(y_true, dtype=float)
    if len(y) == 0 or y.sum() == 0:
        return float("nan")
    k = max(1, int(np.ceil(0.1 * len(y))))
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]
    return float(y[top].mean() / y.mean())


def evaluate_churn(
    y_true: np.ndarray, probability: np.ndarray, threshold: np.ndarray | float
) -> dict[str, float]:
    """roc_auc, pr_auc, f1, precision, recall (of p >= threshold: one cut, or one per
    row), brier, ece, lift_top_decile, base_rate. Undefined figures are NaN: AUCs and
    lift need both classes."""
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probability, dtype=float)
    predicted = (p >= np.asarray(threshold, dtype=float)).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": top_decile_lift(y, p) if both else float("nan"),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
    }


def churn_metrics(
    y_true: np.ndarray, probability: np.ndarray, threshold: np.ndarray | float
) -> dict[str, float | None]:
    """The METRIC_KEYS of `evaluate_churn`, undefined ones as None (null in JSON)."""
    figures = evaluate_churn(y_true, probability, threshold)
    return {key: None if math.isnan(figures[key]) else figures[key] for key in METRIC_KEYS}


def evaluate_ranking(y_true: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Rank-only metrics for baselines whose scores are not probabilities."""
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(score, dtype=float)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
        "lift_top_decile": top_decile_lift(y, s) if both else float("nan"),
    }


def paired_bootstrap(
    y_true: np.ndarray, scores: dict[str, np.ndarray],
    metric: Callable[[np.ndarray, np.ndarray], float], draws: int = 1000, seed: int = 0,
) -> dict[str, np.ndarray]:
    """`metric` of every score in `scores` on the same `draws` resamples of the rows: an
    array of `draws` figures per score. Churners and non-churners are resampled apart, so
    each draw keeps the class counts (AUCs are defined on every draw). The draws are
    paired: a difference between two scores' figures, taken draw by draw, is tighter
    than one between two separate bootstraps, since both scored the same rows."""
    y = np.asarray(y_true, dtype=int)
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("a paired bootstrap needs churners and non-churners")
    rng = np.random.default_rng(seed)
    values = {name: np.asarray(score, dtype=float) for name, score in scores.items()}
    figures = {name: np.empty(draws) for name in scores}
    for draw in range(draws):
        rows = np.concatenate([rng.choice(positives, len(positives)),
                               rng.choice(negatives, len(negatives))])
        for name, score in values.items():
            figures[name][draw] = metric(y[rows], score[rows])
    return figures


def interval(draws: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap draws."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.asarray(draws, dtype=float), [tail, 1.0 - tail])
    return float(low), float(high)
