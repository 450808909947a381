"""The churn feature table's suite, on features built from a real (simulated) lake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pymongo import MongoClient

from bbx import lake
from bbx.lake.history import read_tables
from bbx.settings import PROJECT_ROOT
from features.customer import build_churn_features
from features.registry import CHURN_FEATURE_NAMES
from simulator import simulate
from tasks.extract import extract_collection, write_manifest
from tasks.gate import validate_lake
from tasks.validate import (
    DataDocsSite,
    DataValidationError,
    feature_suite,
    validate_feature_table,
)
from tests.conftest import fresh_settings

AS_OF = dt.date(2026, 5, 1)
SUITES = PROJECT_ROOT / "expectations"


@pytest.fixture(scope="module")
def features_file(tmp_path_factory: pytest.TempPathFactory, mongo_server_uri: str,
                  empty_mlflow_store: Path) -> Iterator[Path]:
    """Features built once for the module from a simulated lake; the tests only read
    them (a test that breaks them writes its own copy)."""
    settings = fresh_settings(tmp_path_factory.mktemp("features"), mongo_server_uri,
                              empty_mlflow_store)
    client: MongoClient = MongoClient(mongo_server_uri, tz_aware=True)
    try:
        simulate(client[settings.mongo.database], customers=80, days=60, seed=6,
                 end=AS_OF - dt.timedelta(days=1))
        extracts = [extract_collection(settings.mongo.uri, settings, c, AS_OF)
                    for c in lake.TABLES]
        write_manifest(settings, AS_OF, extracts)
        validations = validate_lake(settings, AS_OF, {e.collection: e.path for e in extracts})
        tables = read_tables({v.collection: v.history_file for v in validations})
        frame = build_churn_features(tables, pd.Timestamp(AS_OF, tz="UTC"))
        path = lake.features_path(settings.lake_dir, "churn", AS_OF)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path)
        yield path
    finally:
        client.drop_database(settings.mongo.database)
        client.close()


def _validate(path: Path, tmp_path: Path):
    docs = DataDocsSite(tmp_path / "docs", tmp_path / "gx", listed_results=70)
    return validate_feature_table(path, SUITES, docs, AS_OF, CHURN_FEATURE_NAMES)


def test_suite_checks_every_registry_feature_exists() -> None:
    suite = feature_suite(SUITES, CHURN_FEATURE_NAMES)
    exists = {e["kwargs"]["column"] for e in suite["expectations"]
              if e["type"] == "expect_column_to_exist"}
    assert set(CHURN_FEATURE_NAMES) <= exists
    # Expectations on a feature the registry no longer has are dropped, not failed.
    fewer = feature_suite(SUITES, [n for n in CHURN_FEATURE_NAMES if n != "usage_gb_7d"])
    assert all(e["kwargs"].get("column") != "usage_gb_7d" for e in fewer["expectations"])


def test_features_built_from_the_lake_pass(features_file: Path, tmp_path: Path) -> None:
    result = _validate(features_file, tmp_path)
    assert result.rows > 0 and not result.failed_critical
    assert result.docs_page and Path(result.docs_page).exists()


def test_negative_count_stops_naming_the_feature(features_file: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(features_file)
    frame.iloc[0, frame.columns.get_loc("payment_failures_90d")] = -1
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad)
    with pytest.raises(DataValidationError,
                       match=r"expect_column_values_to_be_between\(payment_failures_90d\): 1 of"):
        _validate(bad, tmp_path)


def test_missing_registry_feature_stops(features_file: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(features_file).drop(columns=["days_to_renewal"])
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad)
    with pytest.raises(DataValidationError, match=r"expect_column_to_exist\(days_to_renewal\)"):
        _validate(bad, tmp_path)


def test_duplicate_customer_stops(features_file: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(features_file)
    bad = tmp_path / "bad.parquet"
    pd.concat([frame, frame.iloc[:1]]).to_parquet(bad)
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_be_unique\(user_id\)"):
        _validate(bad, tmp_path)


def test_no_logins_before_as_of_is_a_warning_not_a_stop(features_file: Path,
                                                          tmp_path: Path) -> None:
    """A lake whose logins (or usage logs) hold nothing before as-of gives those features
    as unknown (features/customer.py): reported, and the night goes on."""
    frame = pd.read_parquet(features_file)
    frame[["logins_30d", "days_since_last_login"]] = float("nan")
    unknown = tmp_path / "no_logins.parquet"
    frame.to_parquet(unknown)
    result = _validate(unknown, tmp_path)
    assert not result.failed_critical
    assert any("logins_30d" in w for w in result.warnings)
    # Another count left null is still a broken table.
    frame = pd.read_parquet(features_file)
    frame["payment_failures_90d"] = float("nan")
    frame.to_parquet(unknown)
    with pytest.raises(DataValidationError, match=r"payment_failures_90d"):
        _validate(unknown, tmp_path)
