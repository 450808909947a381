"""Training set, customer split, segmentation features and the demand factor."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.demand import (
    coming_period_demand,
    hourly_demand_profile,
    network_demand_factor,
)
from features.registry import CHURN_FEATURE_NAMES
from features.segmentation import SEGMENTATION_FEATURE_NAMES, build_segmentation_features
from features.training import (
    build_training_set,
    customer_split_draw,
    split_by_customer,
    split_train_valid_test,
)
from tests.unit.synthetic import make_tables, table, with_customer

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")
D = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def tables():
    return make_tables(n_customers=400, seed=11)


@pytest.fixture(scope="module")
def training(tables):
    cutoffs = [AS_OF - 30 * D - 30 * i * D for i in range(3)]
    return build_training_set(tables, cutoffs, 30, "cancelled")


def test_training_set_shape_and_labels(tables, training) -> None:
    assert {"user_id", "label", "cutoff", *CHURN_FEATURE_NAMES} <= set(training.columns)
    assert training["cutoff"].nunique() == 3
    assert not training.duplicated(["user_id", "cutoff"]).any()
    assert set(training["label"].unique()) == {0, 1}
    # A label 1 means that customer's cancellation request lies in the window.
    subs = tables.subscriptions.set_index("user_id")
    positives = training[training["label"] == 1]
    requested = subs.loc[positives["user_id"], "cancel_requested_at"].reset_index(drop=True)
    cut = positives["cutoff"].reset_index(drop=True)
    assert ((requested > cut) & (requested <= cut + 30 * D)).all()


def test_split_has_no_customer_in_both(training) -> None:
    train, valid = split_by_customer(training, 0.25, seed=7)
    assert set(train["user_id"]).isdisjoint(valid["user_id"])
    assert len(train) + len(valid) == len(training)
    share = valid["user_id"].nunique() / training["user_id"].nunique()
    assert 0.2 < share < 0.3
    assert valid["label"].sum() > 0 and train["label"].sum() > 0
    # Deterministic and independent of row order.
    shuffled = training.sample(frac=1.0, random_state=1)
    _, valid2 = split_by_customer(shuffled, 0.25, seed=7)
    assert set(valid2["user_id"]) == set(valid["user_id"])
    _, valid3 = split_by_customer(training, 0.25, seed=8)
    assert set(valid3["user_id"]) != set(valid["user_id"])


def test_train_valid_test_split_by_customer_and_time(training) -> None:
    splits = split_train_valid_test(training, 0.15, 0.15, test_cutoffs=1, seed=7)
    latest = training["cutoff"].max()
    assert splits.test_cutoffs == (latest,)
    # No customer in two splits.
    sets = [set(s["user_id"]) for s in (splits.train, splits.valid, splits.test)]
    assert sets[0].isdisjoint(sets[1]) and sets[0].isdisjoint(sets[2])
    assert sets[1].isdisjoint(sets[2])
    # Out of time: no booster row is at the latest cutoff; the test and calibration are
    # only there, the pooled test has the test customers everywhere.
    assert (splits.train["cutoff"] < latest).all() and (splits.valid["cutoff"] < latest).all()
    assert (splits.test["cutoff"] == latest).all() and len(splits.test)
    assert (splits.calibration["cutoff"] == latest).all()
    assert set(splits.calibration["user_id"]).isdisjoint(sets[2])
    pooled = set(splits.test_pooled["user_id"])
    assert sets[2] <= pooled and pooled.isdisjoint(sets[0] | sets[1])
    assert pooled.isdisjoint(set(splits.calibration["user_id"]))
    assert splits.test_pooled["cutoff"].nunique() == training["cutoff"].nunique()
    # The rows the winner is refitted with: the train customers' among the calibration's.
    refit = splits.latest_train
    assert len(refit) and (refit["cutoff"] == latest).all()
    assert set(refit["user_id"]) == set(splits.calibration["user_id"]) - sets[1]
    assert set(refit["user_id"]).isdisjoint(sets[1] | sets[2])
    # Roughly 70/15/15 of the customers.
    customers = training["user_id"].nunique()
    shares = [len(x) / customers for x in sets]
    assert 0.6 < shares[0] < 0.8 and 0.08 < shares[1] < 0.22 and 0.08 < shares[2] < 0.22
    # Every row is used once: earlier test-customer rows only in the pooled test.
    earlier_test = splits.test_pooled[splits.test_pooled["cutoff"] < latest]
    assert len(splits.train) + len(splits.valid) + len(splits.test) + len(
        splits.calibration) + len(earlier_test) == len(training)
    # Stable: the same customer lands in the same split on another run / row order.
    again = split_train_valid_test(training.sample(frac=1.0, random_state=3), 0.15, 0.15, 1, 7)
    assert set(again.test["user_id"]) == sets[2]
    with pytest.raises(ValueError, match="cutoff"):
        split_train_valid_test(training, 0.15, 0.15, test_cutoffs=3, seed=7)
    with pytest.raises(ValueError):
        split_train_valid_test(training, 0.6, 0.5, test_cutoffs=1, seed=7)


def test_cutoff_candidates_are_earlier_cutoffs_newest_first() -> None:
    from features.cutoffs import cutoff_candidates, training_cutoffs

    pool = training_cutoffs(dt.date(2026, 6, 1), 30, 16, 7)
    chosen = cutoff_candidates(pool, 1, [(1, 1), (4, 1), (15, 1), (7, 2), (16, 1)])
    assert set(chosen) == {"1x1", "4x1", "15x1", "7x2"}  # 16 earlier ones do not exist
    latest = max(pool)
    assert chosen["1x1"] == [latest - pd.Timedelta(days=7)]
    assert chosen["7x2"][-1] == latest - pd.Timedelta(days=7)
    assert all(c < latest for cs in chosen.values() for c in cs)
    assert [b - a for a, b in zip(chosen["7x2"], chosen["7x2"][1:], strict=False)] == [
        pd.Timedelta(days=14)] * 6


def test_partly_labelled_cutoffs_are_labelled_over_the_days_that_happened(tables) -> None:
    """The cutoffs after the latest labelled one are labelled up to as-of only, say how
    much of the horizon that is, and never land in the test or the calibration."""
    from features.cutoffs import as_of_cutoff, partly_labelled_cutoffs, training_cutoffs
    from features.training import LABEL_WINDOW_SHARE, partly_labelled

    as_of = dt.date(2026, 5, 1)  # the synthetic lake goes on for a month after it
    cutoffs = training_cutoffs(as_of, 30, 4, 7)
    partial = partly_labelled_cutoffs(as_of, 30, 7)
    latest = max(cutoffs)
    assert partial == [latest + k * 7 * D for k in (1, 2, 3)]  # windows of 23, 16, 9 days
    assert partly_labelled_cutoffs(as_of, 30, 30) == []
    data = build_training_set(tables, cutoffs + partial, 30, "cancelled",
                              labels_until=as_of_cutoff(as_of))
    share = data.groupby("cutoff")[LABEL_WINDOW_SHARE].first()
    assert share[cutoffs].eq(1.0).all()
    assert np.allclose(share[partial], [23 / 30, 16 / 30, 9 / 30])
    # A label 1 is a cancellation request inside the days that happened, never after as-of.
    subs = tables.subscriptions.set_index("user_id")
    positives = data[data["label"] == 1]
    requested = subs.loc[positives["user_id"], "cancel_requested_at"].to_numpy()
    window_end = positives["cutoff"] + pd.to_timedelta(positives[LABEL_WINDOW_SHARE] * 30,
                                                       unit="D")
    assert (requested > positives["cutoff"].to_numpy()).all()
    assert (requested <= window_end.to_numpy()).all()
    assert (requested <= as_of_cutoff(as_of)).all()
    # The same cutoff labelled over the whole horizon counts those and the later ones.
    whole = build_training_set(tables, partial[:1], 30, "cancelled")
    cut = data[data["cutoff"] == partial[0]].set_index("user_id")["label"]
    assert (cut <= whole.set_index("user_id")["label"].reindex(cut.index)).all()
    assert whole["label"].sum() > cut.sum() > 0
    splits = split_train_valid_test(data, 0.15, 0.15, test_cutoffs=1, seed=7)
    assert splits.test_cutoffs == (latest,)
    for name in ("test", "calibration", "test_pooled"):
        assert not partly_labelled(getattr(splits, name)).any(), name
    assert partly_labelled(splits.train).any() and partly_labelled(splits.valid).any()
    with pytest.raises(ValueError, match="no labelled day"):
        build_training_set(tables, [as_of_cutoff(as_of)], 30, "cancelled",
                           labels_until=as_of_cutoff(as_of))


def test_customer_split_draw_is_uniform_and_seeded() -> None:
    ids = pd.Series([f"{i:024x}" for i in range(20000)])  # sequential, like ObjectIds
    draw = customer_split_draw(ids, seed=7)
    assert ((draw >= 0) & (draw < 1)).all()
    assert abs(draw.mean() - 0.5) < 0.01 and abs((draw < 0.15).mean() - 0.15) < 0.01
    np.testing.assert_array_equal(draw, customer_split_draw(ids, seed=7))
    assert not np.array_equal(draw, customer_split_draw(ids, seed=8))


def test_segmentation_features_are_finite_and_pit(tables) -> None:
    cut = AS_OF - 40 * D
    seg = build_segmentation_features(tables, cut)
    assert list(seg.columns) == list(SEGMENTATION_FEATURE_NAMES)
    assert np.isfinite(seg.to_numpy()).all()
    assert seg["peak_hour_share"].between(0, 1).all()
    late = tables.usagelogs["timestamp"] >= cut
    cropped = type(tables)(**vars(tables))
    cropped.usagelogs = tables.usagelogs[~late]
    pd.testing.assert_frame_equal(seg, build_segmentation_features(cropped, cut))


def test_peak_hours_are_ist(tables) -> None:
    user = tables.subscriptions.loc[
        tables.subscriptions["subscription_status"].eq("active"), "user_id"
    ].iloc[0]
    day = AS_OF - 3 * D
    usage = table(
        "usagelogs",
        session_id=["aa" * 12, "bb" * 12, "cc" * 12],
        user_id=[user] * 3,
        # 14:00 UTC = 19:30 IST (peak); 13:00 UTC = 18:30 IST; 17:45 UTC = 23:15 IST.
        timestamp=[
            day + pd.Timedelta(hours=14),
            day + pd.Timedelta(hours=13),
            day + pd.Timedelta(hours=17, minutes=45),
        ],
        download_gb=[3.0, 1.0, 6.0],
        upload_gb=0.0,
    )
    t = type(tables)(**vars(tables))
    t.usagelogs = usage
    seg = build_segmentation_features(t, AS_OF)
    assert seg.loc[user, "peak_hour_share"] == pytest.approx(0.3)


def daily_usage(values: list[float], cutoff: pd.Timestamp) -> pd.DataFrame:
    """One session per day, the last value on the day before the cutoff."""
    n = len(values)
    return table(
        "usagelogs",
        session_id=[f"{i:024x}" for i in range(n)],
        user_id="ab" * 12,
        timestamp=[cutoff - (n - i) * D + pd.Timedelta(hours=12) for i in range(n)],
        download_gb=values,
        upload_gb=0.0,
    )


def test_demand_factor() -> None:
    cut = AS_OF
    busy_now = daily_usage([10.0] * 83 + [50.0] * 7, cut)
    quiet_now = daily_usage([50.0] * 83 + [10.0] * 7, cut)
    assert network_demand_factor(busy_now, cut, 7, 90) == pytest.approx(1.0)
    assert network_demand_factor(quiet_now, cut, 7, 90) == pytest.approx(0.0)
    mid = daily_usage([10.0] * 40 + [30.0] * 7 + [50.0] * 36 + [30.0] * 7, cut)
    assert network_demand_factor(mid, cut, 7, 90) == pytest.approx(0.5)
    flat = daily_usage([20.0] * 90, cut)
    assert network_demand_factor(flat, cut, 7, 90) == 0.5
    assert network_demand_factor(flat.iloc[:0], cut, 7, 90) == 0.5
    # A flood after the cutoff changes nothing.
    future = table(
        "usagelogs",
        session_id=["ff" * 12],
        user_id="ab" * 12,
        timestamp=[cut + pd.Timedelta(hours=1)],
        download_gb=1e6,
        upload_gb=0.0,
    )
    flooded = pd.concat([quiet_now, future], ignore_index=True)
    assert network_demand_factor(flooded, cut, 7, 90) == pytest.approx(0.0)


def test_coming_period_demand_follows_weekday_and_level() -> None:
    cut = AS_OF  # a Monday
    days = [cut - (90 - i) * D for i in range(90)]
    weekly = daily_usage([20.0 if d.dayofweek >= 5 else 10.0 for d in days], cut)
    week = coming_period_demand(weekly, cut, 7, 90)
    assert week["forecast_daily_gb"] == pytest.approx((5 * 10 + 2 * 20) / 7, rel=1e-6)
    assert week["weekday_factor_5"] == pytest.approx(2 * week["weekday_factor_0"])
    assert week["demand"] == 0.5  # every full week carries the same load
    # Tomorrow is a Monday: the quietest kind of day in the baseline; a Saturday the busiest.
    assert coming_period_demand(weekly, cut, 1, 90)["demand"] == pytest.approx(0.0)
    saturday = cut + 5 * D
    weekly_to_sat = daily_usage([20.0 if (saturday - (90 - i) * D).dayofweek >= 5 else 10.0
                                 for i in range(90)], saturday)
    assert coming_period_demand(weekly_to_sat, saturday, 1, 90)["demand"] == pytest.approx(1.0)
    # The season moved up in the last four weeks: the coming week is the busiest yet.
    rising = daily_usage([10.0] * 62 + [30.0] * 28, cut)
    assert coming_period_demand(rising, cut, 7, 90)["demand"] == pytest.approx(1.0)
    assert coming_period_demand(rising.iloc[:0], cut, 7, 90)["demand"] == 0.5
    with pytest.raises(ValueError):
        coming_period_demand(rising, cut, 0, 90)


def test_hourly_demand_profile() -> None:
    cut = AS_OF
    usage = daily_usage([10.0] * 30, cut)  # every session at 12:00 UTC = 17:30 IST
    evening = usage.assign(timestamp=usage["timestamp"] + pd.Timedelta(hours=2),
                           download_gb=30.0)  # 19:30 IST
    profile = hourly_demand_profile(pd.concat([usage, evening], ignore_index=True), cut, 30)
    assert list(profile.index) == list(range(24))
    assert profile.loc[19, "demand"] == 1.0 and profile.loc[3, "demand"] == 0.0
    assert profile.loc[17, "demand"] == pytest.approx(1 / 3)
    assert profile["load_share"].sum() == pytest.approx(1.0)
    assert profile.loc[19, "mean_daily_gb"] == pytest.approx(30.0)
    assert (hourly_demand_profile(usage.iloc[:0], cut, 30)["demand"] == 0.5).all()


def test_new_customer_rates_use_only_live_days(tables) -> None:
    user = "ee" * 12
    start = AS_OF - 5 * D
    t = with_customer(tables, user, start)
    t.usagelogs = table(
        "usagelogs",
        session_id=[f"{i:024x}" for i in range(5)],
        user_id=[user] * 5,
        timestamp=[start + i * D + pd.Timedelta(hours=2) for i in range(5)],
        download_gb=2.0,
        upload_gb=0.0,
    )
    row = build_segmentation_features(t, AS_OF).loc[user]
    assert row["active_day_share_30d"] == pytest.approx(1.0)
    assert row["usage_cv_30d"] == pytest.approx(0.0)  # same GB every live day
    assert row["monthly_gb"] == pytest.approx(10.0 * 30 / 5)


def test_training_rows_say_how_much_of_each_window_was_covered() -> None:
    """Usage kept only for the last 50 days of the lake: every training cutoff's usage
    windows count only the covered days, and usage_covered_days says how many."""
    import datetime as dt

    from features.cutoffs import training_cutoffs
    from features.training import build_training_set

    tables = make_tables(n_customers=300, seed=11)
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    begins = as_of - pd.Timedelta(days=50)
    tables.usagelogs = tables.usagelogs[tables.usagelogs["timestamp"] >= begins]
    cutoffs = training_cutoffs(dt.date(2026, 6, 1), 30, 6, 7)
    data = build_training_set(tables, cutoffs, 30, "cancelled")
    first_day = tables.usagelogs["timestamp"].min().floor("D")
    covered = ((data["cutoff"] - first_day) / pd.Timedelta(days=1)).clip(0, 126)
    assert np.allclose(data["usage_covered_days"], covered)
    assert (data["usage_covered_days"] < 21).all()  # the latest cutoff is 30 days back
    # Nothing is counted from before the first recorded session: there, it is unknown.
    early = data[data["usage_covered_days"] == 0]
    assert len(early) and early["usage_gb_90d"].isna().all() and early["sessions_30d"].isna().all()


def test_scoring_reads_the_coverage_the_latest_labelled_rows_had() -> None:
    """Usage and logins kept for the last 50 days: the latest labelled cutoff (30 days
    back) saw 20 of them, so a model trained there scores on the last 20 days only, and
    its scoring rows have the coverage of its calibration rows. A lake covering the
    features' windows at that cutoff is not capped."""
    import datetime as dt

    from features.coverage import event_days
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff, training_cutoffs
    from features.training import build_training_set, scoring_history_days

    full = make_tables(n_customers=300, seed=11)
    as_of = dt.date(2026, 6, 1)
    cutoffs = training_cutoffs(as_of, 30, 6, 7)
    assert scoring_history_days(event_days(full), cutoffs) == {}
    uncapped = build_churn_features(full, as_of_cutoff(as_of))
    assert build_churn_features(full, as_of_cutoff(as_of), history_days={}).equals(uncapped)

    tables = make_tables(n_customers=300, seed=11)
    begins = as_of_cutoff(as_of) - pd.Timedelta(days=50)
    tables.usagelogs = tables.usagelogs[tables.usagelogs["timestamp"] >= begins]
    tables.auditlogs = tables.auditlogs[tables.auditlogs["timestamp"] >= begins]
    data = build_training_set(tables, cutoffs, 30, "cancelled")
    latest = data[data["cutoff"] == max(cutoffs)]
    history = scoring_history_days(event_days(tables), cutoffs)
    assert set(history) == {"usagelogs", "auditlogs"}
    assert history["usagelogs"] == latest["usage_covered_days"].iloc[0] == pytest.approx(20.0)
    # Without the cap scoring would see 50 days where every labelled row saw 20 or fewer.
    assert (build_churn_features(tables, as_of_cutoff(as_of))["usage_covered_days"] == 50).all()
    scoring = build_churn_features(tables, as_of_cutoff(as_of), history_days=history)
    for name in ("usage_covered_days", "login_covered_days"):
        assert (scoring[name] == latest[name].iloc[0]).all()
    # Nothing older than the cap is read: the 90-day volume is the last 20 days' volume.
    recent = tables.usagelogs[tables.usagelogs["timestamp"]
                              >= as_of_cutoff(as_of) - pd.Timedelta(days=20)]
    volume = (recent["download_gb"] + recent["upload_gb"]).groupby(recent["user_id"]).sum()
    assert np.allclose(scoring["usage_gb_90d"], volume.reindex(scoring.index).fillna(0.0))
    # The windowed features of a cutoff never reach before the first recorded session.
    first_day = tables.usagelogs["timestamp"].min().floor("D")
    assert (data["usage_covered_days"] <= ((data["cutoff"] - first_day).dt.days).clip(0)).all()
    # With the partly labelled cutoffs (the newest 9 days before as-of) the model was
    # trained on 41 of the 50 days, and scores on those.
    from features.cutoffs import partly_labelled_cutoffs

    partial = partly_labelled_cutoffs(as_of, 30, 7)
    assert scoring_history_days(event_days(tables), cutoffs + partial)["usagelogs"] == \
        pytest.approx(41.0)
