"""Validation gate: suites in expectations/, split into clean and quarantined rows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bbx.lake import OBJECT_ID, TABLES
from bbx.settings import PROJECT_ROOT
from tasks.validate import (
    DUPLICATE_REASON,
    ORPHAN_REASON,
    REASON_COLUMN,
    SEVERITIES,
    DataDocsSite,
    DataValidationError,
    TableValidation,
    load_suite,
    validate_table,
)

SUITE_DIR = PROJECT_ROOT / "expectations"
AS_OF = dt.date(2026, 11, 1)
PAST = dt.datetime(2026, 10, 31, 12, tzinfo=dt.UTC)  # fresh: within the 48 h lag
FUTURE = dt.datetime(2026, 11, 3, 8, tzinfo=dt.UTC)

# One valid value per column the suites constrain; any other column gets a type default.
VALID: dict[str, dict[str, Any]] = {
    "users": {"role": "customer", "account_status": "active", "nps_score": 9.0},
    "plans": {
        "plan_name": "Basic",
        "category": "residential",
        "monthly_price": 499.0,
        "yearly_price": 5389.0,
        "currency": "INR",
        "download_mbps": 60.0,
        "upload_mbps": 60.0,
        "data_limit_amount": 500.0,
        "data_limit_unit": "GB",
        "data_unlimited": False,
        "plan_status": "active",
    },
    "subscriptions": {"subscription_status": "active", "billing_cycle": "monthly"},
    "usagelogs": {"download_gb": 1.5, "upload_gb": 0.2, "packet_loss_pct": 0.1},
    "payments": {"currency": "INR", "payment_status": "captured", "attempt_count": 1.0},
    "billings": {"invoice_status": "paid"},
    "supporttickets": {
        "ticket_status": "open",
        "priority": "low",
        "category": "billing",
        "satisfaction_rating": 4.0,
    },
    "auditlogs": {},
    "feedbacks": {"overall_rating": 4.0, "sentiment": "positive"},
}


def object_id(i: int) -> str:
    return f"{i:024x}"


def _default(column: str, type_: pa.DataType | str, i: int) -> Any:
    if type_ == OBJECT_ID:
        return object_id(i)
    if pa.types.is_timestamp(type_):
        return PAST - dt.timedelta(hours=i)
    if pa.types.is_floating(type_):
        return 10.0
    if pa.types.is_boolean(type_):
        return True
    return "x"


def _arrow_type(type_: pa.DataType | str) -> pa.DataType:
    return pa.string() if type_ == OBJECT_ID else type_


def raw_rows(collection: str, n: int) -> list[dict[str, Any]]:
    """n valid rows of a lake table; user_id i points at user i."""
    spec = TABLES[collection]
    valid = VALID[collection]
    return [
        {c.name: valid.get(c.name, _default(c.name, c.type, i)) for c in spec.columns}
        for i in range(n)
    ]


def write_raw(path: Path, collection: str, rows: list[dict[str, Any]]) -> Path:
    spec = TABLES[collection]
    schema = pa.schema([(c.name, _arrow_type(c.type)) for c in spec.columns])
    names = [n for n in schema.names if not rows or n in rows[0]]
    schema = pa.schema([schema.field(n) for n in names])
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


Validate = Callable[..., TableValidation]


def docs_site(tmp_path: Path) -> DataDocsSite:
    return DataDocsSite(tmp_path / "docs", tmp_path / "gx", listed_results=70)


@pytest.fixture()
def validate(tmp_path: Path) -> Validate:
    """Write rows as a raw file and validate them; paths live under tmp_path."""

    def run(
        collection: str,
        rows: list[dict[str, Any]],
        max_share: float = 0.5,
        known_user_ids: set[str] | None = None,
    ) -> TableValidation:
        raw = write_raw(tmp_path / "raw" / f"{collection}.parquet", collection, rows)
        return validate_table(
            collection=collection,
            raw_file=raw,
            clean_file=tmp_path / "clean" / f"{collection}.parquet",
            quarantine_file=tmp_path / "quarantine" / f"{collection}.parquet",
            suite_dir=SUITE_DIR,
            data_docs=docs_site(tmp_path),
            as_of=AS_OF,
            max_quarantine_share=max_share,
            known_user_ids=known_user_ids,
        )

    return run


def quarantined_reasons(result: TableValidation) -> list[str]:
    assert result.quarantine_file is not None
    return pq.read_table(result.quarantine_file).column(REASON_COLUMN).to_pylist()


# ---------------------------------------------------------------- suites


@pytest.mark.parametrize("collection", sorted(TABLES))
def test_every_table_has_a_loadable_suite_with_severities(collection: str) -> None:
    from great_expectations.core import ExpectationSuite

    raw = json.loads((SUITE_DIR / f"{collection}.json").read_text())
    suite = ExpectationSuite(**raw)  # GX 1.x turns each entry into an Expectation object
    configs = [e.configuration for e in suite.expectations]
    assert suite.name == collection
    assert {c.meta["severity"] for c in configs} <= set(SEVERITIES)
    exists = {c.kwargs["column"] for c in configs if c.type == "expect_column_to_exist"}
    assert exists == set(TABLES[collection].column_names)
    key = TABLES[collection].key
    assert any(
        c.type == "expect_column_values_to_be_unique"
        and c.kwargs["column"] == key
        and c.meta["severity"] == "critical"
        for c in configs
    )


def test_suite_without_severity_is_rejected(tmp_path: Path) -> None:
    suite = {
        "name": "t",
        "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {}}],
    }
    (tmp_path / "t.json").write_text(json.dumps(suite))
    with pytest.raises(ValueError, match="meta.severity"):
        load_suite(tmp_path, "t")


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("collection", sorted(TABLES))
def test_clean_table_passes_with_nothing_quarantined(validate: Validate, collection: str) -> None:
    result = validate(collection, raw_rows(collection, 20), max_share=0.0)
    assert (result.rows, result.quarantined, result.failed_critical) == (20, 0, [])
    assert result.quarantine_file is None
    assert pq.read_table(result.clean_file).num_rows == 20


@pytest.mark.parametrize("collection", sorted(TABLES))
def test_optional_columns_may_be_entirely_null(validate: Validate, collection: str) -> None:
    # e.g. cancel_requested_at or data_limit_amount: null for most rows, maybe all.
    required = {
        e["kwargs"]["column"]
        for e in load_suite(SUITE_DIR, collection)["expectations"]
        if e["type"] == "expect_column_values_to_not_be_null"
    }
    rows = [
        {k: (v if k in required else None) for k, v in row.items()}
        for row in raw_rows(collection, 5)
    ]
    result = validate(collection, rows, max_share=0.0)
    assert (result.quarantined, result.failed_critical) == (0, [])


def test_clean_file_keeps_the_lake_schema(validate: Validate) -> None:
    result = validate("usagelogs", raw_rows("usagelogs", 5))
    schema = pq.read_schema(result.clean_file)
    assert schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert schema.names == TABLES["usagelogs"].column_names


def test_negative_download_is_quarantined_with_reason(validate: Validate) -> None:
    rows = raw_rows("usagelogs", 100)
    rows[3]["download_gb"] = -2.0
    rows[7]["download_gb"] = 5000.0  # absurd for one session
    result = validate("usagelogs", rows)
    assert result.quarantined == 2
    assert quarantined_reasons(result) == ["expect_column_values_to_be_between(download_gb)"] * 2
    bad = pq.read_table(result.quarantine_file).column("session_id").to_pylist()
    assert bad == [object_id(3), object_id(7)]
    clean = pq.read_table(result.clean_file)
    assert clean.num_rows == 98 and object_id(3) not in clean.column("session_id").to_pylist()


def test_too_many_quarantined_rows_stop_without_clean_file(
    validate: Validate, tmp_path: Path
) -> None:
    rows = raw_rows("usagelogs", 200)
    for row in rows[:3]:
        row["download_gb"] = -1.0
    with pytest.raises(DataValidationError) as caught:
        validate("usagelogs", rows, max_share=0.01)
    message = str(caught.value)
    assert message.startswith("usagelogs: 3 of 200 rows (1.5%) failed")
    assert "expect_column_values_to_be_between(download_gb)" in message
    assert "1.0% quarantine limit" in message
    assert not (tmp_path / "clean" / "usagelogs.parquet").exists()
    assert caught.value.validation is not None and caught.value.validation.quarantined == 3


def test_failed_rerun_removes_an_earlier_clean_file(validate: Validate, tmp_path: Path) -> None:
    validate("usagelogs", raw_rows("usagelogs", 10))
    assert (tmp_path / "clean" / "usagelogs.parquet").exists()
    rows = raw_rows("usagelogs", 10)
    rows[0]["download_gb"] = -1.0
    with pytest.raises(DataValidationError):
        validate("usagelogs", rows, max_share=0.01)
    assert not (tmp_path / "clean" / "usagelogs.parquet").exists()


def test_missing_required_column_stops(validate: Validate, tmp_path: Path) -> None:
    rows = [
        {k: v for k, v in row.items() if k != "download_gb"} for row in raw_rows("usagelogs", 10)
    ]
    with pytest.raises(DataValidationError, match=r"expect_column_to_exist\(download_gb\)"):
        validate("usagelogs", rows)
    assert not (tmp_path / "clean" / "usagelogs.parquet").exists()


def test_empty_users_table_stops(validate: Validate) -> None:
    with pytest.raises(DataValidationError, match="users: .*expect_table_row_count_to_be_between"):
        validate("users", [])


def test_empty_event_table_only_warns(validate: Validate) -> None:
    result = validate("auditlogs", [])
    assert result.rows == 0
    assert any("expect_table_row_count_to_be_between" in w for w in result.warnings)


def test_a_document_read_twice_is_kept_once_as_its_latest_copy(
    validate: Validate, caplog: pytest.LogCaptureFixture
) -> None:
    rows = raw_rows("subscriptions", 10)
    # The cursor met subscription 4 again after the app cancelled it mid-scan.
    reread = rows[4] | {"subscription_status": "cancelled",
                        "updated_at": rows[4]["updated_at"] + dt.timedelta(minutes=5)}
    rows.insert(2, reread)
    with caplog.at_level("INFO", logger="tasks.validate"):
        result = validate("subscriptions", rows)
    assert (result.rows, result.quarantined, result.repeated_reads) == (10, 0, 1)
    clean = pq.read_table(result.clean_file).to_pandas().set_index("subscription_id")
    assert clean.index.is_unique
    assert clean.loc[rows[5]["subscription_id"], "subscription_status"] == "cancelled"
    assert "subscriptions: 0 of 10 rows quarantined; 1 repeated reads" in caplog.text


def test_same_timestamp_sessions_under_different_ids_are_all_kept(validate: Validate) -> None:
    # The app's hourly generator writes 1-3 sessions per user sharing one timestamp.
    rows = raw_rows("usagelogs", 10)
    for i, gb in ((1, 0.7), (2, 2.3)):
        rows[i] |= {"user_id": rows[0]["user_id"], "timestamp": rows[0]["timestamp"],
                    "download_gb": gb}
    result = validate("usagelogs", rows)
    assert (result.quarantined, result.repeated_reads) == (0, 0)
    assert pq.read_table(result.clean_file).num_rows == 10


def test_the_same_event_written_twice_is_quarantined_and_logged(
    validate: Validate, caplog: pytest.LogCaptureFixture
) -> None:
    rows = raw_rows("usagelogs", 10)
    rows.append(rows[3] | {"session_id": object_id(999)})
    with caplog.at_level("INFO", logger="tasks.validate"):
        result = validate("usagelogs", rows)
    assert result.quarantined == 1
    assert quarantined_reasons(result) == [DUPLICATE_REASON]
    assert result.quarantine_reasons == {DUPLICATE_REASON: 1}
    clean = pq.read_table(result.clean_file).column("session_id").to_pylist()
    assert object_id(3) in clean and object_id(999) not in clean
    assert f"usagelogs: 1 of 11 rows (9.09%) quarantined: {DUPLICATE_REASON} (1)" in caplog.text


def test_quarantine_is_logged_even_when_nothing_is_quarantined(
    validate: Validate, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="tasks.validate"):
        validate("payments", raw_rows("payments", 5))
    assert "payments: 0 of 5 rows quarantined" in caplog.text


def test_known_extra_status_is_kept_with_warning(validate: Validate) -> None:
    rows = raw_rows("subscriptions", 10)
    rows[1]["subscription_status"] = "trialing"
    rows[2]["subscription_status"] = "pending"
    result = validate("subscriptions", rows)
    assert result.quarantined == 0
    assert pq.read_table(result.clean_file).num_rows == 10
    assert any(
        "expect_column_values_to_be_in_set(subscription_status): 2 of 10" in w
        for w in result.warnings
    )


def test_unknown_status_is_quarantined(validate: Validate) -> None:
    rows = raw_rows("subscriptions", 10)
    rows[1]["subscription_status"] = "paused"
    result = validate("subscriptions", rows)
    assert result.quarantined == 1
    assert quarantined_reasons(result) == ["expect_column_values_to_be_in_set(subscription_status)"]


def test_future_timestamp_is_quarantined(validate: Validate) -> None:
    rows = raw_rows("usagelogs", 10)
    rows[2]["timestamp"] = FUTURE
    rows[3]["timestamp"] = dt.datetime(2026, 11, 1, 23, 59, tzinfo=dt.UTC)  # still the as-of day
    result = validate("usagelogs", rows)
    assert result.quarantined == 1
    assert quarantined_reasons(result) == ["expect_column_values_to_be_between(timestamp)"]


def test_orphan_user_id_is_quarantined(validate: Validate) -> None:
    rows = raw_rows("payments", 10)
    known = {object_id(i) for i in range(10)}
    rows[4]["user_id"] = object_id(999)
    result = validate("payments", rows, known_user_ids=known)
    assert result.quarantined == 1
    assert quarantined_reasons(result) == [ORPHAN_REASON]


def test_non_number_stored_as_null_is_quarantined_as_missing(validate: Validate) -> None:
    rows = raw_rows("usagelogs", 10)
    rows[6]["download_gb"] = None  # the extract nulls a string found in a number field
    rows[6]["download_mbps"] = -3.0  # a second reason on the same row
    result = validate("usagelogs", rows)
    assert result.quarantined == 1
    assert quarantined_reasons(result) == [
        "expect_column_values_to_not_be_null(download_gb); "
        "expect_column_values_to_be_between(download_mbps)"
    ]


def test_nps_default_share_is_only_a_warning(validate: Validate) -> None:
    rows = raw_rows("users", 10)
    for row in rows[:8]:
        row["nps_score"] = 7.0
    result = validate("users", rows, max_share=0.0)
    assert result.quarantined == 0
    assert any("expect_column_values_to_not_be_in_set(nps_score)" in w for w in result.warnings)


def test_data_docs_page_is_written(validate: Validate, tmp_path: Path) -> None:
    rows = raw_rows("users", 4)
    rows[0]["role"] = "superuser"
    for row in rows[1:]:
        row["last_login_at"] = None  # share 0.25: a numpy float, which GX's renderer chokes on
    result = validate("users", rows)
    assert result.docs_page and Path(result.docs_page).is_relative_to(tmp_path / "docs")
    html = Path(result.docs_page).read_text()
    assert "last_login_at" in html and "superuser" in html
    assert "0.25" in html  # the observed share, lost if numpy scalars reach the renderer
    # GX's index lists it; the stored result keeps no per-row lists (the pages neither).
    assert Path(result.docs_page).relative_to(tmp_path / "docs").as_posix() in (
        tmp_path / "docs" / "index.html").read_text()
    stored = list((tmp_path / "gx" / "validations" / "users").rglob("*.json"))
    assert len(stored) == 1
    results = [r["result"] for r in json.loads(stored[0].read_text())["results"]]
    assert not any(k in r for r in results for k in ("unexpected_index_list", "unexpected_list"))
    assert "superuser" in stored[0].read_text()  # the partial list a person reads stays


def test_column_of_the_wrong_type_stops(validate: Validate, tmp_path: Path) -> None:
    # A broken extract contract (text in a float column) must stop, not pass unchecked.
    raw = write_raw(tmp_path / "raw" / "usagelogs.parquet", "usagelogs", raw_rows("usagelogs", 3))
    table = pq.read_table(raw)
    index = table.schema.get_field_index("download_gb")
    pq.write_table(table.set_column(index, "download_gb", pa.array(["1", "x", "2"])), raw)
    with pytest.raises(DataValidationError, match=r"\(download_gb\): could not be evaluated"):
        validate_table(
            "usagelogs",
            raw,
            tmp_path / "clean.parquet",
            tmp_path / "q.parquet",
            SUITE_DIR,
            docs_site(tmp_path),
            AS_OF,
            0.5,
        )
    assert not (tmp_path / "clean.parquet").exists()


def test_users_own_key_is_not_checked_for_orphans(validate: Validate) -> None:
    result = validate("users", raw_rows("users", 5), known_user_ids=set())
    assert result.quarantined == 0


def test_two_logins_of_one_user_in_one_millisecond_are_both_kept(validate: Validate) -> None:
    # A login row in the lake is only who and when: that is never "the same document".
    rows = raw_rows("auditlogs", 6)
    rows[1] |= {"user_id": rows[0]["user_id"], "timestamp": rows[0]["timestamp"]}
    result = validate("auditlogs", rows)
    assert result.quarantined == 0
    assert pq.read_table(result.clean_file).num_rows == 6
