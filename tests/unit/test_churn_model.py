"""The churn model learns a planted signal, calibrates, and survives pickling."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from features.registry import CHURN_FEATURE_NAMES
from features.training import build_training_set, split_by_customer
from models.churn import (
    SEARCH_SPACE,
    ChurnParams,
    LogisticBaseline,
    candidate_params,
    train_churn_model,
    tune_churn_model,
)
from models.heuristic import heuristic_churn_score
from models.metrics import (
    evaluate_churn,
    evaluate_ranking,
    expected_calibration_error,
    interval,
    paired_bootstrap,
)
from models.promotion import PromotionRules, decide_promotion
from models.reasons import REASON_TEMPLATES, churn_reasons, display_value, reasons_to_json
from tests.unit.synthetic import make_tables

FEATURES = ["usage_decline_30d_pct", "days_since_last_login", "payment_failures_90d", "noise"]
FAST = ChurnParams(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.9,
                   colsample_bytree=0.9, min_child_weight=1.0, early_stopping_rounds=20, seed=7,
                   threads=2)


def planted(n: int, seed: int) -> pd.DataFrame:
    """~8 % churners; risk rises with usage decline, login gap and failures."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "usage_decline_30d_pct": rng.uniform(-100, 100, n),
            "days_since_last_login": rng.exponential(10, n),
            "payment_failures_90d": rng.poisson(0.3, n).astype(float),
            "noise": rng.normal(size=n),
        }
    )
    logit = (
        -4.5
        + 0.025 * x["usage_decline_30d_pct"]
        + 0.08 * x["days_since_last_login"]
        + 0.9 * x["payment_failures_90d"]
    )
    x["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x["user_id"] = [f"{seed:02x}{i:022x}" for i in range(n)]
    return x


@pytest.fixture(scope="module")
def fitted():
    train, valid, test = planted(4000, 1), planted(1500, 2), planted(3000, 3)
    return train_churn_model(train, valid, FEATURES, FAST), test


def test_learns_planted_signal_on_held_out(fitted) -> None:
    model, test = fitted
    p = model.predict_proba(test)
    assert p.shape == (len(test),)
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(test["label"], p) > 0.8
    importance = model.feature_importance()
    assert importance["noise"] < importance["usage_decline_30d_pct"]
    assert 0.0 < model.threshold < 1.0


def test_calibration_beats_raw_brier_on_held_out(fitted) -> None:
    model, test = fitted
    raw = model.predict_raw(test)
    calibrated = model.predict_proba(test)
    y = test["label"]
    assert brier_score_loss(y, calibrated) <= brier_score_loss(y, raw) + 1e-4
    # Weighted training inflates raw scores; calibrated ones match the base rate.
    assert raw.mean() > 1.3 * y.mean()
    assert calibrated.mean() == pytest.approx(y.mean(), abs=0.03)


def test_pickles_with_cloudpickle(fitted) -> None:
    model, test = fitted
    clone = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_array_equal(clone.predict_proba(test), model.predict_proba(test))
    # Column order of the input does not matter: the model selects its features.
    shuffled = test[list(reversed(test.columns))]
    np.testing.assert_array_equal(model.predict_proba(shuffled), model.predict_proba(test))
    with pytest.raises(KeyError):
        model.predict_proba(test.drop(columns=["noise"]))


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_a_champion_pickled_with_a_raw_score_calibrator_still_scores(fitted, kind) -> None:
    """Champions registered before calibration moved to scikit-learn hold an
    IsotonicCalibrator or PlattCalibrator over raw scores; they must keep serving."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    from models.churn import IsotonicCalibrator, PlattCalibrator

    model, test = fitted
    calibration = planted(3000, 41)
    raw = model.predict_raw(calibration)
    if kind == "isotonic":
        legacy = object.__new__(IsotonicCalibrator)
        legacy.model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            raw, calibration["label"])
        expected = legacy.model.predict(model.predict_raw(test))
    else:
        legacy = object.__new__(PlattCalibrator)
        logit = np.log(np.clip(raw, 1e-6, 1 - 1e-6) / (1 - np.clip(raw, 1e-6, 1 - 1e-6)))
        legacy.model = LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), calibration["label"])
        test_raw = np.clip(model.predict_raw(test), 1e-6, 1 - 1e-6)
        test_logit = np.log(test_raw / (1 - test_raw)).reshape(-1, 1)
        expected = legacy.model.predict_proba(test_logit)[:, 1]
    old = cloudpickle.loads(cloudpickle.dumps(replace(model, calibrator=legacy)))
    np.testing.assert_allclose(old.predict_proba(test), np.clip(expected, 0, 1), rtol=0, atol=0)


def test_platt_with_few_churners_too() -> None:
    train, valid = planted(1500, 4), planted(200, 5)
    model = train_churn_model(train, valid, FEATURES, FAST)
    assert model.calibrator.method == "sigmoid"  # Platt scaling
    p = model.predict_proba(planted(500, 6))
    assert ((p >= 0) & (p <= 1)).all()


def test_calibration_is_a_logistic_fit_on_the_log_odds_and_keeps_the_order(fitted) -> None:
    """Recalibrated on many churners, the model is still Platt-scaled: its log-odds are an
    increasing linear function of the booster's, so no two customers the booster tells
    apart share a probability (an isotonic fit's steps would tie them)."""
    from scipy.special import logit

    from models.churn import recalibrated

    model, test = fitted
    calibration = planted(3000, 41)
    assert calibration["label"].sum() >= 100
    refitted = recalibrated(model, calibration)
    assert refitted.calibrator.method == "sigmoid"
    raw = model.predict_raw(test)
    p = refitted.predict_proba(test)
    slope, intercept = np.polyfit(logit(raw), logit(p), 1)
    assert slope > 0
    np.testing.assert_allclose(logit(p), slope * logit(raw) + intercept, rtol=0, atol=1e-6)
    assert len(np.unique(p)) == len(np.unique(raw))
    # The class weighting inflated the raw scores; the fit brings them to the base rate.
    assert p.mean() == pytest.approx(test["label"].mean(), abs=0.03)


def test_a_champion_calibrated_by_isotonic_regression_still_scores(fitted) -> None:
    """Champions registered while isotonic regression calibrated them hold a
    CalibratedClassifierCV over a BoosterClassifier without margins: unpickled, they still
    calibrate the booster's probability, as fitting isotonic regression by hand does."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.isotonic import IsotonicRegression

    from models.churn import BoosterClassifier, _EveryRowOnce

    model, test = fitted
    calibration = planted(3000, 41)
    booster = BoosterClassifier(model.booster, model.best_iteration, model.feature_names)
    isotonic = CalibratedClassifierCV(FrozenEstimator(booster), method="isotonic",
                                      cv=_EveryRowOnce()).fit(calibration, calibration["label"])
    old = cloudpickle.loads(cloudpickle.dumps(replace(model, calibrator=isotonic)))
    by_hand = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        model.predict_raw(calibration), calibration["label"])
    np.testing.assert_array_equal(old.predict_proba(test),
                                  np.clip(by_hand.predict(model.predict_raw(test)), 0, 1))


def test_threshold_is_the_max_f1_cut_of_the_whole_curve() -> None:
    """Tuned over the churners' probabilities only, the threshold is the lowest cut with
    the highest F1 over every distinct probability (ties included: scores are rounded)."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.metrics import f1_score

    from models.churn import max_f1_threshold

    class Given(ClassifierMixin, BaseEstimator):
        """A fitted classifier whose probability is the row's `p` column."""

        classes_ = np.array([0, 1])

        def __sklearn_is_fitted__(self) -> bool:
            return True

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            return np.column_stack([1 - X["p"].to_numpy(), X["p"].to_numpy()])

    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(50, 400))
        y = (rng.random(n) < rng.uniform(0.05, 0.4)).astype(int)
        y[:2] = [0, 1]
        p = np.round(np.clip(rng.beta(1, 6, n) + 0.3 * y * rng.random(n), 0, 1), 2)
        cuts = np.unique(p)
        f1 = np.array([f1_score(y, (p >= c).astype(int)) for c in cuts])
        expected = cuts[int(np.argmax(f1))]
        assert max_f1_threshold(Given(), pd.DataFrame({"p": p}), y) == expected


def test_one_class_is_rejected() -> None:
    train = planted(300, 7).assign(label=0)
    with pytest.raises(ValueError, match="churners"):
        train_churn_model(train, planted(100, 8), FEATURES, FAST)


def test_evaluate_churn_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = evaluate_churn(y, p, threshold=0.5)
    # predicted [0, 1, 0, 1]: tp 1, fp 1, fn 1.
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["roc_auc"] == 0.75 and m["base_rate"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert set(m) == {"roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece",
                      "lift_top_decile", "base_rate"}
    # ECE: bins [0.1), [0.4), [0.6), [0.9) each hold one row: |p - y| averaged.
    assert m["ece"] == pytest.approx((0.1 + 0.6 + 0.6 + 0.1) / 4)
    # Top decile of 4 rows = the single highest score (0.9, a churner): 1 / 0.5.
    assert m["lift_top_decile"] == pytest.approx(2.0)
    assert np.isnan(evaluate_churn(np.array([0, 0]), np.array([0.1, 0.2]), 0.5)["roc_auc"])


def test_end_to_end_on_synthetic_lake() -> None:
    tables = make_tables(n_customers=800, seed=21)
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    cutoffs = [as_of - pd.Timedelta(days=30 + 30 * i) for i in range(4)]
    data = build_training_set(tables, cutoffs, 30, "cancelled")
    train, valid = split_by_customer(data, 0.3, seed=7)
    model = train_churn_model(train, valid, list(CHURN_FEATURE_NAMES), FAST)
    p = model.predict_proba(valid)
    assert roc_auc_score(valid["label"], p) > 0.8


def test_training_set_is_float32_and_trains_the_float64_model() -> None:
    """The training rows keep floats as float32 (memory at 100k customers); the booster
    reads float32 anyway, so the model is the one float64 rows give, bit for bit."""
    tables = make_tables(n_customers=400, seed=22)
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    data = build_training_set(tables, [as_of - pd.Timedelta(days=30 + 30 * i)
                                       for i in range(3)], 30, "cancelled")
    names = list(CHURN_FEATURE_NAMES)
    floats = [n for n in names if pd.api.types.is_float_dtype(data[n])]
    assert floats and all(data[n].dtype == np.float32 for n in floats)
    wide = data.astype(dict.fromkeys(floats, np.float64))
    train, valid = split_by_customer(data, 0.3, seed=7)
    wide_train, wide_valid = split_by_customer(wide, 0.3, seed=7)
    narrow_model = train_churn_model(train, valid, names, FAST)
    wide_model = train_churn_model(wide_train, wide_valid, names, FAST)
    np.testing.assert_array_equal(narrow_model.predict_proba(wide_valid),
                                  wide_model.predict_proba(wide_valid))


def test_quantized_training_matches_a_plain_dmatrix_booster() -> None:
    """Tuning trains on QuantileDMatrix (no copy of the raw values): same booster as
    xgboost.train on a plain DMatrix with the same parameters and early stopping."""
    import xgboost as xgb

    from models.churn import booster_params

    train, valid, test = planted(3000, 31), planted(1500, 32), planted(1000, 33)
    model, _ = tune_churn_model(train, valid, FEATURES, FAST, trials=1)

    def plain(frame: pd.DataFrame) -> xgb.DMatrix:
        return xgb.DMatrix(frame[FEATURES].to_numpy(np.float32),
                           label=frame["label"].to_numpy(float), feature_names=FEATURES)

    booster = xgb.train({**booster_params(FAST, model.scale_pos_weight),
                         "nthread": FAST.threads},
                        plain(train), num_boost_round=FAST.n_estimators,
                        evals=[(plain(valid), "valid")],
                        early_stopping_rounds=FAST.early_stopping_rounds, verbose_eval=False)
    assert booster.best_iteration == model.best_iteration
    np.testing.assert_array_equal(
        model.predict_raw(test),
        booster.predict(plain(test), iteration_range=(0, booster.best_iteration + 1)),
    )


def test_the_thread_count_changes_the_speed_not_the_model() -> None:
    """`churn.threads` (0: every core) reaches the booster, and the same rows give the
    same booster and probabilities whatever the count. Two threads are asked for by
    number too: `make test` sets OMP_NUM_THREADS=1, under which "every core" is one."""
    train, valid, test = planted(3000, 31), planted(1500, 32), planted(1000, 33)
    models = {n: tune_churn_model(train, valid, FEATURES, replace(FAST, threads=n), trials=1)[0]
              for n in (1, 2, 0)}
    configured = {n: json.loads(m.booster.save_config())["learner"]["generic_param"]["nthread"]
                  for n, m in models.items()}
    assert configured == {1: "1", 2: "2", 0: "-1"}
    for n in (2, 0):
        assert models[1].best_iteration == models[n].best_iteration
        np.testing.assert_array_equal(models[1].predict_raw(test), models[n].predict_raw(test))
        np.testing.assert_array_equal(models[1].predict_proba(test),
                                      models[n].predict_proba(test))


def test_expected_calibration_error() -> None:
    y = np.array([0] * 90 + [1] * 10)
    assert expected_calibration_error(y, np.full(100, 0.1)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.3)) == pytest.approx(0.2)


def test_paired_bootstrap_keeps_class_counts_and_pairs_the_scores() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.1).astype(int)
    signal = 2.0 * y + rng.normal(0, 1.0, len(y))
    better, worse = signal + rng.normal(0, 0.3, len(y)), signal + rng.normal(0, 2.0, len(y))
    seen: list[int] = []

    def churners_then_auc(y_draw: np.ndarray, score: np.ndarray) -> float:
        seen.append(int(y_draw.sum()))
        return float(roc_auc_score(y_draw, score))

    draws = paired_bootstrap(y, {"better": better, "worse": worse, "same": better},
                             churners_then_auc, draws=100, seed=1)
    assert set(seen) == {int(y.sum())}  # every draw keeps the churners' count
    assert {len(d) for d in draws.values()} == {100}
    # Paired: a score against itself differs by exactly 0 on every draw, and a difference
    # taken draw by draw is tighter than one between two separate bootstraps.
    np.testing.assert_array_equal(draws["better"], draws["same"])
    low, high = interval(draws["better"] - draws["worse"])
    assert 0 < low < high
    own_low, own_high = interval(draws["better"])
    assert own_low < roc_auc_score(y, better) < own_high
    again = paired_bootstrap(y, {"better": better}, roc_auc_score, draws=100, seed=1)
    np.testing.assert_array_equal(again["better"], draws["better"])  # seeded
    apart = paired_bootstrap(y, {"worse": worse}, roc_auc_score, draws=100, seed=2)
    unpaired_low, unpaired_high = interval(draws["better"] - apart["worse"])
    assert high - low < unpaired_high - unpaired_low
    with pytest.raises(ValueError, match="churners and non-churners"):
        paired_bootstrap(np.zeros(10, dtype=int), {"a": np.zeros(10)}, roc_auc_score)


def test_tuning_searches_a_bounded_seeded_space(fitted) -> None:
    base = FAST
    candidates = candidate_params(base, 6)
    assert candidates[0] == base and len(candidates) == 6 == len(set(candidates))
    assert candidates == candidate_params(base, 6)  # seeded
    for c in candidates[1:]:
        assert c.max_depth in SEARCH_SPACE["max_depth"]
        assert c.learning_rate in SEARCH_SPACE["learning_rate"]
        assert c.min_child_weight in SEARCH_SPACE["min_child_weight"]
    train, valid = planted(3000, 11), planted(1500, 12)
    model, trials = tune_churn_model(train, valid, FEATURES, base, trials=4)
    assert len(trials) == 4
    scores = [t.valid_pr_auc for t in trials]
    assert scores == sorted(scores, reverse=True)
    assert model.info["valid_pr_auc_tuning"] == pytest.approx(scores[0])
    # Early stopping: the kept iteration is inside each trial's budget.
    assert all(0 <= t.best_iteration < t.params.n_estimators for t in trials)


def test_baselines_rank_the_planted_signal() -> None:
    train, test = planted(3000, 13), planted(2000, 14)
    logistic = LogisticBaseline(train, FEATURES, seed=1).predict_proba(test)
    assert evaluate_ranking(test["label"], logistic)["roc_auc"] > 0.8
    # A seeded draw of at most max_rows rows: still ranks, same draw every time.
    capped = LogisticBaseline(train, FEATURES, seed=1, max_rows=1000).predict_proba(test)
    assert evaluate_ranking(test["label"], capped)["roc_auc"] > 0.75
    assert not np.allclose(capped, logistic)
    np.testing.assert_array_equal(
        capped, LogisticBaseline(train, FEATURES, seed=1, max_rows=1000).predict_proba(test))
    heuristic = heuristic_churn_score(
        test.assign(support_tickets_90d=0.0, contract_age_months=24.0)
    )
    assert evaluate_ranking(test["label"], heuristic)["roc_auc"] > 0.7


RULES = PromotionRules(metric="pr_auc", brier_tolerance=0.002, ece_tolerance=0.01)


def test_promotion_rules() -> None:
    champ = {"pr_auc": 0.30, "brier": 0.020, "ece": 0.010}
    first = decide_promotion(champ, None, RULES)
    assert first.promote and "first" in first.reason
    better = decide_promotion({"pr_auc": 0.35, "brier": 0.021, "ece": 0.015}, champ, RULES, "3")
    assert better.promote and all(better.checks.values())
    worse = decide_promotion({"pr_auc": 0.25, "brier": 0.019, "ece": 0.005}, champ, RULES, "3")
    assert not worse.promote and "does not beat" in worse.reason and "v3 stays" in worse.reason
    tie = decide_promotion(dict(champ), champ, RULES, "3")
    assert not tie.promote
    miscalibrated = decide_promotion({"pr_auc": 0.40, "brier": 0.030, "ece": 0.010}, champ,
                                     RULES, "3")
    assert not miscalibrated.promote and "brier" in miscalibrated.reason
    assert miscalibrated.checks == {"beats_on_pr_auc": True, "brier_not_worse": False,
                                    "ece_not_worse": True}
    undecidable = decide_promotion({"pr_auc": float("nan"), "brier": 0.0, "ece": 0.0}, champ,
                                   RULES, "3")
    assert not undecidable.promote
    broken = decide_promotion(champ, None, RULES, "3", champion_error="KeyError: 'x'")
    assert broken.promote and "cannot be evaluated" in broken.reason


def test_reasons_are_the_top3_risk_raising_features_and_state_the_value() -> None:
    names = ["days_since_last_login", "payment_failures_90d", "usage_gb_30d",
             "mean_latency_ms_30d", "discount_share"]
    features = pd.DataFrame({
        "days_since_last_login": [34.0, 2.0, 1.0],
        "payment_failures_90d": [2.0, 0.0, 0.0],
        "usage_gb_30d": [12.345, 80.0, 90.0],
        "mean_latency_ms_30d": [np.nan, 25.0, 20.0],
        "discount_share": [0.1, 0.0, 0.0],
    })
    contributions = np.array([
        [0.8, 0.3, -0.9, 0.05, 0.0],
        [-0.2, 0.0, -0.1, 0.6, 0.9],
        [-0.2, -0.4, -0.1, 0.0, -0.3],
    ])
    reasons = churn_reasons(features, contributions, names, top_k=3)
    # Largest positive contributions first; the larger negative one (-0.9) is not a reason.
    assert [r["feature"] for r in reasons[0]] == [
        "days_since_last_login", "payment_failures_90d", "mean_latency_ms_30d"]
    # Only two features raise the risk: two reasons, never a zero or negative one.
    assert [r["feature"] for r in reasons[1]] == ["discount_share", "mean_latency_ms_30d"]
    # Nothing raises the risk: no reasons at all ("0 failed payments" is no reason to leave).
    assert reasons[2] == []
    top = reasons[0][0]
    assert top == {"feature": "days_since_last_login", "value": 34, "effect": "+0.80",
                   "text": "No login for 34 days"}
    assert reasons[0][1] == {"feature": "payment_failures_90d", "value": 2, "effect": "+0.30",
                             "text": "2 failed payments in the last 90 days"}
    assert all(float(r["effect"]) > 0 for row in reasons for r in row)
    for row in reasons:
        for r in row:
            if r["value"] is not None:
                assert str(r["value"]) in r["text"]
    # Missing values are said in words, not as NaN.
    missing = reasons[0][2]
    assert missing["value"] is None and "No sessions" in missing["text"]
    assert json.loads(reasons_to_json(reasons)[0]) == reasons[0]
    with pytest.raises(ValueError, match="shape"):
        churn_reasons(features, contributions[:, :2], names, 3)


def test_every_registry_feature_has_words() -> None:
    assert set(CHURN_FEATURE_NAMES) <= set(REASON_TEMPLATES)
    for name in CHURN_FEATURE_NAMES:
        value = display_value(name, 3.0)
        assert str(value) in REASON_TEMPLATES[name](str(value)) or name in (
            "billing_cycle_yearly", "plan_category_code")


def test_contributions_explain_the_raw_score(fitted) -> None:
    model, test = fitted
    sample = test.head(200)
    contribs = model.contributions(sample)
    assert contribs.shape == (200, len(FEATURES))
    # pred_contribs + bias sum to the raw margin: check the ordering matches the margin.
    margin = contribs.sum(axis=1)
    raw = model.predict_raw(sample)
    assert np.corrcoef(margin, np.log(raw / (1 - raw)))[0, 1] > 0.999


def test_cutoff_choice_is_out_of_time_with_the_one_standard_error_rule() -> None:
    from features.cutoffs import cutoff_candidates, training_cutoffs
    from features.training import build_training_set, split_train_valid_test
    from models.churn import roc_auc_standard_error, select_training_cutoffs

    tables = make_tables(n_customers=900, seed=21)
    cutoffs = training_cutoffs(dt.date(2026, 6, 1), 30, 6, 14)
    data = build_training_set(tables, cutoffs, 30, "cancelled")
    splits = split_train_valid_test(data, 0.15, 0.15, 1, 7)
    candidates = cutoff_candidates(cutoffs, 1, [(1, 1), (5, 1)])
    choice = select_training_cutoffs(splits.train, splits.valid, splits.calibration, candidates,
                                     list(CHURN_FEATURE_NAMES), replace(FAST, n_estimators=60))
    assert set(choice.scores) == {"1x1", "5x1"}
    assert max(choice.cutoffs) < max(cutoffs)  # never trains on the checked cutoff
    y = splits.calibration["label"]
    margin = roc_auc_standard_error(max(choice.scores.values()), int(y.sum()),
                                    int((1 - y).sum()))
    assert choice.scores[choice.name] >= max(choice.scores.values()) - margin
    if choice.scores["5x1"] >= max(choice.scores.values()) - margin:
        assert choice.name == "5x1"  # near-ties go to more training cutoffs
    # Hanley-McNeil by hand: AUC 0.8 with 50 positives and 500 negatives.
    assert roc_auc_standard_error(0.8, 50, 500) == pytest.approx(0.0384, abs=5e-4)


def test_partly_labelled_rows_teach_the_whole_horizons_odds() -> None:
    """Rows labelled over a share s of the horizon see about s times the churners. With
    their offset log(s) the booster still learns the whole horizon's odds (what scoring,
    without offsets, asks for); read as whole-horizon rows they would pull it down."""
    from features.training import LABEL_WINDOW_SHARE
    from models.churn import label_window_offsets

    def rows(n: int, share: float, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=n)
        p = 1.0 / (1.0 + np.exp(-(-3.0 + x)))  # the whole horizon's chance
        y = (rng.random(n) < p * share).astype(int)
        return pd.DataFrame({"risk": x, "label": y, LABEL_WINDOW_SHARE: share})

    whole = rows(20000, 1.0, 1)
    mixed = pd.concat([rows(8000, 1.0, 2), rows(12000, 0.25, 3)], ignore_index=True)
    valid = pd.concat([rows(4000, 1.0, 4), rows(4000, 0.25, 5)], ignore_index=True)
    grid = pd.DataFrame({"risk": np.linspace(-1.5, 1.5, 31)})

    def level(train: pd.DataFrame, check: pd.DataFrame) -> float:
        model, _ = tune_churn_model(train, check, ["risk"], FAST, trials=1)
        raw = model.predict_raw(grid)
        return float(np.mean(np.log(raw / (1.0 - raw))))  # mean log-odds over the grid

    reference = level(whole, rows(4000, 1.0, 6))
    with_offsets = level(mixed, valid)
    without = level(mixed.drop(columns=LABEL_WINDOW_SHARE),
                    valid.drop(columns=LABEL_WINDOW_SHARE))
    # log(s) is exact for small chances; at this planted level the odds of the shorter
    # window are a little above s times the horizon's, so the level comes out a little
    # low (about 0.15 here; the calibration on the latest labelled cutoff absorbs it).
    assert abs(with_offsets - reference) < 0.25
    assert without < with_offsets - 0.25  # about log(0.4 + 0.6 x 0.25) = -0.6 below
    # The offset is the intercept's log-odds plus log(s); whole-horizon rows get none.
    offsets = label_window_offsets(mixed, 0.05)
    assert np.allclose(offsets[:8000], np.log(0.05 / 0.95))
    assert np.allclose(offsets[8000:] - offsets[0], np.log(0.25))


def test_a_refit_booster_keeps_the_calibration_fitted_before_it(fitted) -> None:
    """The latest labelled cutoff calibrates boosters that never saw it; the winner is then
    refitted with more rows and scores through that same Platt fit: the same slope and
    intercept on the refit booster's log-odds, its threshold, and it survives pickling."""
    from models.churn import recalibrated, with_calibration_of

    model, test = fitted
    calibrated = recalibrated(model, planted(3000, 41))
    more = pd.concat([planted(4000, 1), planted(4000, 51)])
    refit = train_churn_model(more, planted(1500, 2), FEATURES, FAST)
    carried = with_calibration_of(calibrated, refit)
    assert carried.booster is refit.booster and carried.threshold == calibrated.threshold
    assert carried.best_iteration == refit.best_iteration
    (before,), (after,) = (m.calibrator.calibrated_classifiers_[0].calibrators
                           for m in (calibrated, carried))
    assert (after.a_, after.b_) == (before.a_, before.b_)
    margin = refit.booster.predict(_matrix(refit, test), output_margin=True,
                                   iteration_range=(0, refit.best_iteration + 1))
    expected = 1.0 / (1.0 + np.exp(before.a_ * margin + before.b_))  # sklearn's sigmoid
    p = carried.predict_proba(test)
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(p, calibrated.predict_proba(test))  # another booster scores
    # The first booster is not kept inside the carried calibration.
    assert carried.calibrator.estimator.estimator.booster is refit.booster
    unpickled = cloudpickle.loads(cloudpickle.dumps(carried))
    np.testing.assert_allclose(unpickled.predict_proba(test), p, rtol=0, atol=0)


def _matrix(model, frame: pd.DataFrame):
    import xgboost as xgb

    return xgb.DMatrix(frame[model.feature_names].to_numpy(dtype=np.float32),
                       feature_names=model.feature_names)
