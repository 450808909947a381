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
from pymongo.errors import BulkWriteError

from bbx.lake import OBJECT_ID, TABLES, TS
from simulator import APP_COLLECTIONS, TRUTH_COLLECTION, SimulationReport, simulate
from simulator.catalog import SEGMENTS
from simulator.encode import epoch_seconds, rng_for
from simulator.population import draw_population
from simulator.price_response import population_state, simulate_price_response
from simulator.timeline import Window, build_timeline
from simulator.truth import churn_probabilities, truth_as_of_dates
from simulator.world import SimulationSpec, build_world

END = dt.date(2026, 11, 25)
SMALL = {"customers": 200, "days": 60, "seed": 11, "end": END}
END_OF_DAY = dt.datetime(END.year, END.month, END.day, 23, 59, 59, tzinfo=dt.UTC)
# Scheduled (not event) dates: a live contract's paid-through date and an open invoice.
SCHEDULED_DATE_PATHS = {
    "subscriptions": {"endDate", "autoRenewal.nextRenewalDate"},
    "billings": {"dueDate", "billingPeriod.end"},
}

# The schema table's enums that the app's save-time rules do not cover (those are in
# simulator/app_rules.py and checked by tests/test_app_rules.py).
ENUMS: dict[str, dict[str, set]] = {
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


@pytest.fixture(scope="module")
def small_run(mongo_server_uri: str) -> Iterator[tuple[Database, SimulationReport]]:
    """One small world for the module, only read by the tests that take it."""
    client: MongoClient = MongoClient(mongo_server_uri, tz_aware=True)
    db = client[f"t_{uuid.uuid4().hex[:10]}"]
    try:
        yield db, simulate(db, **SMALL)
    finally:
        client.drop_database(db.name)
        client.close()


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
    """In the app's collections: the hidden future lives only in the truth."""
    db, _ = small_run
    for collection in APP_COLLECTIONS:
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
            assert churn_date is None or churn_date > END_OF_DAY  # a future cancellation
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
    days = 110  # requests in the last 40 days have the 70 days of history checked below
    simulate(
        mongo_db, customers=400, days=days, seed=9, end=END, sessions_per_day=1.0, annual_churn=0.9
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


# --- segments, truth, dirt, price response ---------------------------------------------


def test_segment_shares_match_the_configured_ones() -> None:
    """Compute-only (no writes): 10k customers' latent segments within 2 points."""
    pop = draw_population(rng_for(21, 1), 10_000, 365, epoch_seconds(END), 1.5)
    shares = np.bincount(pop.segment, minlength=len(SEGMENTS)) / pop.size
    for spec, share in zip(SEGMENTS, shares, strict=True):
        assert abs(share - spec.share) < 0.02, (spec.name, share)


def test_true_churn_probabilities_are_calibrated() -> None:
    """The truth's 30-day probabilities match what the simulation then does (compute-only)."""
    world = build_world(SimulationSpec(customers=6000, days=240, seed=8, end=END))
    cancel_day = world.full.cancel_day
    expected, happened, live_total = 0.0, 0, 0
    for as_of in truth_as_of_dates(world):
        t = world.day_index(as_of)
        live, p_cancel, p_leave = churn_probabilities(world, t)
        assert np.all(np.isnan(p_cancel[~live])) and np.all(p_leave[live] >= p_cancel[live])
        assert np.all((p_cancel[live] >= 0) & (p_cancel[live] <= 1))
        expected += float(np.sum(p_cancel[live]))
        happened += int(np.sum(live & (cancel_day >= t) & (cancel_day < t + 30)))
        live_total += int(live.sum())
    assert happened > 300
    assert abs(expected - happened) / live_total < 0.003
    # Customers already winding down have decided: their probability is 0 or 1.
    t = world.day_index(END + dt.timedelta(days=1))
    live, p_cancel, _ = churn_probabilities(world, t)
    winding_down = live & (world.full.decline_start_day < t) & (cancel_day >= t)
    assert winding_down.any()
    assert set(np.unique(p_cancel[winding_down]).tolist()) <= {0.0, 1.0}


def test_the_future_is_only_in_the_truth(small_run) -> None:
    db, report = small_run
    after = dt.datetime(END.year, END.month, END.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    future = list(db[TRUTH_COLLECTION].find({"churnDate": {"$gte": after}}))
    assert len(future) == report.future_cancellations > 0
    ids = [t["subscriptionId"] for t in future]
    assert db.subscriptions.count_documents({"_id": {"$in": ids}, "status": "cancelled"}) == 0
    assert TRUTH_COLLECTION not in TABLES  # the lake never extracts it
    as_of_dates = {
        e["asOf"].date() for t in db[TRUTH_COLLECTION].find() for e in t["churnProbability30d"]
    }
    assert as_of_dates == {dt.date(2026, 10, 1), dt.date(2026, 11, 1), END + dt.timedelta(days=1)}


def test_dirty_mode_injects_counted_dirt(mongo_db: Database, other_db: Database) -> None:
    clean = simulate(mongo_db, **{**SMALL, "customers": 400})
    dirty = simulate(other_db, **{**SMALL, "customers": 400}, dirty=True)
    dirt = dirty.dirt
    assert clean.dirt == {}
    assert dirt["usagelogs.duplicated"] > 0 and dirt["users.lastLogin_removed"] > 0
    assert dirt["usageanalytics.dataUsed_in_GB"] > 0
    assert (
        dirty.documents["usagelogs"] - clean.documents["usagelogs"] == dirt["usagelogs.duplicated"]
    )
    off_enum = other_db.subscriptions.count_documents({"status": {"$in": ["trialing", "pending"]}})
    assert off_enum == dirt["subscriptions.status_outside_enum"] > 0
    assert other_db.users.count_documents({"npsScore": "n/a"}) == dirt.get("users.malformed", 0)
    missing = other_db.users.count_documents({"role": "customer", "lastLogin": {"$exists": False}})
    assert (
        missing
        == mongo_db.users.count_documents({"role": "customer", "lastLogin": {"$exists": False}})
        + dirt["users.lastLogin_removed"]
    )
    after = dt.datetime(END.year, END.month, END.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    assert other_db.usagelogs.count_documents({"timestamp": {"$gte": after}}) == dirt.get(
        "usagelogs.future_dated", 0
    )
    assert other_db.usagelogs.count_documents({"timestamp": {"$exists": False}}) == dirt.get(
        "usagelogs.malformed", 0
    )
    # The roll-ups mix units: a GB roll-up is about a thousandth of its MB neighbours.
    rollups = list(other_db.usageanalytics.find({}, {"metrics.dataUsed": 1}))
    assert len(rollups) == dirty.documents["usageanalytics"] > 0
    assert "usageanalytics" not in clean.documents
    # Dirt is as deterministic as the rest.
    again = simulate(mongo_db, **{**SMALL, "customers": 400}, dirty=True)
    assert again.dirt == dirt and dump(mongo_db)["users"] == dump(other_db)["users"]


def test_price_response_common_random_numbers(tmp_path) -> None:
    spec = SimulationSpec(customers=3000, days=200, seed=13, end=END)
    spec.save(tmp_path / "spec.json")
    assert SimulationSpec.load(tmp_path / "spec.json") == spec
    state = population_state(spec, END + dt.timedelta(days=1))
    assert state.size > 2000 and len(state.user_ids[0]) == 24
    static = simulate_price_response(state, state.monthly_price, months=12, seed=1)
    again = simulate_price_response(
        state, dict(zip(state.user_ids, state.monthly_price, strict=True)), months=12, seed=1
    )
    np.testing.assert_array_equal(static.months_served, again.months_served)
    dearer = simulate_price_response(state, state.monthly_price * 1.2, months=12, seed=1)
    cheaper = simulate_price_response(state, state.monthly_price * 0.8, months=12, seed=1)
    # Same customers, same luck: a higher price can only make a customer leave earlier.
    assert np.all(dearer.months_served <= static.months_served)
    assert np.all(cheaper.months_served >= static.months_served)
    assert cheaper.churn_rate < static.churn_rate < dearer.churn_rate
    assert 0.05 < static.churn_rate < 0.5
    frame = static.to_frame()
    assert frame["revenue"].sum() == pytest.approx(static.total_revenue)
    assert (frame["revenue"] == frame["monthly_price"] * frame["months_served"]).all()
    # Price-sensitive customers react more to the same rise.
    elastic = state._elasticity < -1.5
    rise = dearer.churned.astype(float) - static.churned.astype(float)
    assert rise[elastic].mean() > rise[~elastic].mean()
    with pytest.raises(ValueError, match="aligned"):
        simulate_price_response(state, state.monthly_price[:10])


def test_only_the_evaluation_reads_the_truth() -> None:
    """Pipeline code never imports the simulator nor names the truth; in bbx/ only the
    CLI and the evaluation do (the evaluation through simulator.truth)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def imports_simulator(path: Path) -> bool:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "simulator" for name in names):
                return True
        return False

    readers = {
        str(path.relative_to(root))
        for package in ("bbx", "bbxcli", "flows", "tasks", "features", "models")
        for path in (root / package).rglob("*.py")
        if imports_simulator(path) or TRUTH_COLLECTION in path.read_text()
    }
    assert readers <= {"bbxcli/cli.py", "bbxcli/evaluate.py"}
    assert "bbxcli/evaluate.py" in readers


def test_writer_tolerates_a_batch_the_server_already_stored(mongo_db: Database) -> None:
    """A driver retry of a stored batch comes back as duplicate _ids: not an error; any
    other write error still is."""
    from simulator.writer import BatchWriter

    docs = [{"_id": ObjectId(f"{i:024x}"), "n": i} for i in range(50)]
    mongo_db.things.insert_many([dict(d) for d in docs[:30]])
    with BatchWriter(mongo_db, batch_size=20) as writer:
        writer.write("things", [dict(d) for d in docs])
    assert mongo_db.things.count_documents({}) == 50
    assert writer.duplicates_ignored["things"] == 30
    mongo_db.strict.create_index("n", unique=True)
    mongo_db.strict.insert_one({"n": 1})
    with (
        pytest.raises(BulkWriteError, match="duplicate key"),
        BatchWriter(mongo_db, batch_size=20) as writer,
    ):
        writer.write("strict", [{"_id": ObjectId(), "n": 1}])
