"""Continuing a simulated world by N days: the app's own writers and ordinary customer
activity, every document valid for the app, history untouched, deterministic."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, defaultdict

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from simulator import APP_COLLECTIONS, TRUTH_COLLECTION, simulate
from simulator.app_rules import unique_violations, violations
from simulator.continuation import (
    STATE_COLLECTION,
    ContinuationError,
    continue_world,
    price_hazard_multiplier,
)
from simulator.truth import read_truth

END = dt.date(2026, 11, 25)
OLD_END = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)  # first instant after the history
DAYS = 2
NEW_END = OLD_END + dt.timedelta(days=DAYS)
WORLD = {"customers": 400, "days": 45, "seed": 17, "end": END, "annual_churn": 0.9}
from tests.test_simulator import dated_fields  # noqa: E402

APP_WRITTEN = (*APP_COLLECTIONS, "usageanalytics", "churnscanhistories")
# Scheduled dates (not events) may lie after the continued days.
SCHEDULED = {"endDate", "autoRenewal.nextRenewalDate", "dueDate", "billingPeriod.end"}




def snapshot(db: Database) -> dict[str, dict]:
    return {name: {d["_id"]: d for d in db[name].find()} for name in APP_WRITTEN}


@pytest.fixture(scope="module")
def continued(mongo_server_uri: str):
    """One world, prepared like an app would leave it, continued by DAYS days."""
    client: MongoClient = MongoClient(mongo_server_uri, tz_aware=True)
    db = client[f"t_{uuid.uuid4().hex[:10]}"]
    try:
        simulate(db, **WORLD)
        live = list(db.subscriptions.find({"status": "active"}).sort("endDate", 1))
        # Contracts ending on the first continued day: the 00:01 run of the next day sees them.
        due = [s for s in live if OLD_END <= s["endDate"] < OLD_END + dt.timedelta(days=1)]
        assert len(due) >= 6
        # The customers behind three contracts ending now switched auto-renewal off; one
        # more contract already sat in its grace period.
        lapsing = [s["_id"] for s in due[:3]]
        db.subscriptions.update_many(
            {"_id": {"$in": lapsing}}, {"$set": {"autoRenewal.enabled": False}}
        )
        in_grace = live[-1]["_id"]
        db.subscriptions.update_one(
            {"_id": in_grace},
            {"$set": {"status": "grace_period", "endDate": OLD_END - dt.timedelta(days=4)}},
        )
        renewing = {s["_id"]: s for s in due[3:]}
        planned = {
            t["userId"]: t["churnDate"]
            for t in db[TRUTH_COLLECTION].find(
                {"churnDate": {"$gte": OLD_END, "$lt": NEW_END - dt.timedelta(days=0)}}
            )
        }
        before = snapshot(db)
        truth_before = {t["_id"]: t for t in db[TRUTH_COLLECTION].find()}
        report = continue_world(db, DAYS, signup_rate=0.02)
        yield {
            "db": db,
            "report": report,
            "before": before,
            "truth_before": truth_before,
            "lapsing": lapsing,
            "in_grace": in_grace,
            "renewing": renewing,
            "planned": planned,
        }
    finally:
        client.drop_database(db.name)
        client.close()


def new_documents(c, name: str) -> list[dict]:
    before = c["before"][name]
    return [d for d in c["db"][name].find() if d["_id"] not in before]


def test_every_document_passes_the_app_rules(continued) -> None:
    db = continued["db"]
    found = []
    for name in APP_WRITTEN:
        documents = list(db[name].find())
        found += [f"{name} {d['_id']}: {v}" for d in documents for v in violations(name, d)]
        found += unique_violations(name, documents)
    assert found == []


def test_usage_batches_share_a_timestamp_per_user_and_hour(continued) -> None:
    db = continued["db"]
    generated = [
        d for d in new_documents(continued, "usagelogs") if d["deviceId"].startswith("gen-")
    ]
    batches: dict[tuple, list[dict]] = defaultdict(list)
    for d in generated:
        batches[(d["userId"], d["timestamp"])].append(d)
    sizes = Counter(len(b) for b in batches.values())
    assert set(sizes) == {1, 2, 3}
    for batch in batches.values():
        assert len({d["deviceId"] for d in batch}) == len(batch)
        assert all(d["download"] > 0 and d["upload"] > 0 for d in batch)
    runs = sorted({d["timestamp"] for d in generated})
    assert len(runs) == 24 * DAYS  # one run an hour, one timestamp per run
    assert [r.replace(microsecond=0, minute=0, second=0) for r in runs] == [
        OLD_END + dt.timedelta(hours=h) for h in range(24 * DAYS)
    ]
    assert any(r.microsecond for r in runs)  # milliseconds, as Date.now() has them
    users_per_run = Counter(t for _, t in batches)
    active_now = db.subscriptions.count_documents({"status": "active"})
    assert min(users_per_run.values()) >= 0.9 * active_now
    # About 60% of the cap a month: the evening peak carries more than the night.
    by_hour = defaultdict(float)
    for d in generated:
        by_hour[(d["timestamp"].hour + 5) % 24] += d["download"]  # roughly India's hour
    assert by_hour[20] > 3 * by_hour[3]


def test_analytics_are_rolling_30_day_megabytes(continued) -> None:
    analytics = new_documents(continued, "usageanalytics")
    runs = sorted({d["createdAt"].replace(microsecond=0) for d in analytics})
    assert len(runs) == 6 * DAYS
    last = max(d["createdAt"] for d in analytics)
    latest = [d for d in analytics if d["createdAt"] == last]
    db = continued["db"]
    since = last - dt.timedelta(days=30)
    written: dict = defaultdict(float)
    for log in db.usagelogs.find(
        {"timestamp": {"$gte": since, "$lte": last}}, {"userId": 1, "download": 1, "upload": 1}
    ):
        written[log["userId"]] += (log["download"] + log["upload"]) / 1e6
    ratios = sorted(
        d["metrics"]["dataUsed"] / written[d["user"]] for d in latest if written[d["user"]]
    )
    assert len(ratios) > 200
    assert 0.7 < ratios[len(ratios) // 2] < 1.4  # MB, not GB (that would be 0.001)


def test_expiry_service_renews_lapses_and_suspends(continued) -> None:
    db = continued["db"]
    for sub_id in continued["lapsing"]:
        sub = db.subscriptions.find_one({"_id": sub_id})
        assert sub["status"] == "grace_period"
        assert OLD_END <= sub["updatedAt"] < NEW_END
    suspended = db.subscriptions.find_one({"_id": continued["in_grace"]})
    assert suspended["status"] == "suspended"
    assert suspended["serviceHistory"][-1]["type"] == "suspended"
    renewed = 0
    for sub_id, old in continued["renewing"].items():
        sub = db.subscriptions.find_one({"_id": sub_id})
        if sub["status"] == "cancelled":
            continue
        renewed += 1
        months = 12 if sub["billingCycle"] == "yearly" else 1
        assert sub["endDate"] > old["endDate"] + dt.timedelta(days=27 * months)
        entry = sub["paymentHistory"][-1]
        assert (
            OLD_END <= entry["date"] < NEW_END
            and len(sub["paymentHistory"]) == len(old["paymentHistory"]) + 1
        )
        assert entry["amount"] == old["pricing"]["totalAmount"]  # the price they signed at
        assert (
            db.payments.count_documents({"subscription": sub_id, "createdAt": entry["date"]}) == 1
        )
    assert renewed >= 3


def test_churn_scans_every_six_hours_with_zero_counts(continued) -> None:
    scans = sorted(new_documents(continued, "churnscanhistories"), key=lambda d: d["scanDate"])
    assert [s["scanDate"].replace(microsecond=0) for s in scans] == [
        OLD_END + dt.timedelta(hours=6 * k) for k in range(4 * DAYS)
    ]
    for scan in scans:
        assert scan["scanType"] == "automatic" and scan["status"] == "completed"
        assert scan["highRisk"] == scan["mediumRisk"] == scan["lowRisk"] == 0
        assert scan["totalCustomers"] > 200
        assert 0 <= scan["averageRiskScore"] <= scan["highestRiskScore"] <= 100
        assert len(scan["topAtRiskCustomers"]) <= 10


def test_customers_sign_up_cancel_log_in_and_write(continued) -> None:
    db, report = continued["db"], continued["report"]
    new_users = new_documents(continued, "users")
    assert report.events["sign_ups"] == len(new_users) > 0
    new_subs = new_documents(continued, "subscriptions")
    assert {s["user"] for s in new_subs} == {u["_id"] for u in new_users}
    for name in ("payments", "billings"):
        assert {u["_id"] for u in new_users} <= {d["user"] for d in new_documents(continued, name)}
    assert db[TRUTH_COLLECTION].count_documents(
        {"userId": {"$in": [u["_id"] for u in new_users]}}
    ) == len(new_users)
    # Cancellations the world had planned happen on their day, and go to the truth.
    planned = continued["planned"]
    assert planned
    cancelled = {
        s["user"]: s
        for s in db.subscriptions.find({"status": "cancelled", "updatedAt": {"$gte": OLD_END}})
    }
    assert set(planned) <= set(cancelled)
    for user, sub in cancelled.items():
        assert sub["serviceHistory"][-1]["type"] == "cancelled"
        truth = db[TRUTH_COLLECTION].find_one({"_id": user})
        assert truth["churnDate"] == sub["cancellation"]["requestDate"]
    logins = [d for d in new_documents(continued, "auditlogs") if d["action"] == "login"]
    assert len(logins) > 50
    last_login = {u["_id"]: u.get("lastLogin") for u in db.users.find()}
    for login in logins:
        assert last_login[login["userId"]] >= login["timestamp"]
    assert new_documents(continued, "supporttickets")
    assert new_documents(continued, "feedbacks")


def test_nothing_after_the_new_end_and_history_untouched(continued) -> None:
    db, before = continued["db"], continued["before"]
    for name in APP_WRITTEN:
        for doc in db[name].find():
            old = before[name].get(doc["_id"])
            if old is not None and doc == old:
                continue
            for path, when in dated_fields(doc):
                if path not in SCHEDULED:
                    assert when < NEW_END, (name, path, when)
            if old is None:
                assert doc["_id"].generation_time >= OLD_END - dt.timedelta(hours=1), name
                continue
            # Only the app's current-state documents change, and only inside the new days.
            assert name in ("users", "subscriptions", "supporttickets"), name
            assert OLD_END <= doc["updatedAt"] < NEW_END, (name, doc["_id"])
            for path, when in dated_fields(old):
                if path.endswith("updatedAt") or path in SCHEDULED or path == "lastLogin":
                    continue
                assert when in [w for p, w in dated_fields(doc) if p == path], (name, path)


def test_the_truth_covers_the_new_end(continued) -> None:
    db = continued["db"]
    truth = read_truth(db, [NEW_END.date()])
    # The customers the initial world simulated: while its future covers the horizon, a
    # sign-up's outcome is not known yet, so sign-ups are not in this as-of.
    signed_up = {u["_id"] for u in new_documents(continued, "users")}
    live = {s["user"] for s in db.subscriptions.find({"status": "active"})} - signed_up
    assert set(truth["user_id"]) == {str(u) for u in live}
    assert truth["p_cancel_30d"].between(0, 1).all()
    state = db[STATE_COLLECTION].find_one()
    assert state["observedThrough"] == NEW_END and state["continuedDays"] == DAYS


def test_a_price_rise_raises_the_hazard_modestly() -> None:
    import numpy as np

    rise = price_hazard_multiplier(
        np.array([-0.3, -1.2, -2.0]), np.full(3, 550.0), np.full(3, 500.0)
    )
    assert np.all(rise > 1) and rise[0] < rise[1] < rise[2] < 1.25
    cut = price_hazard_multiplier(np.array([-1.2]), np.array([450.0]), np.array([500.0]))
    assert cut[0] < 1


def test_same_seed_same_continuation(mongo_db: Database, mongo_client: MongoClient) -> None:
    other = mongo_client[f"t_{uuid.uuid4().hex[:10]}"]
    try:
        dumps = []
        for db in (mongo_db, other):
            simulate(db, customers=120, days=20, seed=3, end=END)
            continue_world(db, 1, signup_rate=0.02)
            dumps.append(
                {
                    name: list(db[name].find().sort("_id", 1))
                    for name in (*APP_WRITTEN, TRUTH_COLLECTION)
                }
            )
        assert dumps[0] == dumps[1]
        assert dumps[0]["usageanalytics"] and dumps[0]["churnscanhistories"]
    finally:
        mongo_client.drop_database(other.name)


def test_an_empty_database_cannot_be_continued(mongo_db: Database) -> None:
    with pytest.raises(ContinuationError, match="bbx simulate"):
        continue_world(mongo_db, 1)


def test_an_applied_price_rise_makes_customers_leave(
    mongo_db: Database, mongo_client: MongoClient
) -> None:
    """Inside the world's simulated future, leave decisions beyond the planned ones come
    only from a price above the reference: none at the catalogue prices, some after an
    admin applies a rise (plans.pricing.monthly, as the app's "apply" sets it)."""
    raised = mongo_client[f"t_{uuid.uuid4().hex[:10]}"]
    try:
        reports = []
        for db, factor in ((mongo_db, 1.0), (raised, 1.6)):
            simulate(db, customers=400, days=20, seed=8, end=END, annual_churn=0.9)
            for plan in db.plans.find():
                db.plans.update_one(
                    {"_id": plan["_id"]},
                    {"$set": {"pricing.monthly": round(plan["pricing"]["monthly"] * factor)}},
                )
            reports.append(continue_world(db, 3, app_writers=False))
        assert reports[0].events["decisions_to_cancel"] == 0
        assert reports[1].events["decisions_to_cancel"] > 0
        decided = raised[TRUTH_COLLECTION].count_documents({"declineStart": {"$gte": OLD_END}})
        assert decided >= reports[1].events["decisions_to_cancel"]
    finally:
        mongo_client.drop_database(raised.name)


def test_bbx_simulate_continue_days(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bbxcli.cli import app
    from simulator.credentials import ADMIN_EMAILS, ADMIN_PASSWORD

    monkeypatch.setenv("BBX_HOME", str(settings.home))
    monkeypatch.setenv("MONGODB_URI", settings.mongo.uri or "")
    monkeypatch.setenv("BBX_MONGO__DATABASE", settings.mongo.database)
    runner = CliRunner()
    made = runner.invoke(
        app, ["simulate", "--customers", "60", "--days", "15", "--end", "2026-11-25"]
    )
    assert made.exit_code == 0, made.output
    assert f"{ADMIN_EMAILS[0]} / {ADMIN_PASSWORD}" in made.output
    continued = runner.invoke(app, ["simulate", "--continue-days", "1", "--no-app-writers"])
    assert continued.exit_code == 0, continued.output
    assert "2026-11-26 .. 2026-11-26" in continued.output
    client = MongoClient(settings.mongo.uri, tz_aware=True)
    try:
        db = client[settings.mongo.database]
        assert db[STATE_COLLECTION].find_one()["continuedDays"] == 1
        assert db.churnscanhistories.count_documents({}) == 0  # the app's writers were off
    finally:
        client.drop_database(settings.mongo.database)
        client.close()


def test_a_world_without_its_state_document_is_continued_from_its_data(
    mongo_db: Database,
) -> None:
    simulate(mongo_db, customers=60, days=15, seed=5, end=END)
    mongo_db[STATE_COLLECTION].drop()
    report = continue_world(mongo_db, 1, seed=5, app_writers=False)
    assert report.first_day == END + dt.timedelta(days=1)
    state = mongo_db[STATE_COLLECTION].find_one()
    assert state["inferred"] and state["observedThrough"] == OLD_END + dt.timedelta(days=1)
    numbers = [b["invoiceNumber"] for b in mongo_db.billings.find()]
    assert len(numbers) == len(set(numbers))
