"""The rules around one night's pricing, the training-due rule and the promotion text."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from models.pricing_engine import (
    PRICE_COLUMNS,
    cohort_cutoff,
    fairness_groups,
    fairness_warning,
    horizon_periods,
    price_table,
    priced_scores,
)
from models.promotion import PromotionRules, decide_promotion, decision_markdown
from models.retraining import training_due

END = pd.Timestamp("2026-06-01", tz="UTC")


def test_cohort_cutoff_needs_feature_history_and_follow_up() -> None:
    long_ago = END - pd.Timedelta(days=400)
    assert cohort_cutoff(END, long_ago, 60) == END - pd.Timedelta(days=60)
    # A short lake moves the cutoff later, to 90 days after the first usage...
    assert cohort_cutoff(END, END - pd.Timedelta(days=120), 60) == END - pd.Timedelta(days=30)
    # ... and under 14 days of follow-up left there is no cohort; nor without usage.
    assert cohort_cutoff(END, END - pd.Timedelta(days=100), 60) is None
    assert cohort_cutoff(END, pd.NaT, 60) is None and cohort_cutoff(END, None, 60) is None


def test_horizon_periods_are_label_horizons() -> None:
    assert horizon_periods(12, 30) == pytest.approx(365.25 / 30)


def _scores() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["b", "a", "c"], "risk_score": [1.0, 2.0, 3.0],
                         "dynamic_price": [100.0, 200.0, 300.0], "elasticity": [-1.0] * 3})


def _priced(scores: pd.DataFrame) -> pd.DataFrame:
    priced = scores.copy()
    for column in PRICE_COLUMNS:
        priced[column] = 1.0
    priced["dynamic_price"] = [90.0, 190.0, 290.0]
    return priced


def test_the_prices_join_the_scores_customer_for_customer() -> None:
    scores = _scores()
    prices = price_table(_priced(scores))
    assert list(prices.columns) == ["user_id", *PRICE_COLUMNS]
    joined = priced_scores(scores, prices.iloc[[2, 0, 1]])  # any row order in the file
    assert joined["user_id"].tolist() == ["b", "a", "c"]
    assert joined["dynamic_price"].tolist() == [90.0, 190.0, 290.0]  # pricing's, not scoring's
    assert joined["risk_score"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="do not match"):
        priced_scores(scores, prices.iloc[:2])


def test_fairness_warning_names_each_flagged_group() -> None:
    fairness = pd.DataFrame({"dimension": ["city", "city"], "group": ["Pune", "Delhi"],
                             "customers": [40, 50], "mean_ratio": [1.12, 1.0],
                             "gap": [0.11, -0.01], "flagged": [True, False]})
    fairness.attrs["overall_mean_ratio"] = 1.01
    text = fairness_warning(fairness, 0.05)
    assert text.startswith("# Fairness warning: 1 group(s) priced more than 5% away")
    assert "- city = Pune: 40 customers, mean ratio 1.1200 (gap +0.1100)" in text
    assert "Delhi" not in text


def test_training_is_due_when_forced_without_champion_or_when_old() -> None:
    day = dt.date(2026, 6, 10)
    assert training_due(day, True, [], "2026-06-09", 7).reason == "forced"
    missing = training_due(day, False, ["bbx-segmentation"], None, 7)
    assert missing.due and "bbx-segmentation" in missing.reason
    assert training_due(day, False, [], None, 7).due
    assert not training_due(day, False, [], "2026-06-04", 7).due  # 6 days ago
    assert training_due(day, False, [], "2026-06-03", 7).due  # 7 days ago
    rerun = training_due(day, False, [], "2026-06-10", 7)  # trained tonight already
    assert not rerun.due and "0 days ago" in rerun.reason


def test_the_promotion_text_says_the_verdict_and_the_rule() -> None:
    rules = PromotionRules("pr_auc", 0.002, 0.01)
    challenger = {"pr_auc": 0.40, "brier": 0.05, "ece": 0.01}
    kept = decide_promotion(challenger, {"pr_auc": 0.45, "brier": 0.05, "ece": 0.01}, rules, "4")
    text = decision_markdown(kept, "5")
    assert text.startswith("# Churn challenger v5: not promoted")
    assert kept.reason in text and "| pr_auc | 0.4000 | 0.4500 |" in text
    first = decision_markdown(decide_promotion(challenger, None, rules), "1")
    assert "promoted to champion" in first and "| pr_auc | 0.4000 |  |" in first


def test_fairness_groups_are_city_and_age_band_or_unknown() -> None:
    users = pd.DataFrame({"city": ["Pune", None],
                          "date_of_birth": [pd.Timestamp("1990-06-01", tz="UTC"), pd.NaT]},
                         index=["a", "b"])
    groups = fairness_groups(pd.Series(["a", "b", "c"]), users, dt.date(2026, 6, 1),
                             [25, 35, 45, 55, 65])
    assert groups["city"].tolist() == ["Pune", "unknown", "unknown"]
    assert groups["age_band"].tolist() == ["35-44", "unknown", "unknown"]
