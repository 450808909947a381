"""Incremental extract → gate → the lake's history on the real embedded server.

A small simulated population, then a new day of events (and a late arrival inside
the overlap window): the second run reads only the increment, and the table the
features see is still the full, de-duplicated history.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from bson import ObjectId
from deltalake import DeltaTable

from bbx import lake
from bbx.lake.history import read_table, read_tables
from bbx.mongo import close_clients, mongo_client
from bbx.settings import Settings
from simulator import simulate
from tasks.extract import (
    FULL,
    INCREMENTAL,
    SNAPSHOT,
    extract_collection,
    write_manifest,
)
from tasks.gate import DataValidationError, validate_lake

AS_OF = dt.date(2026, 5, 1)
TODAY = dt.date(2026, 11, 26)


# The tables a test's runs extract and gate when it reads only these (users: the gate
# checks every other table's references against them). Every run of a test uses the
# same tables, so each sees the manifests of the runs before it.
USAGE = ("users", "usagelogs")
PLANS_AND_USAGE = ("users", "plans", "usagelogs")
SNAPSHOTS_AND_EVENTS = ("users", "subscriptions", "auditlogs", "usagelogs")


def _run(settings: Settings, as_of: dt.date, tables: tuple[str, ...] = tuple(lake.TABLES),
         today: dt.date = TODAY):
    extracts = [
        extract_collection(settings.mongo.uri, settings, c, as_of, today=today)
        for c in tables
    ]
    write_manifest(settings, as_of, extracts)
    validations = validate_lake(settings, as_of, {e.collection: e.path for e in extracts})
    return {e.collection: e for e in extracts}, {v.collection: v for v in validations}


def _session(user, when: dt.datetime, gb: float = 1.0) -> dict:
    return {"userId": user, "timestamp": when, "download": gb * 1e9, "upload": 1e8,
            "downloadSpeed": 50.0, "uploadSpeed": 20.0, "latency": 20.0, "packetLoss": 0.1,
            "sessionDuration": 30, "deviceType": "mobile"}


@pytest.fixture()
def simulated(settings: Settings, mongo_client):
    db = mongo_client[settings.mongo.database]
    simulate(db, customers=60, days=40, seed=3, end=AS_OF - dt.timedelta(days=1))
    return db


def test_second_run_reads_only_the_increment_and_history_is_complete(
    settings: Settings, simulated
) -> None:
    db = simulated
    first, _ = _run(settings, AS_OF)
    assert first["usagelogs"].mode == FULL and first["users"].mode == SNAPSHOT
    assert first["usagelogs"].rows == db.usagelogs.count_documents({})

    customer = db.subscriptions.find_one({"status": "active"})["user"]
    next_day = AS_OF + dt.timedelta(days=1)
    new_time = dt.datetime.combine(next_day, dt.time(9), tzinfo=dt.UTC)
    late_time = dt.datetime.combine(AS_OF, dt.time(23, 30), tzinfo=dt.UTC)  # late arrival
    db.usagelogs.insert_many([_session(customer, new_time), _session(customer, late_time)])

    second, validations = _run(settings, next_day)
    usage = second["usagelogs"]
    assert usage.mode == INCREMENTAL
    assert usage.since is not None
    # Only the overlap window + new day were read, not the collection.
    assert 2 <= usage.rows < first["usagelogs"].rows / 5
    assert usage.new_rows == 2
    assert dt.datetime.fromisoformat(usage.watermark) == new_time

    version = json.loads(Path(validations["usagelogs"].history_file).read_text())
    (history,) = version["history"]  # one clean table, as of the version the gate wrote
    assert history["table"] == "clean/usagelogs"  # relative: a moved home keeps working
    assert history["nights"] == [AS_OF.isoformat(), next_day.isoformat()]
    assert history["version"] == DeltaTable(str(settings.lake_dir / "clean/usagelogs")).version()
    history = read_table("usagelogs", validations["usagelogs"].history_file)
    assert "dt" not in history.columns
    assert history["session_id"].is_unique  # the overlap was de-duplicated
    in_mongo = {str(d["_id"]) for d in db.usagelogs.find({}, {"_id": 1})}
    assert set(history["session_id"]) == in_mongo

    tables = read_tables({c: v.history_file for c, v in validations.items()})
    assert len(tables.users) == db.users.count_documents({})
    assert len(tables.usagelogs) == len(in_mongo)


def test_rerunning_an_as_of_is_idempotent(settings: Settings, simulated) -> None:
    _run(settings, AS_OF, USAGE)
    next_day = AS_OF + dt.timedelta(days=1)
    customer = simulated.subscriptions.find_one({"status": "active"})["user"]
    simulated.usagelogs.insert_one(
        _session(customer, dt.datetime.combine(next_day, dt.time(6), tzinfo=dt.UTC)))
    first, _ = _run(settings, next_day, USAGE)
    before = pq.read_table(first["usagelogs"].path)
    version = lake.table_version_path(settings.lake_dir, "usagelogs", next_day)
    version_before = version.read_text()
    again, validations = _run(settings, next_day, USAGE)
    assert again["usagelogs"].since == first["usagelogs"].since
    assert again["usagelogs"].watermark == first["usagelogs"].watermark
    assert pq.read_table(again["usagelogs"].path).equals(before)
    history = read_table("usagelogs", validations["usagelogs"].history_file)
    assert history["session_id"].is_unique
    assert version.read_text() == version_before

    # A late arrival, then a rerun: same parts, new content, so a new version file
    # (later steps' caches key on it).
    simulated.usagelogs.insert_one(
        _session(customer, dt.datetime.combine(next_day, dt.time(1), tzinfo=dt.UTC)))
    _run(settings, next_day, USAGE)
    assert version.read_text() != version_before


def test_a_stopped_run_does_not_advance_the_watermark(settings: Settings, simulated) -> None:
    db = simulated
    _run(settings, AS_OF, PLANS_AND_USAGE)
    day2, day3 = AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=2)
    customer = db.subscriptions.find_one({"status": "active"})["user"]
    day2_session = _session(customer, dt.datetime.combine(day2, dt.time(8), tzinfo=dt.UTC))
    db.usagelogs.insert_one(day2_session)
    plans = list(db.plans.find())
    db.plans.update_many({}, {"$unset": {"pricing": ""}})  # every plan loses its price
    with pytest.raises(DataValidationError, match="plans"):
        _run(settings, day2, PLANS_AND_USAGE)
    manifest = json.loads(lake.manifest_path(settings.lake_dir, day2).read_text())
    assert manifest["validated"] is False

    # The app data is repaired; the next run starts from day 1's watermark, so day 2's
    # session is in the history although day 2's run stopped.
    db.plans.delete_many({})
    db.plans.insert_many(plans)
    db.usagelogs.insert_one(
        _session(customer, dt.datetime.combine(day3, dt.time(8), tzinfo=dt.UTC)))
    third, validations = _run(settings, day3, PLANS_AND_USAGE)
    assert third["usagelogs"].mode == INCREMENTAL
    assert third["usagelogs"].new_rows == 2
    history = read_table("usagelogs", validations["usagelogs"].history_file)
    assert str(day2_session["_id"]) in set(history["session_id"])


def test_backfill_sees_the_lake_as_it_was_but_impossible_events_are_read(
    settings: Settings, simulated
) -> None:
    db = simulated
    customer = db.subscriptions.find_one({"status": "active"})["user"]
    later = dt.datetime.combine(AS_OF + dt.timedelta(days=20), dt.time(8), tzinfo=dt.UTC)
    impossible = dt.datetime.combine(TODAY + dt.timedelta(days=400), dt.time(8), tzinfo=dt.UTC)
    db.usagelogs.insert_many([_session(customer, later), _session(customer, impossible)])
    result = extract_collection(settings.mongo.uri, settings, "usagelogs", AS_OF, today=TODAY)
    times = pd.read_parquet(result.path)["timestamp"]
    assert (times == pd.Timestamp(impossible)).sum() == 1  # read, for validation to quarantine
    assert (times == pd.Timestamp(later)).sum() == 0  # a later day's event: not this as-of's
    # The impossible event does not drag the watermark into the future.
    assert dt.datetime.fromisoformat(result.watermark) < dt.datetime.combine(
        AS_OF + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)


def test_extract_streams_in_bounded_batches(settings: Settings, simulated) -> None:
    small = settings.model_copy(update={"extract": settings.extract.model_copy(
        update={"batch_rows": 500})})
    result = extract_collection(settings.mongo.uri, small, "usagelogs", AS_OF, today=TODAY)
    assert result.rows == simulated.usagelogs.count_documents({})
    assert result.batches >= result.rows // 500
    assert 0 < result.max_batch_rows <= 500
    assert pq.ParquetFile(result.path).metadata.num_rows == result.rows


def test_full_refresh_after_the_configured_days(settings: Settings, simulated) -> None:
    _run(settings, AS_OF, USAGE)
    weekly = settings.model_copy(update={"extract": settings.extract.model_copy(
        update={"full_refresh_days": 2})})
    day1, day2 = AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=2)
    customer = simulated.subscriptions.find_one({"status": "active"})["user"]
    for day in (day1, day2):
        simulated.usagelogs.insert_one(
            _session(customer, dt.datetime.combine(day, dt.time(7), tzinfo=dt.UTC)))
    assert _run(weekly, day1, USAGE)[0]["usagelogs"].mode == INCREMENTAL
    extracts, validations = _run(weekly, day2, USAGE)
    assert extracts["usagelogs"].mode == FULL
    version = json.loads(Path(validations["usagelogs"].history_file).read_text())
    assert [s["nights"] for s in version["history"]] == [[day2.isoformat()]]


def test_volume_against_the_previous_run_is_reported(settings: Settings, simulated) -> None:
    db = simulated
    _run(settings, AS_OF, PLANS_AND_USAGE)
    day1, day2 = AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=2)
    customer = db.subscriptions.find_one({"status": "active"})["user"]
    db.usagelogs.insert_many([
        _session(customer, dt.datetime.combine(day1, dt.time(h), tzinfo=dt.UTC))
        for h in range(10)
    ])
    first, validations = _run(settings, day1, PLANS_AND_USAGE)
    assert not any("volume" in w for w in validations["usagelogs"].warnings)

    # Next night: twice the plans (a snapshot) and a tenth of the sessions (new per day).
    db.plans.insert_many([p | {"_id": ObjectId()} for p in db.plans.find()])
    db.usagelogs.insert_one(
        _session(customer, dt.datetime.combine(day2, dt.time(9), tzinfo=dt.UTC)))
    _, validations = _run(settings, day2, PLANS_AND_USAGE)
    plans = [w for w in validations["plans"].warnings if w.startswith("volume")]
    usage = [w for w in validations["usagelogs"].warnings if w.startswith("volume")]
    assert plans == [f"volume: rows {2 * first['plans'].rows} vs {first['plans'].rows} in the "
                     "previous run (+100%, tolerance ±50%)"]
    assert usage == ["volume: new rows per day 1 vs 10 in the previous run (-90%, "
                     "tolerance ±50%)"]


# ---------------------------------------------------------------- incremental snapshots


def _usage_on(db, day: dt.date) -> None:
    """A session on `day`, so the run's freshness expectation holds."""
    customer = db.subscriptions.find_one({"status": "active"})["user"]
    db.usagelogs.insert_one(
        _session(customer, dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC)))


def _by_key(path: str, key: str):
    return pq.read_table(path).sort_by(key)


def _full_snapshot(settings: Settings, tmp_path: Path, collection: str, as_of: dt.date):
    """The same collection read in full (a fresh home: no previous snapshot)."""
    fresh = settings.model_copy(update={"home": tmp_path / "full-home"})
    result = extract_collection(fresh.mongo.uri, fresh, collection, as_of, today=TODAY)
    assert result.merged_onto is None
    return _by_key(result.path, lake.TABLES[collection].key)


def test_incremental_snapshot_picks_up_changes_and_equals_a_full_snapshot(
    settings: Settings, simulated, tmp_path: Path
) -> None:
    db = simulated
    first, _ = _run(settings, AS_OF, SNAPSHOTS_AND_EVENTS)
    assert first["users"].merged_onto is None and first["subscriptions"].merged_onto is None

    next_day = AS_OF + dt.timedelta(days=1)
    at = lambda hour: dt.datetime.combine(next_day, dt.time(hour), tzinfo=dt.UTC)  # noqa: E731
    # The app changes a customer (Mongoose stamps updatedAt) and sells a new subscription.
    changed = db.subscriptions.find_one({"status": "active"})
    customer = changed["user"]
    db.users.update_one({"_id": customer}, {"$set": {"npsScore": 2, "updatedAt": at(10)}})
    new_subscription = {k: v for k, v in changed.items() if k != "_id"} | {
        "_id": ObjectId(), "startDate": at(11), "createdAt": at(11), "updatedAt": at(11)}
    db.subscriptions.insert_one(new_subscription)
    # A customer who joins the day after: not in a snapshot as of next_day (past as-of).
    later = dt.datetime.combine(next_day + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    joiner = db.users.find_one({"role": "customer"}) | {
        "_id": ObjectId(), "createdAt": later, "updatedAt": later}
    db.users.insert_one(joiner)
    # Audit: a login and an update; only the login is extracted (the residual $match).
    db.auditlogs.insert_many([
        {"userId": customer, "action": "login", "entity": "User", "timestamp": at(12)},
        {"userId": customer, "action": "update", "entity": "User", "timestamp": at(12)},
    ])
    _usage_on(db, next_day)

    second, validations = _run(settings, next_day, SNAPSHOTS_AND_EVENTS)
    users, subscriptions = second["users"], second["subscriptions"]
    previous_users = str(lake.raw_path(settings.lake_dir, "users", AS_OF))
    assert users.mode == SNAPSHOT and users.merged_onto == previous_users
    assert users.base_as_of == AS_OF.isoformat() and users.since is not None
    # Only the documents changed within the overlap window were read, not the collection.
    assert 1 <= users.new_rows < users.rows / 2
    assert 1 <= subscriptions.new_rows < subscriptions.rows / 2
    assert subscriptions.rows == first["subscriptions"].rows + 1
    assert users.rows == first["users"].rows  # the joiner is not there yet

    user_rows = pq.read_table(users.path).to_pandas().set_index("user_id")
    assert user_rows.loc[str(customer), "nps_score"] == 2
    assert str(joiner["_id"]) not in user_rows.index
    assert str(new_subscription["_id"]) in set(
        pq.read_table(subscriptions.path).column("subscription_id").to_pylist())
    logins = pq.read_table(second["auditlogs"].path).to_pandas()
    assert second["auditlogs"].mode == INCREMENTAL
    assert len(logins) == db.auditlogs.count_documents(
        {"action": "login", "timestamp": {"$gte": dt.datetime.fromisoformat(
            second["auditlogs"].since)}})
    # Same content as reading the collections in full, and it passed the gate.
    for collection in ("users", "subscriptions"):
        merged = _by_key(second[collection].path, lake.TABLES[collection].key)
        assert merged.equals(_full_snapshot(settings, tmp_path, collection, next_day))
        assert validations[collection].quarantined == 0

    # Rerunning the as-of reads from the same previous snapshot: the same file.
    before = pq.read_table(users.path)
    again, _ = _run(settings, next_day, SNAPSHOTS_AND_EVENTS)
    assert again["users"].since == users.since and again["users"].watermark == users.watermark
    assert pq.read_table(again["users"].path).equals(before)


def test_a_deleted_user_disappears_at_the_next_full_snapshot(
    settings: Settings, simulated
) -> None:
    db = simulated
    every_2_days = settings.model_copy(update={"extract": settings.extract.model_copy(
        update={"full_refresh_days": 2})})
    leaver = db.users.find_one({"role": "admin"}) | {"_id": ObjectId()}
    db.users.insert_one(leaver)  # an account with no subscription or events
    _run(every_2_days, AS_OF, USAGE)
    db.users.delete_one({"_id": leaver["_id"]})

    day1, day2 = AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=2)
    _usage_on(db, day1)
    _usage_on(db, day2)
    increment, _ = _run(every_2_days, day1, USAGE)
    assert increment["users"].merged_onto is not None  # deletions are invisible to it...
    ids = set(pq.read_table(increment["users"].path).column("user_id").to_pylist())
    assert str(leaver["_id"]) in ids

    full, _ = _run(every_2_days, day2, USAGE)  # ...until the periodic full snapshot
    assert full["users"].merged_onto is None and full["users"].base_as_of == day2.isoformat()
    ids = set(pq.read_table(full["users"].path).column("user_id").to_pylist())
    assert str(leaver["_id"]) not in ids
    assert len(ids) == db.users.count_documents({})


def test_snapshot_is_read_in_full_without_a_usable_previous_one(
    settings: Settings, simulated
) -> None:
    _run(settings, AS_OF, SNAPSHOTS_AND_EVENTS)
    manifest_file = lake.manifest_path(settings.lake_dir, AS_OF)
    manifest = json.loads(manifest_file.read_text())
    for entry in manifest["tables"]:
        if entry["collection"] == "users":
            entry["schema_fingerprint"] = "0" * 16  # the contract changed since
    manifest_file.write_text(json.dumps(manifest))
    lake.raw_path(settings.lake_dir, "subscriptions", AS_OF).write_bytes(b"not parquet")

    day1 = AS_OF + dt.timedelta(days=1)
    _usage_on(simulated, day1)
    extracts, _ = _run(settings, day1, SNAPSHOTS_AND_EVENTS)
    for collection in ("users", "subscriptions"):
        assert extracts[collection].merged_onto is None
        assert extracts[collection].base_as_of == day1.isoformat()
        assert extracts[collection].rows == simulated[collection].count_documents({})


def test_one_client_serves_every_collection_of_a_run(settings: Settings, simulated) -> None:
    uri = settings.mongo.uri
    extract_collection(uri, settings, "users", AS_OF, today=TODAY)
    client = mongo_client(uri, settings)
    for collection in lake.TABLES:
        extract_collection(uri, settings, collection, AS_OF, today=TODAY)
    assert mongo_client(uri, settings) is client
    close_clients()
    reopened = mongo_client(uri, settings)  # closed cleanly; the next run connects again
    assert reopened is not client
    assert reopened[settings.mongo.database].users.estimated_document_count() > 0


def test_a_moved_home_keeps_its_history(settings: Settings, simulated, tmp_path: Path) -> None:
    import shutil

    _run(settings, AS_OF, USAGE)
    moved_home = tmp_path / "moved-home"
    shutil.move(settings.home, moved_home)
    moved = settings.model_copy(update={"home": moved_home})
    next_day = AS_OF + dt.timedelta(days=1)
    customer = simulated.subscriptions.find_one({"status": "active"})["user"]
    simulated.usagelogs.insert_one(
        _session(customer, dt.datetime.combine(next_day, dt.time(9), tzinfo=dt.UTC)))
    second, validations = _run(moved, next_day, USAGE)
    assert second["usagelogs"].mode == INCREMENTAL  # the old manifests still seed the marks
    history = read_table("usagelogs", validations["usagelogs"].history_file)
    assert len(history) == simulated.usagelogs.count_documents({})
    assert not settings.home.exists()  # nothing was written back into the old place


def test_pointing_a_used_home_at_another_database_stops_clearly(
    settings: Settings, simulated, mongo_client
) -> None:
    from tasks.lake_source import LakeSourceMismatchError

    _run(settings, AS_OF, USAGE)
    recorded = json.loads(lake.source_path(settings.lake_dir).read_text())
    assert recorded["database"] == settings.mongo.database
    other_name = settings.mongo.database + "_other"
    simulate(mongo_client[other_name], customers=30, days=20, seed=9,
             end=AS_OF - dt.timedelta(days=1))
    other = settings.model_copy(
        update={"mongo": settings.mongo.model_copy(update={"database": other_name})})
    try:
        with pytest.raises(LakeSourceMismatchError, match=(
                f"holds the history of database '{settings.mongo.database}'.*points at "
                f"database '{other_name}'.*separate home")):
            extract_collection(other.mongo.uri, other, "users", AS_OF + dt.timedelta(days=1),
                               today=TODAY)
        # The lake is untouched: no raw partition of the other database was written.
        assert not lake.raw_path(settings.lake_dir, "users", AS_OF + dt.timedelta(days=1)).exists()
        # The same database under another home is fine (a second home is a fresh lake).
        fresh = other.model_copy(update={"home": settings.home.parent / "other-home"})
        assert extract_collection(fresh.mongo.uri, fresh, "users", AS_OF, today=TODAY).rows > 0
    finally:
        mongo_client.drop_database(other_name)
