"""What the app's screens read: shapes, enums, idempotent reruns, alerts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from bson import ObjectId

from tasks import app_views
from tasks.app_views import (
    ALERTS_COLLECTION,
    MODEL_METRICS_COLLECTION,
    PROPOSALS_COLLECTION,
    SCAN_HISTORY_COLLECTION,
    AppViewsError,
    write_app_views,
)
from tasks.publish import publish_scores

NIGHT_1 = dt.date(2026, 3, 1)
NIGHT_2 = dt.date(2026, 3, 2)
BASIC, PREMIUM = str(ObjectId()), str(ObjectId())

# ../shared/broadbandx-schema.md, "Collections the app already displays".
SCAN_REQUIRED = {"scanDate", "scanType", "totalCustomers", "highRisk", "mediumRisk", "lowRisk",
                 "averageRiskScore", "highestRiskScore", "topAtRiskCustomers", "scanDuration",
                 "status", "createdAt", "updatedAt"}
SCAN_TYPES = {"scheduled", "manual", "automatic"}
SCAN_STATUSES = {"completed", "failed", "partial"}
RISK_LEVELS = {"High", "Medium"}
PROPOSAL_REQUIRED = {"title", "description", "model", "changes", "status", "createdBy",
                     "expiresAt", "projectedImpact", "createdAt", "updatedAt"}
CHANGE_REQUIRED = {"plan", "planName", "currentPrice", "proposedPrice", "changePercent", "reason"}
# The pipeline's additions to a change (Mongoose keeps fields it does not know).
CHANGE_EXTRA = {"_id", "proposedYearlyPrice", "anchorPrice", "bandMin", "bandMax"}
PROPOSAL_STATUSES = {"pending", "approved", "rejected", "applied", "expired"}


def _scores(risk_scores: list[float], users: list[str] | None = None,
            price_ratio: float = 0.9, banded: bool = False) -> pd.DataFrame:
    """Scores as the scoring step writes them; `banded`: as the pricing step leaves
    them (each plan's band around its anchor, here the list price, yearly at 10% off)."""
    n = len(risk_scores)
    users = users or [str(ObjectId()) for _ in range(n)]
    bands = ["high" if r > 70 else "medium" if r >= 40 else "low" for r in risk_scores]
    plan_ids = [BASIC if i % 3 else PREMIUM for i in range(n)]
    base = [499.0 if p == BASIC else 1199.0 for p in plan_ids]
    frame = pd.DataFrame({
        "user_id": users,
        "plan_id": plan_ids,
        "plan_name": ["Basic" if p == BASIC else "Premium" for p in plan_ids],
        "churn_probability": [r / 200 for r in risk_scores],
        "risk_score": risk_scores,
        "risk_band": bands,
        "segment_id": [i % 2 for i in range(n)],
        "segment_name": ["Budget Users" if i % 2 else "Value-Seekers" for i in range(n)],
        "elasticity": [-2.0 if i % 2 else -1.2 for i in range(n)],
        "base_price": base,
        # Premium customers keep the base price: that plan must not be proposed.
        "dynamic_price": [b * price_ratio if p == BASIC else b
                          for b, p in zip(base, plan_ids, strict=True)],
        "demand": [0.4] * n,
        "price_term_demand": [0.04] * n,
        "price_term_elasticity": [-0.1] * n,
        "price_term_risk": [-0.04] * n,
        "currency": ["INR"] * n,
        "churn_model_version": ["3"] * n,
        "segment_model_version": ["2"] * n,
    })
    if banded:
        frame["anchor_price"] = frame["base_price"]
        frame["band_low"] = 0.8 * frame["base_price"]
        frame["band_high"] = 1.2 * frame["base_price"]
        frame["anchor_source"] = "recorded"
        frame["yearly_factor"] = 0.9
    return frame


def _publish(settings, tmp_path, scores: pd.DataFrame, as_of: dt.date, run_id: str) -> str:
    path = tmp_path / f"{run_id}.parquet"
    scores.to_parquet(path)
    publish_scores(settings.mongo.uri, settings, as_of, run_id, str(path))
    return str(path)


@pytest.fixture()
def db(settings, mongo_client):
    database = mongo_client[settings.mongo.database]
    database.users.insert_many([
        {"_id": ObjectId(), "role": "customer", "email": "c@x.example",
         "createdAt": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)},
        {"_id": ObjectId(), "role": "admin", "email": "admin1@x.example",
         "createdAt": dt.datetime(2025, 1, 2, tzinfo=dt.UTC)},
    ])
    return database


def _started() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)


def test_scan_history_has_the_apps_fields_enums_and_top_ten(settings, db, tmp_path) -> None:
    risk = [5.0 + 90 * i / 29 for i in range(30)]  # 30 customers, 0..95
    scores = _scores(risk)
    path = _publish(settings, tmp_path, scores, NIGHT_1, "run-1")
    write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1", path, _started())

    scans = list(db[SCAN_HISTORY_COLLECTION].find())
    assert len(scans) == 1
    scan = scans[0]
    assert set(scan) >= SCAN_REQUIRED
    assert scan["scanType"] in SCAN_TYPES and scan["scanType"] == "scheduled"
    assert scan["status"] in SCAN_STATUSES and scan["status"] == "completed"
    # A past night is charted on its own day, as its latest scan (was: midnight, so any
    # automatic scan of the app that day hid it from the trends chart).
    assert scan["scanDate"] == dt.datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=dt.UTC)
    bands = scores["risk_band"].value_counts()
    assert (scan["highRisk"], scan["mediumRisk"], scan["lowRisk"]) == (
        bands["high"], bands["medium"], bands["low"])
    assert scan["totalCustomers"] == 30
    assert scan["averageRiskScore"] == pytest.approx(sum(risk) / 30, abs=0.01)
    assert scan["highestRiskScore"] == pytest.approx(95.0)
    assert 0 <= scan["averageRiskScore"] <= scan["highestRiskScore"] <= 100
    top = scan["topAtRiskCustomers"]
    assert len(top) == 10
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top),
                                                       reverse=True)
    assert top[0]["userId"] == ObjectId(scores.loc[29, "user_id"])
    for entry in top:
        assert isinstance(entry["userId"], ObjectId)
        assert 0 <= entry["probability"] <= 100
        assert entry["riskLevel"] in RISK_LEVELS
        assert entry["riskLevel"] == ("High" if entry["probability"] > 70 else "Medium")
    assert scan["scanDuration"] >= 90_000  # milliseconds since the run started


def test_tonights_scan_carries_the_time_the_run_finished(settings, db, tmp_path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    path = _publish(settings, tmp_path, _scores([20.0, 50.0, 80.0]), today, "run-t")
    before = dt.datetime.now(dt.UTC)
    write_app_views(settings.mongo.uri, settings, today, "run-t", path, _started())
    after = dt.datetime.now(dt.UTC)
    scan = db[SCAN_HISTORY_COLLECTION].find_one()
    if after.date() == today:  # not run across midnight UTC
        assert before - dt.timedelta(milliseconds=1) <= scan["scanDate"] <= after
        assert scan["scanDate"] > dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
    assert scan["asOf"] == dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)


def test_pricing_proposal_has_the_apps_fields_and_proposes_only_moved_plans(
    settings, db, tmp_path
) -> None:
    scores = _scores([10.0 + i for i in range(30)], banded=True)
    path = _publish(settings, tmp_path, scores, NIGHT_1, "run-1")
    result = write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1", path, _started())

    proposals = list(db[PROPOSALS_COLLECTION].find())
    assert len(proposals) == 1 and result.proposal_plans == 1
    proposal = proposals[0]
    assert set(proposal) >= PROPOSAL_REQUIRED
    assert proposal["status"] in PROPOSAL_STATUSES and proposal["status"] == "pending"
    admin = db.users.find_one({"role": "admin"})
    assert proposal["createdBy"] == admin["_id"]
    expected_expiry = dt.datetime.now(dt.UTC) + dt.timedelta(
        days=settings.publish.proposal_expiry_days)
    assert abs((proposal["expiresAt"] - expected_expiry).total_seconds()) < 60
    assert set(proposal["model"]) >= {"name", "version", "formula", "weights"}
    assert set(proposal["model"]["weights"]) == {"alpha", "beta", "gamma"}
    assert set(proposal["projectedImpact"]) == {"revenueChange", "churnReduction",
                                                "customersSaved"}
    [change] = proposal["changes"]  # Premium kept its price: not proposed
    assert set(change) == CHANGE_REQUIRED | CHANGE_EXTRA
    assert change["plan"] == ObjectId(BASIC) and change["planName"] == "Basic"
    assert change["currentPrice"] == 499.0
    assert change["proposedPrice"] == round(499.0 * 0.9) == 449.0
    assert change["changePercent"] == pytest.approx((449 - 499) / 499 * 100, abs=0.01)
    # The yearly list price at the plan's yearly discount (10% off 12 months).
    assert change["proposedYearlyPrice"] == round(12 * 0.9 * 449.0)
    assert (change["bandMin"], change["anchorPrice"], change["bandMax"]) == pytest.approx(
        (0.8 * 499, 499.0, 1.2 * 499))
    assert "Premium" in result.proposal_skipped and "within" in result.proposal_skipped["Premium"]
    # A retried write of the same run gives the changes the same _ids; another run new ones.
    write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1", path, _started())
    assert db[PROPOSALS_COLLECTION].find_one()["changes"][0]["_id"] == change["_id"]
    write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1b", path, _started())
    assert db[PROPOSALS_COLLECTION].find_one()["changes"][0]["_id"] != change["_id"]
    basic_customers = int((scores["plan_id"] == BASIC).sum())
    assert proposal["projectedImpact"]["revenueChange"] == pytest.approx(-50.0 * basic_customers)


def test_rerun_of_the_same_night_does_not_duplicate_and_respects_admin_decisions(
    settings, db, tmp_path
) -> None:
    scores = _scores([10.0 + 3 * i for i in range(30)])
    path = _publish(settings, tmp_path, scores, NIGHT_1, "run-1")
    write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1", path, _started())
    path = _publish(settings, tmp_path, scores, NIGHT_1, "run-1b")
    write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1b", path, _started())

    assert db[SCAN_HISTORY_COLLECTION].count_documents({}) == 1
    assert db[SCAN_HISTORY_COLLECTION].find_one()["runId"] == "run-1b"
    assert db[PROPOSALS_COLLECTION].count_documents({}) == 1
    assert db[MODEL_METRICS_COLLECTION].count_documents({}) == 1

    # An admin approves; a third rerun must neither reset it nor add a second proposal.
    db[PROPOSALS_COLLECTION].update_one({}, {"$set": {"status": "approved"}})
    result = write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1c", path, _started())
    assert result.proposal_id is None and "approved" in result.proposal_note
    assert [p["status"] for p in db[PROPOSALS_COLLECTION].find()] == ["approved"]

    # The next night gets its own scan, but no proposal for a plan whose last one is
    # approved and not yet applied (was: a second proposal on top of the first).
    path = _publish(settings, tmp_path, scores, NIGHT_2, "run-2")
    result = write_app_views(settings.mongo.uri, settings, NIGHT_2, "run-2", path, _started())
    assert db[SCAN_HISTORY_COLLECTION].count_documents({}) == 2
    assert db[PROPOSALS_COLLECTION].count_documents({"status": "pending"}) == 0
    assert result.proposal_id is None
    assert "approved but not yet applied" in result.proposal_skipped["Basic"]
    assert "Basic" in result.proposal_note

    # Applied (the app stamps updatedAt): the cool-down holds the plan ...
    applied_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    db[PROPOSALS_COLLECTION].update_one({}, {"$set": {"status": "applied",
                                                      "updatedAt": applied_at}})
    result = write_app_views(settings.mongo.uri, settings, NIGHT_2, "run-2b", path, _started())
    assert result.proposal_id is None and "cool-down" in result.proposal_skipped["Basic"]
    # ... until it has passed; then the night proposes again.
    cooldown = dt.timedelta(days=settings.pricing.proposal_cooldown_days)
    db[PROPOSALS_COLLECTION].update_one(
        {}, {"$set": {"updatedAt": dt.datetime.now(dt.UTC) - cooldown - dt.timedelta(hours=1)}})
    result = write_app_views(settings.mongo.uri, settings, NIGHT_2, "run-2c", path, _started())
    assert result.proposal_id is not None and result.proposal_plans == 1
    assert db[PROPOSALS_COLLECTION].count_documents({"status": "pending"}) == 1


def test_no_admin_user_is_a_clear_error(settings, mongo_client, tmp_path) -> None:
    db = mongo_client[settings.mongo.database]
    db.users.insert_one({"role": "customer", "email": "c@x.example"})
    path = _publish(settings, tmp_path, _scores([20.0, 50.0, 80.0]), NIGHT_1, "run-1")
    with pytest.raises(AppViewsError, match="no admin user .*role: admin"):
        write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1", path, _started())


def test_model_metrics_say_when_the_last_good_night_finished(settings, db, tmp_path) -> None:
    scores = _scores([10.0 + 2 * i for i in range(30)])
    path = _publish(settings, tmp_path, scores, NIGHT_1, "run-1")
    before = dt.datetime.now(dt.UTC)
    write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1", path, _started())
    doc = db[MODEL_METRICS_COLLECTION].find_one({"asOf": dt.datetime(2026, 3, 1, tzinfo=dt.UTC)})
    assert doc["runId"] == "run-1"
    assert doc["lastGoodRunFinishedAt"] >= before.replace(microsecond=0)
    assert doc["customersScored"] == 30
    assert {m["version"] for m in doc["models"].values()} == {"3", "2"}
    assert sum(s["customers"] for s in doc["segments"]) == 30
    assert {s["name"] for s in doc["segments"]} == {"Budget Users", "Value-Seekers"}
    assert doc["pricing"]["weights"] == {"alpha": settings.pricing.alpha,
                                         "beta": settings.pricing.beta,
                                         "gamma": settings.pricing.gamma}


def test_crossing_into_high_raises_one_alert_and_one_event(
    settings, db, tmp_path, monkeypatch
) -> None:
    events: list[dict] = []
    monkeypatch.setattr("prefect.events.emit_event", lambda **kw: events.append(kw))
    users = [str(ObjectId()) for _ in range(4)]
    # Night 1: low, medium, high, low.  Night 2: high, high, high, low.
    night_1 = _scores([20.0, 50.0, 80.0, 10.0], users)
    night_2 = _scores([75.0, 90.0, 85.0, 12.0], users)
    night_2["churn_reasons_probe"] = 0  # extra columns must not break anything
    path = _publish(settings, tmp_path, night_1, NIGHT_1, "run-1")
    write_app_views(settings.mongo.uri, settings, NIGHT_1, "run-1", path, _started())
    assert db[ALERTS_COLLECTION].count_documents({}) == 0 and events == []

    path = _publish(settings, tmp_path, night_2, NIGHT_2, "run-2")
    write_app_views(settings.mongo.uri, settings, NIGHT_2, "run-2", path, _started())
    alerts = {a["userId"]: a for a in db[ALERTS_COLLECTION].find()}
    assert set(alerts) == {ObjectId(users[0]), ObjectId(users[1])}  # user 2 was already high
    first = alerts[ObjectId(users[0])]
    assert (first["previousRiskScore"], first["previousRiskBand"]) == (20.0, "low")
    assert (first["currentRiskScore"], first["currentRiskBand"]) == (75.0, "high")
    assert first["asOf"] == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    assert first["reasons"] == []  # no churnReasons published yet
    assert len(events) == 1
    assert events[0]["event"] == app_views.HIGH_RISK_EVENT
    assert events[0]["payload"]["customers"] == 2
    assert set(events[0]["payload"]["user_ids"]) == {users[0], users[1]}

    # A rerun of night 2 compares with night 1 still, and does not duplicate alerts.
    path = _publish(settings, tmp_path, night_2, NIGHT_2, "run-2b")
    write_app_views(settings.mongo.uri, settings, NIGHT_2, "run-2b", path, _started())
    assert db[ALERTS_COLLECTION].count_documents({}) == 2
    assert {a["runId"] for a in db[ALERTS_COLLECTION].find()} == {"run-2b"}
