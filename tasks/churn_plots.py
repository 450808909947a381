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
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, score in curves.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, score):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_figure(y: np.ndarray, curves: dict[str, np.ndarray]) -> Any:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, score in curves.items():
        precision, recall, _ = precision_recall_curve(y, score)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, score):.3f})")
    ax.axhline(float(np.mean(y)), color="k", ls=":", lw=1, label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def calibration_figure(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> Any:
    plt = _pyplot()
    edges = np.quantile(probability, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, probability, side="right") - 1, 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "p": probability, "y": y}).groupby("bin").mean()
    fig, ax = plt.subplots(figsize=(5, 5))
    top = max(float(frame["p"].max()), float(frame["y"].max()), 1e-3) * 1.1
    ax.plot([0, top], [0, top], "k:", lw=1, label="perfect")
    ax.plot(frame["p"], frame["y"], "o-", label="model (equal-count bins)")
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate",
           title="Calibration (test)", xlim=(0, top), ylim=(0, top))
    ax.legend(loc="upper left", fontsize=8)
    return fig


def confusion_figure(y: np.ndarray, probability: np.ndarray, threshold: float) -> Any:
    from sklearn.metrics import confusion_matrix

    plt = _pyplot()
    matrix = confusion_matrix(y, (probability >= threshold).astype(int), labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count:,}", ha="center", va="center")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["stays", "churns"],
           yticklabels=["stayed", "churned"], xlabel="predicted", ylabel="actual",
           title=f"Confusion at threshold {threshold:.3f} (test)")
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
