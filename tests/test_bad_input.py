"""Each kind of bad app data ends in a counted quarantine or a clear stop.

Real embedded server, a small simulated population, then one kind of dirt injected
the way the app (or a script) would write it. A stop is a DataValidationError or
MongoUnavailableError naming the collection and what failed, never a raw
traceback, and a stopped nightly run leaves `ml_customer_scores` as it was.
"""

from __future__ import annotations

import datetime as dt
import time

import pyarrow.parquet as pq
import pytest
from bson import ObjectId

from bbx import lake
from bbx.mongo import MongoUnavailableError, free_port
from bbx.settings import Settings
from simulator import simulate
from tasks.extract import extract_collection, extract_task, write_manifest
from tasks.gate import DataValidationError, validate_lake
from tasks.validate import DUPLICATE_REASON, REASON_COLUMN

AS_OF = dt.date(2026, 5, 1)
TODAY = dt.date(2026, 11, 26)
NOON = dt.datetime.combine(AS_OF, dt.time(12), tzinfo=dt.UTC)


@pytest.fixture()
def db(settings: Settings, mongo_client):
    database = mongo_client[settings.mongo.database]
    simulate(database, customers=80, days=40, seed=4, end=AS_OF - dt.timedelta(days=1))
    return database


@pytest.fixture()
def lenient(settings: Settings) -> Settings:
    """A 5% quarantine limit, so one bad row is counted rather than stopping the run."""
    return settings.model_copy(update={"validation": settings.validation.model_copy(
        update={"max_quarantine_share": 0.05})})


def gate(settings: Settings, *collections: str):
    """Extract and validate the named collections, and users (the orphan check reads
    them); all of the lake's without a name. A test names the ones its dirt is in: GX's
    cost is per expectation, whatever a table's size."""
    names = ["users", *collections] if collections else list(lake.TABLES)
    extracts = [
        extract_collection(settings.mongo.uri, settings, c, AS_OF, today=TODAY)
        for c in dict.fromkeys(names)
    ]
    write_manifest(settings, AS_OF, extracts)
    validations = validate_lake(settings, AS_OF, {e.collection: e.path for e in extracts})
    return {v.collection: v for v in validations}


def quarantined(validation) -> dict[str, str]:
    """session/row key → reason."""
    table = pq.read_table(validation.quarantine_file).to_pandas()
    key = lake.TABLES[validation.collection].key
    return dict(zip(table[key], table[REASON_COLUMN], strict=True))


def customer(db) -> ObjectId:
    return db.subscriptions.find_one({"status": "active"})["user"]


def session(user, when=NOON, **fields) -> dict:
    doc = {"_id": ObjectId(), "userId": user, "timestamp": when, "download": 2e9, "upload": 1e8,
           "downloadSpeed": 50.0, "uploadSpeed": 20.0, "latency": 20.0, "packetLoss": 0.1,
           "sessionDuration": 30, "deviceType": "mobile"}
    return doc | fields


def test_missing_required_field_is_quarantined(db, lenient) -> None:
    doc = session(customer(db))
    del doc["userId"]
    db.usagelogs.insert_one(doc)
    usage = gate(lenient, "usagelogs")["usagelogs"]
    assert usage.quarantined == 1
    assert quarantined(usage) == {
        str(doc["_id"]): "expect_column_values_to_not_be_null(user_id)"}


def test_string_where_a_number_belongs_is_quarantined(db, lenient) -> None:
    doc = session(customer(db), download="2500000000")
    db.usagelogs.insert_one(doc)
    usage = gate(lenient, "usagelogs")["usagelogs"]
    assert quarantined(usage) == {
        str(doc["_id"]): "expect_column_values_to_not_be_null(download_gb)"}


def test_negative_and_absurdly_large_bytes_are_quarantined(db, lenient) -> None:
    negative = session(customer(db), download=-5e8)
    absurd = session(customer(db), when=NOON + dt.timedelta(minutes=1), upload=4e15)  # 4 PB
    db.usagelogs.insert_many([negative, absurd])
    reasons = quarantined(gate(lenient, "usagelogs")["usagelogs"])
    assert reasons == {
        str(negative["_id"]): "expect_column_values_to_be_between(download_gb)",
        str(absurd["_id"]): "expect_column_values_to_be_between(upload_gb)",
    }


def test_future_timestamp_is_quarantined(db, lenient) -> None:
    doc = session(customer(db), when=dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
    db.usagelogs.insert_one(doc)
    reasons = quarantined(gate(lenient, "usagelogs")["usagelogs"])
    assert reasons == {str(doc["_id"]): "expect_column_values_to_be_between(timestamp)"}


def test_the_same_session_under_a_second_id_keeps_the_first_copy(db, lenient) -> None:
    original = db.usagelogs.find_one({"userId": customer(db)})
    copy = original | {"_id": ObjectId()}
    db.usagelogs.insert_one(copy)
    usage = gate(lenient, "usagelogs")["usagelogs"]
    reasons = quarantined(usage)
    assert len(reasons) == 1
    (key, reason), = reasons.items()
    assert key in {str(original["_id"]), str(copy["_id"])}
    assert reason == DUPLICATE_REASON
    clean = pq.read_table(usage.clean_file).to_pandas()
    assert len({str(original["_id"]), str(copy["_id"])} & set(clean["session_id"])) == 1


def test_sessions_the_app_wrote_in_one_hourly_batch_are_all_kept(db, settings) -> None:
    user = customer(db)
    batch = [session(user, deviceId=f"dev-{i}", download=gb * 1e9, deviceType=kind)
             for i, (gb, kind) in enumerate(((0.4, "Mobile"), (1.9, "Desktop"), (0.8, "Tablet")))]
    db.usagelogs.insert_many(batch)  # one timestamp to the millisecond, three sessions
    usage = gate(settings, "usagelogs")["usagelogs"]
    clean = set(pq.read_table(usage.clean_file).column("session_id").to_pylist())
    assert {str(d["_id"]) for d in batch} <= clean
    assert usage.quarantined == 0


def test_status_outside_the_enum_is_quarantined_and_known_extras_kept(db, lenient) -> None:
    subs = list(db.subscriptions.find({}, {"_id": 1}).limit(2))
    db.subscriptions.update_one({"_id": subs[0]["_id"]}, {"$set": {"status": "zombie"}})
    db.subscriptions.update_one({"_id": subs[1]["_id"]}, {"$set": {"status": "trialing"}})
    result = gate(lenient, "subscriptions")["subscriptions"]
    assert quarantined(result) == {
        str(subs[0]["_id"]): "expect_column_values_to_be_in_set(subscription_status)"}
    assert any("trialing" in w for w in result.warnings)


def test_status_outside_the_enum_above_the_limit_stops_with_a_clear_message(
    db, settings
) -> None:
    db.subscriptions.update_many({"status": "active"}, {"$set": {"status": "zombie"}})
    with pytest.raises(DataValidationError) as stop:
        gate(settings, "subscriptions")
    message = str(stop.value)
    assert "subscriptions" in message and "subscription_status" in message
    assert "quarantine limit" in message and "run stopped before features" in message
    assert not lake.staged_path(settings.lake_dir, "subscriptions", AS_OF).exists()


def test_orphan_reference_is_quarantined(db, lenient) -> None:
    payment = db.payments.find_one()
    orphan = payment | {"_id": ObjectId(), "user": ObjectId()}
    db.payments.insert_one(orphan)
    payments = gate(lenient, "payments")["payments"]
    assert quarantined(payments) == {str(orphan["_id"]): "orphan user_id"}


def test_empty_event_collection_warns_but_empty_usage_stops(db, settings) -> None:
    db.feedbacks.delete_many({})
    assert gate(settings, "feedbacks")["feedbacks"].rows == 0  # a quiet collection: a warning only

    db.usagelogs.delete_many({})
    with pytest.raises(DataValidationError, match=r"usagelogs: critical .*timestamp"):
        gate(settings, "usagelogs")


def test_empty_users_stops(db, settings) -> None:
    db.users.delete_many({})
    with pytest.raises(DataValidationError, match="users: critical"):
        gate(settings, "users")


def test_usageanalytics_mb_gb_mix_never_reaches_the_lake(db, settings) -> None:
    """usageanalytics.metrics.dataUsed is MB or GB depending on which script wrote it;
    the pipeline does not read it (usage comes from usagelogs bytes): see docs."""
    user = customer(db)
    db.usageanalytics.insert_many([
        {"user": user, "date": NOON, "metrics": {"dataUsed": 51200.0}},  # MB
        {"user": user, "date": NOON, "metrics": {"dataUsed": 50.0}},  # GB, same usage
    ])
    gate(settings)
    assert "usageanalytics" not in lake.TABLES
    assert not (settings.lake_dir / "raw" / "usageanalytics").exists()


def test_unknown_new_field_is_ignored(db, lenient) -> None:
    doc = session(customer(db), wifiGeneration="wifi7", diagnostics={"rssi": -40})
    db.usagelogs.insert_one(doc)
    db.users.update_many({}, {"$set": {"loyaltyTier": "gold"}})
    result = gate(lenient, "usagelogs")
    clean = pq.read_table(result["usagelogs"].clean_file)
    assert clean.column_names == lake.TABLES["usagelogs"].column_names
    assert str(doc["_id"]) in set(clean.column("session_id").to_pylist())
    assert result["usagelogs"].quarantined == 0 and result["users"].quarantined == 0


def test_unreachable_server_retries_with_backoff_then_names_host_and_collection(
    settings: Settings, prefect_api: None
) -> None:
    uri = f"mongodb://pipeline:hunter2@127.0.0.1:{free_port()}/"
    fast = settings.model_copy(update={
        "mongo": settings.mongo.model_copy(update={"server_selection_timeout_ms": 200}),
        "extract": settings.extract.model_copy(
            update={"retries": 2, "retry_backoff_seconds": 0.2}),
    })
    started = time.perf_counter()
    with pytest.raises(MongoUnavailableError) as error:
        extract_task(fast)(uri, fast, "payments", AS_OF)  # Prefect's retries
    elapsed = time.perf_counter() - started
    message = str(error.value)
    assert "mongodb://127.0.0.1:" in message and "'payments'" in message
    assert "after 3 attempt(s)" in message
    assert "hunter2" not in message and "pipeline" not in message
    assert elapsed >= 0.2 + 0.4  # the two backoff sleeps happened


SENTINEL = {"userId": "sentinel", "riskScore": 1.0}


@pytest.mark.slow
def test_stopped_nightly_run_leaves_the_published_scores_untouched(
    flow_env: Settings, mongo_client
) -> None:
    from flows.nightly import nightly

    db = mongo_client[flow_env.mongo.database]
    simulate(db, customers=80, days=40, seed=4, end=AS_OF - dt.timedelta(days=1))
    db[lake.SCORES_COLLECTION].insert_one(dict(SENTINEL))
    bad = [session(customer(db), download=-1e9) for _ in range(200)]  # > 1% of sessions
    for i, doc in enumerate(bad):
        doc["timestamp"] = NOON - dt.timedelta(minutes=i)
    db.usagelogs.insert_many(bad)
    with pytest.raises(DataValidationError, match="usagelogs: .*download_gb"):
        nightly(as_of=AS_OF)
    published = list(db[lake.SCORES_COLLECTION].find({}, {"_id": 0}))
    assert published == [SENTINEL]
    # The site is built once for the night's tables, on the way out of a failed
    # validation too: the stopped table's page is the evidence the error points to.
    index = (flow_env.data_docs_dir / "index.html").read_text()
    pages = list((flow_env.data_docs_dir / "validations" / "usagelogs").rglob("*.html"))
    assert len(pages) == 1 and f"validations/usagelogs/{AS_OF.isoformat()}/" in index
