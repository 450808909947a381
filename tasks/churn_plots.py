"""Evaluation figures for a churn training run (matplotlib, headless).

Each function returns a Figure; tasks/train.py logs them to MLflow as PNGs and
closes them. The "SHAP summary" is drawn from XGBoost's own `pred_contribs`
(exact TreeSHAP values), so the `shap` package is not needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on a worker
    import matplotlib.pyplot as plt

    return plt


def roc_figure(y: np.ndarray, curves: dict[str, np.ndarray]) -> Any:
    from sklearn.metrics import RocCurveDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (name, score) in enumerate(curves.items()):
        RocCurveDisplay.from_predictions(y, score, name=name, ax=ax,
                                         plot_chance_level=i == len(curves) - 1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_figure(y: np.ndarray, curves: dict[str, np.ndarray]) -> Any:
    from sklearn.metrics import PrecisionRecallDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (name, score) in enumerate(curves.items()):
        # The chance level of a precision-recall curve is the base rate.
        PrecisionRecallDisplay.from_predictions(y, score, name=name, ax=ax,
                                                plot_chance_level=i == len(curves) - 1)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def calibration_figure(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> Any:
    from sklearn.calibration import CalibrationDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    # Equal-count bins: churn probabilities crowd near zero, equal-width bins would
    # put nearly every customer in the first one.
    display = CalibrationDisplay.from_predictions(
        y, probability, n_bins=bins, strategy="quantile", name="model (equal-count bins)",
        ax=ax,
    )
    top = max(float(display.prob_pred.max()), float(display.prob_true.max()), 1e-3) * 1.1
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate",
           title="Calibration (test)", xlim=(0, top), ylim=(0, top))
    ax.legend(loc="upper left", fontsize=8)
    return fig


def confusion_figure(y: np.ndarray, probability: np.ndarray, threshold: float) -> Any:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay.from_predictions(
        y, (probability >= threshold).astype(int), labels=[0, 1],
        display_labels=["stays", "churns"], cmap="Blues", values_format=",", ax=ax,
        colorbar=False,
    )
    ax.set(xlabel="predicted", ylabel="actual",
           title=f"Confusion at threshold {threshold:.3f} (test)")
    fig.tight_layout()
    return fig


def importance_figure(importance: dict[str, float], top: int = 20) -> Any:
    plt = _pyplot()
    items = sorted(importance.items(), key=lambda kv: kv[1])[-top:]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 1))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="share of total gain", title="Feature importance (gain)")
    fig.tight_layout()
    return fig


def contribution_summary_figure(
    features: pd.DataFrame, contributions: np.ndarray, feature_names: list[str], top: int = 15
) -> Any:
    """SHAP-style beeswarm: per feature, each row's contribution, coloured by its value rank."""
    plt = _pyplot()
    rng = np.random.default_rng(0)
    order = np.argsort(np.abs(contributions).mean(axis=0))[-top:]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.5))
    for row, col in enumerate(order):
        values = pd.to_numeric(features[feature_names[col]], errors="coerce")
        colour = values.rank(pct=True).fillna(0.5).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, len(values))
        ax.scatter(contributions[:, col], row + jitter, c=colour, cmap="coolwarm", s=4,
                   alpha=0.6, vmin=0, vmax=1)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_yticks(range(len(order)), [feature_names[c] for c in order])
    ax.set(xlabel="contribution to churn log-odds (pred_contribs)",
           title="Contribution summary (blue low value, red high)")
    fig.tight_layout()
    return fig
