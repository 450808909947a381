"""The simulator writes the app's shapes, deterministically, with learnable churn."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database

from bbx.lake import OBJECT_ID, TABLES, TS
from simulator import APP_COLLECTIONS, TRUTH_COLLECTION, SimulationReport, simulate
from simulator.catalog import SEGMENTS
from simulator.encode import epoch_seconds, rng_for
from simulator.population import draw_population
from simulator.timeline import Window, build_timeline

END = dt.date(2026, 11, 25)
SMALL = {"customers": 200, "days": 60, "seed": 11, "end": END}
END_OF_DAY = dt.datetime(END.year, END.month, END.day, 23, 59, 59, tzinfo=dt.UTC)
# Scheduled (not event) dates: a live contract's paid-through date and an open invoice.
SCHEDULED_DATE_PATHS = {
    "subscriptions": {"endDate", "autoRenewal.nextRenewalDate"},
    "billings": {"dueDate", "billingPeriod.end"},
}

ENUMS: dict[str, dict[str, set]] = {
    "users": {"role": {"customer", "admin"}, "status": {"active", "inactive", "suspended"}},
    "plans": {
        "category": {"residential", "business", "enterprise"},
        "status": {"active", "inactive", "deprecated"},
        "pricing.currency": {"INR"},
        "features.dataLimit.unit": {"GB", "TB"},
    },
    "subscriptions": {
        "status": {"active", "grace_period", "suspended", "cancelled", "expired"},
        "billingCycle": {"monthly", "yearly"},
        "paymentHistory.status": {"pending", "completed", "failed", "refunded"},
        "serviceHistory.type": {
            "created",
            "activated",
            "suspended",
            "resumed",
            "upgraded",
            "downgraded",
            "cancelled",
            "expired",
        },
    },
    "usagelogs": {"deviceType": {"Desktop", "Mobile", "Tablet", "IoT", "Other"}},
    "payments": {
        "currency": {"INR", "USD"},
        "status": {
            "created",
            "pending",
            "authorized",
            "captured",
            "failed",
            "refunded",
            "partial_refund",
        },
    },
    "billings": {"status": {"pending", "paid", "overdue", "failed", "cancelled"}},
    "supporttickets": {
        "status": {"open", "assigned", "in-progress", "pending-customer", "resolved", "closed"},
        "priority": {"low", "medium", "high", "urgent"},
        "category": {"technical", "billing", "service", "account", "network", "general"},
        "satisfaction.rating": {1, 2, 3, 4, 5},
    },
    "auditlogs": {"action": {"login"}, "entity": {"User"}},
    "feedbacks": {"rating.overall": {1, 2, 3, 4, 5}},
}


def values_at(doc: Any, path: str) -> list[Any]:
    """Every value at a dotted path, descending into arrays like MongoDB does."""
    if not path:
        return [doc]
    if isinstance(doc, list):
        return [v for item in doc for v in values_at(item, path)]
    if not isinstance(doc, dict):
        return []
    head, _, rest = path.partition(".")
    return values_at(doc[head], rest) if head in doc else []


def dated_fields(doc: Any, prefix: str = "") -> Iterator[tuple[str, dt.datetime]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from dated_fields(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(doc, list):
        for item in doc:
            yield from dated_fields(item, prefix)
    elif isinstance(doc, dt.datetime):
        yield prefix, doc


def bson_type_ok(value: Any, lake_type: Any) -> bool:
    if lake_type == OBJECT_ID:
        return isinstance(value, ObjectId)
    if lake_type == TS:
        return isinstance(value, dt.datetime)
    if str(lake_type) == "double":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if str(lake_type) == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


def dump(db: Database) -> dict[str, list[dict]]:
    return {
        name: list(db[name].find().sort("_id", 1)) for name in (*APP_COLLECTIONS, TRUTH_COLLECTION)
    }


@pytest.fixture()
def small_run(mongo_db: Database) -> tuple[Database, SimulationReport]:
    return mongo_db, simulate(mongo_db, **SMALL)


@pytest.fixture()
def other_db(mongo_client: MongoClient) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    try:
        yield mongo_client[name]
    finally:
        mongo_client.drop_database(name)


def test_same_seed_gives_identical_documents(small_run, other_db: Database) -> None:
    db, _ = small_run
    simulate(other_db, **SMALL)
    first, second = dump(db), dump(other_db)
    assert first == second  # ObjectIds included
    assert all(first[name] for name in first)


def test_other_seed_gives_other_documents(small_run, other_db: Database) -> None:
    db, _ = small_run
    simulate(other_db, **{**SMALL, "seed": 12})
    assert dump(db)["users"] != dump(other_db)["users"]


def test_rerun_replaces_previous_data(mongo_db: Database) -> None:
    simulate(mongo_db, customers=60, days=20, seed=1, end=END)
    report = simulate(mongo_db, customers=30, days=10, seed=2, end=END)
    assert mongo_db.users.count_documents({"role": "customer"}) == 30
    assert report.documents == {
        name: mongo_db[name].count_documents({}) for name in (*APP_COLLECTIONS, TRUTH_COLLECTION)
    }


def test_report_matches_database(small_run) -> None:
    db, report = small_run
    assert report.customers == SMALL["customers"]
    assert report.documents["users"] == SMALL["customers"] + 2
    assert db.users.count_documents({"role": "admin"}) == 2
    assert report.active_subscriptions == db.subscriptions.count_documents({"status": "active"})
    assert report.churned == db.subscriptions.count_documents({"status": "cancelled"})
    assert report.seconds > 0
    for name in (*APP_COLLECTIONS, TRUTH_COLLECTION):
        assert report.documents[name] == db[name].count_documents({}), name


def test_every_lake_source_path_is_written_with_its_type(small_run) -> None:
    db, _ = small_run
    for collection, spec in TABLES.items():
        docs = list(db[collection].find())
        assert docs, collection
        for column in spec.columns:
            present = [v for d in docs for v in values_at(d, column.source) if v is not None]
            assert present, f"{collection}.{column.source} never written"
            wrong = [v for v in present if not bson_type_ok(v, column.type)]
            assert not wrong, f"{collection}.{column.source}: {wrong[:3]}"


def test_values_stay_inside_the_app_enums(small_run) -> None:
    db, _ = small_run
    for collection, fields in ENUMS.items():
        docs = list(db[collection].find())
        for path, allowed in fields.items():
            seen = {v for d in docs for v in values_at(d, path)}
            assert seen, f"{collection}.{path} never written"
            assert seen <= allowed, f"{collection}.{path}: {seen - allowed}"


def test_references_point_at_existing_documents(small_run) -> None:
    db, _ = small_run
    users = set(db.users.distinct("_id"))
    customers = set(db.users.distinct("_id", {"role": "customer"}))
    subscriptions = set(db.subscriptions.distinct("_id"))
    plans = set(db.plans.distinct("_id"))
    assert set(db.subscriptions.distinct("user")) == customers  # one per customer
    assert db.subscriptions.count_documents({}) == len(customers)
    assert set(db.subscriptions.distinct("plan")) <= plans
    for collection, key in (
        ("usagelogs", "userId"),
        ("auditlogs", "userId"),
        ("payments", "user"),
        ("billings", "user"),
        ("supporttickets", "customer"),
        ("feedbacks", "user"),
    ):
        assert set(db[collection].distinct(key)) <= users, collection
    for collection in ("payments", "billings"):
        assert set(db[collection].distinct("subscription")) <= subscriptions, collection


def test_the_app_ships_eight_plans(small_run) -> None:
    db, _ = small_run
    plans = {p["name"]: p for p in db.plans.find()}
    expected = {
        "Starter": (399, 40, 200),
        "Basic": (499, 60, 500),
        "Standard": (799, 100, 1000),
        "Premium": (1199, 200, None),
        "Ultra": (1499, 300, None),
        "Business Basic": (999, 100, 1000),
        "Business Pro": (1999, 300, None),
        "Enterprise": (3999, 500, None),
    }
    assert set(plans) == set(expected)
    for name, (monthly, mbps, cap) in expected.items():
        plan = plans[name]
        assert plan["pricing"]["monthly"] == monthly
        assert plan["pricing"]["yearly"] == round(monthly * 12 * 0.9)
        assert plan["pricing"]["currency"] == "INR"
        assert plan["features"]["speed"]["download"] == mbps == plan["features"]["speed"]["upload"]
        assert plan["features"]["dataLimit"]["unlimited"] is (cap is None)
        assert plan["features"]["dataLimit"]["amount"] == cap
    assert plans["Starter"]["pricing"]["setupFee"] == 500
    assert {p["category"] for p in plans.values()} == {"residential", "business", "enterprise"}


def test_nothing_happens_after_end(small_run) -> None:
    db, _ = small_run
    for collection in (*APP_COLLECTIONS, TRUTH_COLLECTION):
        scheduled = SCHEDULED_DATE_PATHS.get(collection, set())
        for doc in db[collection].find():
            for path, when in dated_fields(doc):
                if path not in scheduled:
                    assert when <= END_OF_DAY, (collection, path, when)
            assert doc["_id"].generation_time <= END_OF_DAY, collection
    # Only live contracts are paid through a date after the window.
    for sub in db.subscriptions.find({"status": {"$ne": "active"}}):
        assert sub["endDate"] <= END_OF_DAY


def test_sessions_are_inside_the_window(small_run) -> None:
    db, _ = small_run
    first_day = dt.datetime(END.year, END.month, END.day, tzinfo=dt.UTC) - dt.timedelta(days=59)
    assert db.usagelogs.count_documents({"timestamp": {"$lt": first_day}}) == 0
    assert db.auditlogs.count_documents({"timestamp": {"$lt": first_day}}) == 0


def test_subscriptions_follow_the_app_rules(small_run) -> None:
    db, _ = small_run
    monthly_price = {p["_id"]: p["pricing"]["monthly"] for p in db.plans.find()}
    truth = {t["userId"]: t for t in db[TRUTH_COLLECTION].find()}
    statuses = set()
    for sub in db.subscriptions.find():
        statuses.add(sub["status"])
        price = sub["pricing"]
        assert sub["cancellation"].get("refundEligible") in (True, False)
        assert price["totalAmount"] == pytest.approx(
            price["finalPrice"] + price["taxAmount"], abs=0.02
        )
        assert price["finalPrice"] == pytest.approx(
            price["basePrice"] - price["discountApplied"], abs=0.02
        )
        cycle_months = 10.8 if sub["billingCycle"] == "yearly" else 1.0
        assert price["basePrice"] == pytest.approx(monthly_price[sub["plan"]] * cycle_months, abs=1)
        assert sub["startDate"] <= sub["endDate"]
        dates = [h["date"] for h in sub["paymentHistory"]]
        assert dates == sorted(dates)
        history = [h["status"] for h in sub["paymentHistory"]]
        settled = [s for s in history if s != "pending"]
        tail = len(settled) - max(
            (i + 1 for i, s in enumerate(settled) if s != "failed"), default=0
        )
        assert sub["paymentFailures"] == tail
        churn_date = truth[sub["user"]]["churnDate"]
        if sub["status"] == "cancelled":
            c = sub["cancellation"]
            assert c["requestDate"] <= c["effectiveDate"] and c["reason"]
            assert any(h["type"] == "cancelled" for h in sub["serviceHistory"])
            assert churn_date == c["requestDate"]
        else:
            assert set(sub["cancellation"]) == {"refundEligible"}
            assert churn_date is None
    assert {"active", "cancelled"} <= statuses


def test_truth_is_a_separate_collection(small_run) -> None:
    db, _ = small_run
    truth = list(db[TRUTH_COLLECTION].find())
    customers = set(db.users.distinct("_id", {"role": "customer"}))
    assert {t["userId"] for t in truth} == customers
    assert {t["segment"] for t in truth} <= {s.name for s in SEGMENTS}
    assert all(0 <= t["monthlyChurnHazard"] < 1 and t["elasticity"] < 0 for t in truth)
    for collection in APP_COLLECTIONS:
        for field in ("segment", "elasticity", "monthlyChurnHazard"):
            assert db[collection].count_documents({field: {"$exists": True}}) == 0


def test_segments_use_the_network_differently(mongo_db: Database) -> None:
    simulate(mongo_db, customers=400, days=30, seed=5, end=END, annual_churn=0.0)
    truth = list(mongo_db[TRUTH_COLLECTION].find())
    by_segment: dict[str, list[float]] = {}
    for t in truth:
        by_segment.setdefault(t["segment"], []).append(t["simulatedMonthlyGB"])
    median = {name: float(np.median(v)) for name, v in by_segment.items()}
    assert median["Premium Power Users"] > 130
    assert median["Premium Power Users"] > median["Price-Conscious Power"] > median["Value-Seekers"]
    assert median["Casual Premium"] < 35


def test_churn_rate_is_calibrated() -> None:
    days = 365
    window = Window(epoch_seconds(END - dt.timedelta(days=days - 1)), days)
    pop = draw_population(rng_for(3, 1), 10_000, days, window.start_seconds, 1.5)
    tl = build_timeline(rng_for(3, 2), pop, window, annual_churn=0.25)
    on_book = pop.start_day <= 0
    assert 0.21 < np.mean(tl.cancel_day[on_book] >= 0) < 0.29
    assert 0 < np.mean(tl.nonrenewal_day >= 0) < 0.1  # a smaller, separate way out
    # New contracts leave more than old ones.
    new = on_book & (pop.start_day > -60)
    old = on_book & (pop.start_day < -365)
    assert np.mean(tl.cancel_day[new] >= 0) > np.mean(tl.cancel_day[old] >= 0)


def test_churners_wind_down_before_cancelling(mongo_db: Database) -> None:
    days = 120
    simulate(
        mongo_db, customers=700, days=days, seed=9, end=END, sessions_per_day=1.0, annual_churn=0.5
    )
    start = dt.datetime(END.year, END.month, END.day, tzinfo=dt.UTC) - dt.timedelta(days=days - 1)
    cancelled = {
        s["user"]: s["cancellation"]["requestDate"]
        for s in mongo_db.subscriptions.find({"status": "cancelled"})
        if s["cancellation"]["requestDate"] - dt.timedelta(days=70) >= max(start, s["startDate"])
    }
    assert len(cancelled) >= 25
    recent = dict.fromkeys(cancelled, 0.0)
    earlier = dict.fromkeys(cancelled, 0.0)
    for log in mongo_db.usagelogs.find(
        {"userId": {"$in": list(cancelled)}}, {"userId": 1, "timestamp": 1, "download": 1}
    ):
        before = cancelled[log["userId"]] - log["timestamp"]
        if dt.timedelta(0) <= before < dt.timedelta(days=14):
            recent[log["userId"]] += log["download"] / 14
        elif dt.timedelta(days=42) <= before < dt.timedelta(days=70):
            earlier[log["userId"]] += log["download"] / 28
    ratio = [recent[u] / earlier[u] for u in cancelled if earlier[u] > 0]
    assert np.median(ratio) < 0.6

    login_days_before = [
        (cancelled[row["userId"]] - row["timestamp"]).days
        for row in mongo_db.auditlogs.find(
            {"userId": {"$in": list(cancelled)}}, {"userId": 1, "timestamp": 1}
        )
    ]

    def logins(lo_days: int, hi_days: int) -> int:
        return sum(lo_days <= d < hi_days for d in login_days_before)

    # The cancel-day login is excluded; per day, leavers log in less in their last two weeks.
    assert logins(1, 15) / 14 < 0.8 * logins(42, 70) / 28
