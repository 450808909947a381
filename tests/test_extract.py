"""Extract against the real embedded server: projection, names, units, ids, bad types."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest
from bson import ObjectId

from bbx import lake
from bbx.mongo import MongoUnavailableError, free_port
from bbx.settings import Settings
from tasks.extract import extract_collection, extract_task

AS_OF = dt.date(2026, 3, 1)


def _db(settings: Settings, mongo_client):
    return mongo_client[settings.mongo.database]


def test_usagelogs_are_projected_renamed_and_converted_to_gb(settings, mongo_client) -> None:
    user = ObjectId()
    db = _db(settings, mongo_client)
    db.usagelogs.insert_many([
        {"userId": user, "timestamp": dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC),
         "download": 2_500_000_000, "upload": 500_000_000, "downloadSpeed": 95.5,
         "uploadSpeed": 40.0, "latency": 12.0, "packetLoss": 0.1, "sessionDuration": 45,
         "deviceId": "d1", "deviceType": "mobile", "ipAddress": "10.1.2.3"},
        # A string where a number belongs: kept as a row with a null, for validation.
        {"userId": user, "timestamp": dt.datetime(2026, 2, 2, tzinfo=dt.UTC), "download": "12"},
    ])
    result = extract_collection(settings.mongo.uri, settings, "usagelogs", AS_OF)

    assert result.rows == 2
    assert result.path == str(lake.raw_path(settings.lake_dir, "usagelogs", AS_OF))
    table = pq.read_table(result.path).to_pandas()
    assert list(table.columns) == lake.TABLES["usagelogs"].column_names
    assert "ipAddress" not in table.columns and "ip_address" not in table.columns
    first = table.iloc[0]
    assert first["user_id"] == str(user)
    assert first["download_gb"] == pytest.approx(2.5)
    assert first["upload_gb"] == pytest.approx(0.5)
    assert str(table["timestamp"].dt.tz) == "UTC"
    assert table.iloc[1]["download_gb"] != table.iloc[1]["download_gb"]  # NaN, not a crash


def test_users_extract_drops_pii_and_flattens_address(settings, mongo_client) -> None:
    db = _db(settings, mongo_client)
    db.users.insert_one({
        "firstName": "Asha", "lastName": "Verma", "email": "asha@example.com",
        "phone": "+91-9800000000", "password": "$2b$10$abcdefghijklmnopqrstuv",
        "role": "customer", "status": "active", "npsScore": 9,
        "address": {"street": "1 MG Road", "city": "Pune", "state": "MH", "zipCode": "411001",
                    "country": "USA"},
        "createdAt": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    })
    result = extract_collection(settings.mongo.uri, settings, "users", AS_OF)
    frame = pq.read_table(result.path).to_pandas()
    assert frame.loc[0, "city"] == "Pune"
    text = frame.astype(str).to_csv()
    for pii in ("Asha", "Verma", "asha@example.com", "9800000000", "MG Road", "411001", "$2b$"):
        assert pii not in text


def test_auditlogs_extract_keeps_only_logins(settings, mongo_client) -> None:
    db = _db(settings, mongo_client)
    user = ObjectId()
    when = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    db.auditlogs.insert_many([
        {"userId": user, "action": "login", "entity": "User", "timestamp": when},
        {"userId": user, "action": "update", "entity": "User", "timestamp": when},
    ])
    result = extract_collection(settings.mongo.uri, settings, "auditlogs", AS_OF)
    assert result.rows == 1


def test_empty_collection_gives_an_empty_table_with_the_contract_columns(settings) -> None:
    result = extract_collection(settings.mongo.uri, settings, "feedbacks", AS_OF)
    table = pq.read_table(result.path)
    assert table.num_rows == 0
    assert table.column_names == lake.TABLES["feedbacks"].column_names


def test_unreachable_server_names_host_and_is_not_a_raw_traceback(settings, prefect_api) -> None:
    uri = f"mongodb://127.0.0.1:{free_port()}/"
    fast = settings.model_copy(update={
        "mongo": settings.mongo.model_copy(update={"server_selection_timeout_ms": 300}),
        "extract": settings.extract.model_copy(update={"retries": 1,
                                                       "retry_backoff_seconds": 0.05}),
    })
    with pytest.raises(MongoUnavailableError, match=r"127\.0\.0\.1.*after 2 attempt"):
        extract_task(fast)(uri, fast, "users", AS_OF)


def test_a_past_as_of_snapshot_leaves_out_customers_created_after_it(
    settings, mongo_client
) -> None:
    """Backfilling a past night must see the customer base as it was, not quarantine
    everyone who joined since (their createdAt is after that as-of)."""
    db = _db(settings, mongo_client)
    before = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)
    after = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)
    impossible = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    db.users.insert_many([
        {"role": "customer", "status": "active", "createdAt": before},
        {"role": "customer", "status": "active", "createdAt": after},
        {"role": "customer", "status": "active", "createdAt": impossible},
        {"role": "customer", "status": "active"},  # no createdAt: kept, validation judges it
    ])
    today = dt.date(2026, 3, 20)
    past = pq.read_table(
        extract_collection(settings.mongo.uri, settings, "users", AS_OF, today=today).path
    ).to_pandas()
    created = sorted(past["created_at"].dropna().tolist())
    assert created == [before, impossible]  # the impossible one stays, for quarantine
    assert len(past) == 3
    now = extract_collection(settings.mongo.uri, settings, "users", today, today=today)
    assert pq.read_table(now.path).num_rows == 4


def test_a_document_read_twice_in_one_increment_keeps_its_last_copy() -> None:
    """An index scan on updatedAt can meet a document again after the app updated it."""
    import pyarrow as pa

    from bbx.lake.snapshots import last_copies

    read = pa.table({"user_id": ["a", "b", "a", "c"], "nps_score": [1.0, 5.0, 9.0, 3.0]})
    latest = last_copies(read, "user_id")
    assert latest.to_pydict() == {"user_id": ["b", "a", "c"], "nps_score": [5.0, 9.0, 3.0]}
    assert last_copies(latest, "user_id") is latest  # unique keys: unchanged


def test_only_a_server_that_did_not_answer_is_retried(prefect_api) -> None:
    from prefect import task
    from pymongo.errors import OperationFailure

    from bbx.mongo import MongoUnreachableError
    from tasks.extract import _retry_if_unreachable

    calls: list[str] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=_retry_if_unreachable)
    def read(error: Exception) -> None:
        calls.append(type(error).__name__)
        raise error

    for error, attempts in ((MongoUnavailableError("not authorised"), 1),
                            (OperationFailure("bad query"), 1),
                            (MongoUnreachableError("no answer"), 3)):
        calls.clear()
        with pytest.raises(type(error)):
            read(error)
        assert len(calls) == attempts, type(error).__name__
