"""Churn model: XGBoost + probability calibration + a max-F1 decision threshold (pure).

The booster is XGBoost's own; calibration and the threshold search are scikit-learn
meta-estimators around it (`BoosterClassifier`), and scikit-learn's `ParameterSampler`
draws the random search.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import (
    ParameterGrid,
    ParameterSampler,
    TunedThresholdClassifierCV,
)
from sklearn.utils.metaestimators import available_if

from features.training import LABEL_WINDOW_SHARE, partly_labelled


@dataclass(frozen=True)
class ChurnParams:
    """The booster's base parameters (the random search varies them around these); the
    values come from the settings (`churn.*` in configs/default.yaml)."""

    n_estimators: int
    max_depth: int
    learning_rate: float
    subsample: float
    colsample_bytree: float
    min_child_weight: float
    early_stopping_rounds: int
    seed: int
    threads: int  # XGBoost's CPU threads; 0: every core


def xgboost_threads(threads: int) -> int:
    """XGBoost's `nthread` for a thread count where 0 means every core (XGBoost: -1)."""
    return threads if threads > 0 else -1


def _booster_threads(booster: xgb.Booster) -> int:
    """The threads a trained booster was configured with (older champions: 2)."""
    generic = json.loads(booster.save_config())["learner"]["generic_param"]
    return xgboost_threads(int(generic.get("nthread", 0)))


def _numeric_matrix(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    """float32 matrix of `names`; non-numeric columns are coerced (bad values → NaN).

    The per-column coercion is skipped when every column already is numeric: it
    costs more than the booster's prediction on a batch.
    """
    values = frame[names]
    if not all(pd.api.types.is_numeric_dtype(t) for t in values.dtypes):
        values = values.apply(pd.to_numeric, errors="coerce")
    return values.to_numpy(dtype=np.float32)


def _dmatrix(X: pd.DataFrame, names: list[str], booster: xgb.Booster) -> xgb.DMatrix:
    """X's features as a matrix loaded with as many threads as `booster` predicts with."""
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise KeyError(f"missing churn features: {missing}")
    return xgb.DMatrix(_numeric_matrix(X, names), feature_names=names,
                       nthread=_booster_threads(booster))


class BoosterClassifier(ClassifierMixin, BaseEstimator):
    """A trained booster as a fitted scikit-learn classifier, for the calibration and
    threshold meta-estimators to wrap (inside a FrozenEstimator).

    `predict_proba` is the booster's (class-weighted) probability. With `margin=True`
    it also has `decision_function`, the booster's log-odds, which scikit-learn then
    calibrates instead: Platt scaling is a logistic fit on log-odds. New models always
    use it; `margin=False` is how champions calibrated by isotonic regression (on the
    probability) were pickled, and they must keep being fed the probability.
    """

    def __init__(self, booster: xgb.Booster, best_iteration: int, feature_names: list[str],
                 margin: bool = False) -> None:
        self.booster = booster
        self.best_iteration = best_iteration
        self.feature_names = feature_names
        self.margin = margin

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> BoosterClassifier:
        raise TypeError("BoosterClassifier wraps a trained booster; it is not refitted")

    def _predict(self, X: pd.DataFrame, output_margin: bool) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        return self.booster.predict(
            _dmatrix(X, self.feature_names, self.booster), output_margin=output_margin,
            iteration_range=(0, self.best_iteration + 1),
        ).astype(float)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        churn = self._predict(X, output_margin=False)
        return np.column_stack([1.0 - churn, churn])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self._predict(X, output_margin=False) >= 0.5).astype(int)

    @available_if(lambda self: self.margin)
    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self._predict(X, output_margin=True)


class IsotonicCalibrator:
    """A calibrator on raw booster probabilities, as champions registered before the
    scikit-learn calibrators hold it: kept so such a champion still unpickles and scores
    (unpickling sets `model` without calling a constructor)."""

    model: Any  # sklearn IsotonicRegression fitted on raw probabilities
    method = "isotonic"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.model.predict(raw)


class PlattCalibrator:
    """Platt scaling on the raw probabilities' log-odds, as older champions hold it."""

    model: Any  # sklearn LogisticRegression fitted on logit(raw)
    method = "platt"

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(raw, dtype=float), 1e-6, 1 - 1e-6)
        return self.model.predict_proba(np.log(p / (1 - p)).reshape(-1, 1))[:, 1]


class _EveryRowOnce:
    """A cross-validation of one split whose test rows are every row. The booster is
    frozen, so folds would only batch its predictions, and the default stratified
    folds need at least five churners."""

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return 1

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        rows = np.arange(len(X))
        yield rows, rows


def fit_calibrator(
    booster: xgb.Booster, best_iteration: int, feature_names: list[str],
    rows: pd.DataFrame, y: np.ndarray,
) -> CalibratedClassifierCV:
    """The booster calibrated on `rows` (booster frozen, every row used once) by Platt
    scaling: a logistic fit on the booster's log-odds.

    Not isotonic regression: its step function gives whole groups of customers one
    probability, so it throws away the booster's order among the riskiest, whom a
    retention campaign ranks. Platt is strictly increasing and keeps that order; its two
    parameters undo what the class weighting does to the log-odds (a shift) and what
    early stopping leaves (a scale). Measured against isotonic in BENCHMARKS.md ("Churn
    on other populations": better PR-AUC and Brier score on every world)."""
    classifier = BoosterClassifier(booster, best_iteration, list(feature_names), margin=True)
    calibrator = CalibratedClassifierCV(FrozenEstimator(classifier), method="sigmoid",
                                        cv=_EveryRowOnce())
    return calibrator.fit(rows, y.astype(int))


def max_f1_threshold(
    calibrator: CalibratedClassifierCV, rows: pd.DataFrame, y: np.ndarray
) -> float:
    """The cut on calibrated probability with the highest F1 on `rows` (the lowest such
    cut on a tie).

    Candidates are the churners' probabilities: lowering the cut past rows that are all
    non-churners only adds false positives, so F1 peaks at a churner's probability, and
    these few cuts give the exact maximum of the whole precision-recall curve.
    """
    y = y.astype(int)
    churner_probability = calibrator.predict_proba(rows)[y == 1, 1]
    candidates = np.unique(churner_probability)
    if np.isclose(candidates[0], candidates[-1]):
        # TunedThresholdClassifierCV refuses (nearly) equal candidates: the churners
        # share one probability, and the lowest cut keeps them all.
        return float(candidates[0])
    tuned = TunedThresholdClassifierCV(calibrator, scoring="f1", thresholds=candidates,
                                       cv="prefit", refit=False)
    return float(tuned.fit(rows, y).best_threshold_)


@dataclass
class ChurnModel:
    """Booster + calibrator; `predict_proba` returns calibrated churn probabilities."""

    booster: xgb.Booster
    calibrator: CalibratedClassifierCV | IsotonicCalibrator | PlattCalibrator
    feature_names: list[str]
    threshold: float
    best_iteration: int
    scale_pos_weight: float
    info: dict[str, float] = field(default_factory=dict)
    # Days of each windowed source its rows may read when scoring (features/coverage.py).
    history_days: dict[str, float] = field(default_factory=dict)

    def _matrix(self, X: pd.DataFrame) -> xgb.DMatrix:
        return _dmatrix(X, self.feature_names, self.booster)

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated booster output (inflated by the class weighting)."""
        if len(X) == 0:
            return np.zeros(0)
        return self.booster.predict(
            self._matrix(X), iteration_range=(0, self.best_iteration + 1)
        ).astype(float)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability in [0, 1], one per row of X."""
        if len(X) == 0:
            return np.zeros(0)
        if not isinstance(self.calibrator, CalibratedClassifierCV):  # an older champion
            return np.clip(self.calibrator(self.predict_raw(X)), 0.0, 1.0)
        return np.clip(self.calibrator.predict_proba(X)[:, 1], 0.0, 1.0)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-row, per-feature contributions to the raw log-odds (XGBoost `pred_contribs`).

        Shape (rows, features) in `feature_names` order; the bias column is dropped.
        Units are log-odds of the (class-weighted) booster: they rank and sign the
        reasons, they are not probability differences.
        """
        if len(X) == 0:
            return np.zeros((0, len(self.feature_names)))
        contribs = self.booster.predict(
            self._matrix(X), pred_contribs=True, iteration_range=(0, self.best_iteration + 1)
        )
        return np.asarray(contribs, dtype=float)[:, : len(self.feature_names)]

    def feature_importance(self) -> dict[str, float]:
        """Gain importance normalised to sum to 1 (features never split on: 0)."""
        gain = self.booster.get_score(importance_type="total_gain")
        total = sum(gain.values()) or 1.0
        return {name: gain.get(name, 0.0) / total for name in self.feature_names}


def label_window_intercept(train: pd.DataFrame, valid: pd.DataFrame) -> float | None:
    """The booster's fixed intercept (a probability) when some rows are partly labelled,
    else None (XGBoost estimates it). A row's margin then starts from it plus the offset
    of its label window (`label_window_offsets`), which replaces XGBoost's own intercept."""
    if not (partly_labelled(train).any() or partly_labelled(valid).any()):
        return None
    return float(np.clip(train["label"].to_numpy(dtype=float).mean(), 1e-3, 0.5))


def label_window_offsets(frame: pd.DataFrame, intercept: float) -> np.ndarray:
    """Each row's starting margin: logit(intercept) + log(share of the horizon its label
    window covers). For a small probability of leaving, the chance within a share s of the
    horizon is about s times the horizon's, so its log-odds are log(s) lower: the trees
    then learn the horizon's odds from every row, and scoring (no offset) asks for the
    whole horizon."""
    share = (frame[LABEL_WINDOW_SHARE].to_numpy(dtype=float)
             if LABEL_WINDOW_SHARE in frame.columns else np.ones(len(frame)))
    return np.log(intercept / (1.0 - intercept)) + np.log(share)


def _quantized_matrices(
    train: pd.DataFrame, valid: pd.DataFrame, names: list[str], y_train: np.ndarray,
    y_valid: np.ndarray, threads: int, intercept: float | None = None,
) -> tuple[xgb.QuantileDMatrix, xgb.QuantileDMatrix]:
    """Train/validation as XGBoost's histogram bins only (validation on train's bins);
    with `intercept`, each row starts from its label window's offset.

    A plain DMatrix keeps a copy of every value beside the bins `hist` trains on; the
    quantized one does not, and gives the same boosters and predictions (checked in
    tests/unit/test_churn_model.py).
    """
    def margins(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {} if intercept is None else {
            "base_margin": label_window_offsets(frame, intercept)}

    dtrain = xgb.QuantileDMatrix(_numeric_matrix(train, names), label=y_train,
                                 feature_names=names, nthread=xgboost_threads(threads),
                                 **margins(train))
    dvalid = xgb.QuantileDMatrix(_numeric_matrix(valid, names), label=y_valid,
                                 feature_names=names, nthread=xgboost_threads(threads),
                                 ref=dtrain, **margins(valid))
    return dtrain, dvalid


def booster_params(params: ChurnParams, scale_pos_weight: float,
                   intercept: float | None = None) -> dict[str, Any]:
    """The XGBoost parameters of one candidate (local and xgboost.dask training); with
    `intercept`, the base score that scoring (which has no offsets) starts from."""
    fixed = {} if intercept is None else {"base_score": intercept}
    return fixed | {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "max_depth": params.max_depth,
        "eta": params.learning_rate,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "min_child_weight": params.min_child_weight,
        "scale_pos_weight": scale_pos_weight,
        "seed": params.seed,
        "tree_method": "hist",
    }


def _fit_booster(
    dtrain: xgb.DMatrix, dvalid: xgb.DMatrix, params: ChurnParams, scale_pos_weight: float,
    intercept: float | None = None,
) -> tuple[xgb.Booster, int, float]:
    """(booster, best iteration, best validation PR-AUC) with early stopping on valid."""
    booster = xgb.train(
        {**booster_params(params, scale_pos_weight, intercept),
         "nthread": xgboost_threads(params.threads)},
        dtrain,
        num_boost_round=params.n_estimators,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    best = int(getattr(booster, "best_iteration", params.n_estimators - 1))
    score = float(getattr(booster, "best_score", float("nan")))
    return booster, best, score


def _labels(train: pd.DataFrame, valid: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    y_train = train["label"].to_numpy(dtype=float)
    y_valid = valid["label"].to_numpy(dtype=float)
    for side, y in (("train", y_train), ("valid", y_valid)):
        if len(np.unique(y)) < 2:
            raise ValueError(f"{side} set needs both churners and non-churners")
    return y_train, y_valid


def _calibrated_model(
    booster: xgb.Booster,
    best: int,
    valid: pd.DataFrame,
    y_valid: np.ndarray,
    names: list[str],
    scale_pos_weight: float,
) -> ChurnModel:
    whole = ~partly_labelled(valid)  # probabilities are of the whole horizon
    valid, y_valid = valid.loc[whole], y_valid[whole]
    calibrator = fit_calibrator(booster, best, names, valid, y_valid)
    raw_valid = calibrator.calibrated_classifiers_[0].estimator.predict_proba(valid)[:, 1]
    calibrated = np.clip(calibrator.predict_proba(valid)[:, 1], 0.0, 1.0)
    return ChurnModel(
        booster=booster,
        calibrator=calibrator,
        feature_names=names,
        threshold=max_f1_threshold(calibrator, valid, y_valid),
        best_iteration=best,
        scale_pos_weight=scale_pos_weight,
        info={
            "valid_brier_raw": float(brier_score_loss(y_valid, raw_valid)),
            "valid_brier_calibrated": float(brier_score_loss(y_valid, calibrated)),
            "best_iteration": float(best),
        },
    )


def train_churn_model(
    train: pd.DataFrame, valid: pd.DataFrame, feature_names: list[str], params: ChurnParams
) -> ChurnModel:
    """Fit on `train` (needs `label`), early-stop and calibrate on `valid`.

    Imbalance: churners are up-weighted by scale_pos_weight = sqrt(negatives /
    positives) on train. The full ratio (about 40 at a 2-3 % monthly churn rate)
    over-fits the few churners: on a 5,000-customer simulated lake it gave held-out
    ROC-AUC 0.80 vs 0.83 for the square root (PR-AUC 0.26 vs 0.28, mean of 5 splits).
    The weighting inflates scores; the calibrator fitted on valid maps them back
    to honest probabilities (Platt scaling, `fit_calibrator`).
    Early stopping watches valid PR-AUC, which is rank-based and so unaffected by
    the weighting.
    """
    model, _ = tune_churn_model(train, valid, feature_names, params, trials=1)
    return model


# The random search's space (bounded; the first trial is always the configured params).
SEARCH_SPACE: dict[str, tuple[float, ...]] = {
    "max_depth": (2, 3, 4, 5, 6),
    "learning_rate": (0.02, 0.03, 0.05, 0.08, 0.12),
    "n_estimators": (200, 400, 600),
    "min_child_weight": (1.0, 3.0, 10.0, 30.0),
    "subsample": (0.6, 0.75, 0.9, 1.0),
}


@dataclass(frozen=True)
class TuningTrial:
    params: ChurnParams
    valid_pr_auc: float
    best_iteration: int


def candidate_params(base: ChurnParams, trials: int) -> list[ChurnParams]:
    """`trials` distinct configurations: `base` first, then a seeded draw from SEARCH_SPACE
    (without replacement: every value is a list, so ParameterSampler samples the grid)."""
    space = {name: list(values) for name, values in SEARCH_SPACE.items()}
    candidates = [base]
    # One draw more than needed: the grid may hold `base` itself.
    draws = min(trials, len(ParameterGrid(space)))
    for drawn in ParameterSampler(space, n_iter=draws, random_state=base.seed):
        if len(candidates) >= trials:
            break
        candidate = replace(
            base,
            n_estimators=int(drawn["n_estimators"]),
            max_depth=int(drawn["max_depth"]),
            learning_rate=float(drawn["learning_rate"]),
            subsample=float(drawn["subsample"]),
            min_child_weight=float(drawn["min_child_weight"]),
        )
        if candidate != base:
            candidates.append(candidate)
    return candidates


def tune_churn_model(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    feature_names: list[str],
    base: ChurnParams,
    trials: int,
) -> tuple[ChurnModel, list[TuningTrial]]:
    """Random search (budget `trials`), each early-stopped on valid; keep the best PR-AUC.

    The winner is calibrated on valid and gets its max-F1 threshold there (see
    `train_churn_model`). Returns the model and every trial, best first.
    """
    names = list(feature_names)
    y_train, y_valid = _labels(train, valid)
    pos = float(y_train.sum())
    scale_pos_weight = float(np.sqrt((len(y_train) - pos) / pos))
    intercept = label_window_intercept(train, valid)
    dtrain, dvalid = _quantized_matrices(train, valid, names, y_train, y_valid, base.threads,
                                         intercept)
    best_fit: tuple[xgb.Booster, int, float] | None = None
    history: list[TuningTrial] = []
    for params in candidate_params(base, max(1, trials)):
        booster, best, score = _fit_booster(dtrain, dvalid, params, scale_pos_weight, intercept)
        history.append(TuningTrial(params, score, best))
        if best_fit is None or score > best_fit[2]:
            best_fit = (booster, best, score)
    assert best_fit is not None
    model = _calibrated_model(best_fit[0], best_fit[1], valid, y_valid, names, scale_pos_weight)
    winner = max(history, key=lambda t: t.valid_pr_auc)
    model.info["valid_pr_auc_tuning"] = winner.valid_pr_auc
    model.info["tuning_trials"] = float(len(history))
    history.sort(key=lambda t: -t.valid_pr_auc)
    return model, history


def recalibrated(model: ChurnModel, calibration: pd.DataFrame) -> ChurnModel:
    """`model` with its calibrator and max-F1 threshold refitted on `calibration` (rows
    with `label` that no booster was fitted on: the most recent labelled cutoff, so the
    probabilities follow the churn rate of now rather than the pooled past)."""
    y = calibration["label"].to_numpy(dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("calibration rows need both churners and non-churners")
    raw = model.predict_raw(calibration)
    calibrator = fit_calibrator(model.booster, model.best_iteration, model.feature_names,
                                calibration, y)
    calibrated = np.clip(calibrator.predict_proba(calibration)[:, 1], 0.0, 1.0)
    info = dict(model.info) | {
        "calibration_rows": float(len(y)),
        "calibration_brier_raw": float(brier_score_loss(y, raw)),
        "calibration_brier_calibrated": float(brier_score_loss(y, calibrated)),
    }
    return ChurnModel(
        booster=model.booster, calibrator=calibrator, feature_names=model.feature_names,
        threshold=max_f1_threshold(calibrator, calibration, y),
        best_iteration=model.best_iteration, scale_pos_weight=model.scale_pos_weight,
        info=info, history_days=dict(getattr(model, "history_days", {})),
    )


def with_calibration_of(calibrated: ChurnModel, refit: ChurnModel) -> ChurnModel:
    """`refit`'s booster with `calibrated`'s calibration and decision threshold.

    Why: the calibration must be fitted on rows no booster saw, and the latest labelled
    cutoff holds those rows, but also the leavers with the newest history, which a short
    usage history has few others of. So the calibration is fitted on boosters that never
    saw that cutoff (`recalibrated`), then the same configuration is refitted with its
    train customers added (`refit`), and the Platt fit is carried over. Both boosters
    start every row from a fixed intercept (their training churn rate, nearly the same)
    and the same offsets, and are early-stopped on the same validation rows, so their
    log-odds share a scale; the test customers, whom neither saw, measure how well it
    carries (the headline's calibration error)."""
    if not isinstance(calibrated.calibrator, CalibratedClassifierCV):
        raise TypeError("only a scikit-learn calibration can be carried to another booster")
    classifier = FrozenEstimator(BoosterClassifier(
        refit.booster, refit.best_iteration, list(refit.feature_names), margin=True))
    calibrator = copy.copy(calibrated.calibrator)
    fitted = copy.copy(calibrator.calibrated_classifiers_[0])
    fitted.estimator = classifier
    calibrator.calibrated_classifiers_ = [fitted]
    calibrator.estimator = classifier  # not the first booster: it is not kept
    return ChurnModel(
        booster=refit.booster, calibrator=calibrator, feature_names=list(refit.feature_names),
        threshold=calibrated.threshold, best_iteration=refit.best_iteration,
        scale_pos_weight=refit.scale_pos_weight,
        info=dict(calibrated.info) | {"best_iteration": float(refit.best_iteration),
                                      "best_iteration_before_refit": float(
                                          calibrated.best_iteration)},
        history_days=dict(getattr(calibrated, "history_days", {})),
    )


@dataclass(frozen=True)
class CutoffChoice:
    """The out-of-time check's verdict: the candidate kept and every candidate's score."""

    name: str
    cutoffs: tuple[pd.Timestamp, ...]
    scores: dict[str, float]  # candidate -> ROC-AUC of its booster on the latest cutoff


def select_training_cutoffs(
    train: pd.DataFrame, valid: pd.DataFrame, latest: pd.DataFrame,
    candidates: dict[str, list[pd.Timestamp]], feature_names: list[str], params: ChurnParams,
) -> CutoffChoice:
    """Pick how many training cutoffs, how far apart: for each candidate set of cutoffs
    a booster (`params`, early-stopped on the validation customers at those cutoffs) is
    fitted on the training customers at them and scored on `latest` (customers at the
    latest labelled cutoff, which no booster saw). ROC-AUC: the more stable rank metric
    at a few hundred churners. The check is noisy at that size, so the rule is the
    one-standard-error rule: among the candidates within one standard error (Hanley &
    McNeil) of the best score, the one with the most training cutoffs wins (more rows, a
    steadier model), then the higher score; a candidate clearly worse on the latest
    cutoff (e.g. one reaching back before a source's coverage or across a drift) loses.
    A candidate whose rows have one class only is skipped."""
    y_latest = latest["label"].to_numpy(dtype=int)
    if len(np.unique(y_latest)) < 2:
        raise ValueError("the latest labelled cutoff needs churners and non-churners")
    scores: dict[str, float] = {}
    for name, cutoffs in candidates.items():
        rows_train = train.loc[train["cutoff"].isin(cutoffs)]
        rows_valid = valid.loc[valid["cutoff"].isin(cutoffs)]
        try:
            model = train_churn_model(rows_train, rows_valid, feature_names, params)
        except ValueError:
            continue
        scores[name] = float(roc_auc_score(y_latest, model.predict_raw(latest)))
    if not scores:
        raise ValueError("no candidate set of training cutoffs has churners and non-churners")
    top = max(scores.values())
    margin = roc_auc_standard_error(top, int(y_latest.sum()), int(len(y_latest) - y_latest.sum()))
    near = [k for k in scores if scores[k] >= top - margin]
    best = max(near, key=lambda k: (len(candidates[k]), scores[k]))
    return CutoffChoice(best, tuple(candidates[best]), scores)


def training_rows(frame: pd.DataFrame, chosen: list[pd.Timestamp]) -> pd.DataFrame:
    """The rows the final boosters are fitted on: those at the chosen (fully labelled)
    cutoffs, and every partly labelled row, the most recent there are. The out-of-time
    check never trains on the latter: they come after the cutoff it scores."""
    return frame.loc[frame["cutoff"].isin(chosen).to_numpy() | partly_labelled(frame)]


def roc_auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's (1982) standard error of a ROC-AUC from its class counts."""
    if positives < 1 or negatives < 1:
        return float("inf")
    q1, q2 = auc / (2.0 - auc), 2.0 * auc**2 / (1.0 + auc)
    variance = (auc * (1.0 - auc) + (positives - 1) * (q1 - auc**2)
                + (negatives - 1) * (q2 - auc**2)) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


Tuner = Callable[[pd.DataFrame, pd.DataFrame, list[str], ChurnParams, int],
                 tuple[ChurnModel, list[TuningTrial]]]


def fit_churn_model(
    train: pd.DataFrame, valid: pd.DataFrame, calibration: pd.DataFrame,
    candidates: dict[str, list[pd.Timestamp]], feature_names: list[str], base: ChurnParams,
    trials: int, latest_train: pd.DataFrame | None = None, tune: Tuner | None = None,
) -> tuple[ChurnModel, list[TuningTrial], CutoffChoice]:
    """The churn model of a night: cutoffs chosen out of time, boosters tuned on them and
    on the partly labelled cutoffs after them (when `train` has any: `training_rows`),
    calibration and threshold fitted on the latest labelled cutoff (`calibration`); with
    `latest_train` (the train customers' rows there), the winner refitted with them and
    that calibration carried over (`with_calibration_of`). `tune` fits the boosters
    (default `tune_churn_model`; models/churn_dask.py's across a cluster)."""
    tune = tune or tune_churn_model
    choice = select_training_cutoffs(train, valid, calibration, candidates, feature_names,
                                     base)
    chosen = list(choice.cutoffs)
    rows, valid_rows = training_rows(train, chosen), training_rows(valid, chosen)
    model, history = tune(rows, valid_rows, feature_names, base, trials)
    model = recalibrated(model, calibration)
    if latest_train is not None and len(latest_train):
        refit, _ = tune(pd.concat([rows, latest_train]), valid_rows, feature_names,
                        history[0].params, 1)
        model = with_calibration_of(model, refit)
    model.info["training_cutoffs"] = float(len(chosen))
    return model, history, choice


class LogisticBaseline:
    """Logistic regression on the same features (median-imputed, standardised).

    Fitted on at most `max_rows` training rows (a seeded draw): 51 coefficients need
    far fewer than the million rows of a 100k-customer training set, and the float64
    copies of all of them were the training's peak memory.
    """

    def __init__(
        self, train: pd.DataFrame, feature_names: list[str], seed: int,
        max_rows: int | None = None,
    ) -> None:
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.feature_names = list(feature_names)
        self.pipeline = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=1000, random_state=seed),
        )
        if max_rows is not None and len(train) > max_rows:
            rows = np.sort(np.random.default_rng(seed).choice(len(train), max_rows,
                                                              replace=False))
            train = train.iloc[rows]
        x = train[self.feature_names].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        self.pipeline.fit(x, train["label"].to_numpy(dtype=int))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        x = X[self.feature_names].apply(pd.to_numeric, errors="coerce").to_numpy(float)
        return self.pipeline.predict_proba(x)[:, 1]
