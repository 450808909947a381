"""Publishing: contract checks, atomic swap, reruns replace rather than duplicate."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from bson import ObjectId

from bbx.lake import SCORES_COLLECTION
from tasks.publish import (
    PREVIOUS_SUFFIX,
    PublishCheckError,
    publish_scores,
    rollback_scores,
)

AS_OF = dt.date(2026, 3, 1)


def _scores(n: int, price_ratio: float = 1.0) -> pd.DataFrame:
    base = [499.0] * n
    return pd.DataFrame({
        "user_id": [str(ObjectId()) for _ in range(n)],
        "plan_id": [str(ObjectId())] * n,
        "plan_name": ["Basic"] * n,
        "churn_probability": [0.1 + 0.8 * i / max(n - 1, 1) for i in range(n)],
        "risk_score": [10 + 80 * i / max(n - 1, 1) for i in range(n)],
        "risk_band": ["low"] * n,
        "segment_id": [1] * n,
        "segment_name": ["Value-Seekers"] * n,
        "elasticity": [-1.2] * n,
        "base_price": base,
        "dynamic_price": [b * price_ratio for b in base],
        "demand": [0.5] * n,
        "price_term_demand": [0.05] * n,
        "price_term_elasticity": [-0.06] * n,
        "price_term_risk": [-0.01] * n,
        "currency": ["INR"] * n,
        "churn_model_version": ["1"] * n,
        "segment_model_version": ["1"] * n,
    })


def _write(tmp_path, frame: pd.DataFrame, name: str) -> str:
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path)
    return str(path)


def test_publish_writes_one_document_per_customer_in_the_contract_shape(
    settings, mongo_client, tmp_path
) -> None:
    scores = _scores(25)
    result = publish_scores(settings.mongo.uri, settings, AS_OF, "run-1",
                            _write(tmp_path, scores, "s"))
    collection = mongo_client[settings.mongo.database][SCORES_COLLECTION]
    assert result.documents == 25 == collection.count_documents({})
    doc = collection.find_one({"userId": ObjectId(scores.loc[0, "user_id"])})
    assert doc["asOf"] == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert doc["runId"] == "run-1"
    assert 0 <= doc["churnProbability"] <= 1
    assert doc["segment"] == {"id": 1, "name": "Value-Seekers"}
    assert doc["price"] == {"plan": "Basic", "base": 499.0, "dynamic": 499.0, "currency": "INR"}
    assert doc["modelVersions"] == {"churn": "1", "segmentation": "1"}
    indexes = collection.index_information()
    assert indexes["userId_unique"]["unique"] is True
    assert "riskBand" in indexes and "riskScore" in indexes


def test_rerun_replaces_the_night_and_keeps_the_previous_one(
    settings, mongo_client, tmp_path
) -> None:
    db = mongo_client[settings.mongo.database]
    first = _scores(10)
    publish_scores(settings.mongo.uri, settings, AS_OF, "run-1", _write(tmp_path, first, "a"))
    second = _scores(7)
    publish_scores(settings.mongo.uri, settings, AS_OF, "run-2", _write(tmp_path, second, "b"))
    assert db[SCORES_COLLECTION].count_documents({}) == 7
    assert db[SCORES_COLLECTION].distinct("runId") == ["run-2"]
    assert db[SCORES_COLLECTION + PREVIOUS_SUFFIX].distinct("runId") == ["run-1"]


def test_scores_outside_the_contract_are_refused_before_any_write(
    settings, mongo_client, tmp_path
) -> None:
    db = mongo_client[settings.mongo.database]
    publish_scores(settings.mongo.uri, settings, AS_OF, "good", _write(tmp_path, _scores(5), "g"))
    too_expensive = _scores(5, price_ratio=1.5)
    with pytest.raises(PublishCheckError, match="outside their bounds"):
        publish_scores(settings.mongo.uri, settings, AS_OF, "bad",
                       _write(tmp_path, too_expensive, "bad"))
    assert db[SCORES_COLLECTION].distinct("runId") == ["good"]


def test_rollback_swaps_the_previous_night_back_and_a_second_rollback_undoes_it(
    settings, mongo_client, tmp_path
) -> None:
    db = mongo_client[settings.mongo.database]
    night_1, night_2 = AS_OF, AS_OF + dt.timedelta(days=1)
    uri = settings.mongo.uri
    publish_scores(uri, settings, night_1, "run-1", _write(tmp_path, _scores(6), "a"))
    publish_scores(uri, settings, night_2, "run-2", _write(tmp_path, _scores(9), "b"))

    result = rollback_scores(settings.mongo.uri, settings)
    assert (result.restored_as_of, result.restored_documents, result.replaced_as_of) == (
        night_1, 6, night_2)
    assert db[SCORES_COLLECTION].distinct("runId") == ["run-1"]
    assert db[SCORES_COLLECTION + PREVIOUS_SUFFIX].distinct("runId") == ["run-2"]
    assert db[SCORES_COLLECTION].index_information()["userId_unique"]["unique"] is True
    assert "riskScore" in db[SCORES_COLLECTION].index_information()

    rollback_scores(settings.mongo.uri, settings)
    assert db[SCORES_COLLECTION].distinct("runId") == ["run-2"]
    assert db[SCORES_COLLECTION].count_documents({}) == 9
    assert db[SCORES_COLLECTION + PREVIOUS_SUFFIX].distinct("runId") == ["run-1"]


def test_rollback_without_a_previous_night_is_a_clear_error(settings, tmp_path) -> None:
    with pytest.raises(PublishCheckError, match="nothing to roll back to"):
        rollback_scores(settings.mongo.uri, settings)
    publish_scores(settings.mongo.uri, settings, AS_OF, "run-1", _write(tmp_path, _scores(3), "a"))
    with pytest.raises(PublishCheckError, match="nothing to roll back to"):
        rollback_scores(settings.mongo.uri, settings)


def test_a_backfilled_older_night_never_replaces_a_newer_one(
    settings, mongo_client, tmp_path
) -> None:
    db = mongo_client[settings.mongo.database]
    newer = AS_OF + dt.timedelta(days=5)
    publish_scores(settings.mongo.uri, settings, newer, "newer", _write(tmp_path, _scores(4), "n"))
    result = publish_scores(settings.mongo.uri, settings, AS_OF, "older",
                            _write(tmp_path, _scores(5), "o"), keep_newer=True)
    assert result.swapped is False and str(newer) in result.note
    assert db[SCORES_COLLECTION].distinct("runId") == ["newer"]
    # Without keep_newer (a deliberate rerun of a past night) it is swapped in.
    publish_scores(settings.mongo.uri, settings, AS_OF, "older", _write(tmp_path, _scores(5), "o"))
    assert db[SCORES_COLLECTION].distinct("runId") == ["older"]


def test_each_score_remembers_the_last_published_night_even_across_reruns(
    settings, mongo_client, tmp_path
) -> None:
    db = mongo_client[settings.mongo.database]
    first = _scores(3)
    path = _write(tmp_path, first, "a")
    publish_scores(settings.mongo.uri, settings, AS_OF, "run-1", path)
    assert db[SCORES_COLLECTION].count_documents({"previous": {"$exists": True}}) == 0
    night_2 = AS_OF + dt.timedelta(days=1)
    publish_scores(settings.mongo.uri, settings, night_2, "run-2", path)
    publish_scores(settings.mongo.uri, settings, night_2, "run-2b", path)  # a rerun
    for doc in db[SCORES_COLLECTION].find():
        assert doc["runId"] == "run-2b"
        assert doc["previous"]["asOf"] == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
        assert doc["previous"]["riskBand"] == "low"


def test_the_rename_method_publishes_and_rolls_back_the_same_way(
    settings, mongo_client, tmp_path
) -> None:
    """MongoDB's path (staging + renameCollection), forced on the embedded server."""
    settings.publish.swap_method = "rename"
    db = mongo_client[settings.mongo.database]
    uri = settings.mongo.uri
    publish_scores(uri, settings, AS_OF, "run-1", _write(tmp_path, _scores(6), "a"))
    publish_scores(uri, settings, AS_OF + dt.timedelta(days=1), "run-2",
                   _write(tmp_path, _scores(9), "b"))
    assert db[SCORES_COLLECTION].distinct("runId") == ["run-2"]
    assert db[SCORES_COLLECTION].index_information()["userId_unique"]["unique"] is True
    assert "ml_customer_scores_staging" not in db.list_collection_names()
    rollback_scores(uri, settings)
    assert db[SCORES_COLLECTION].distinct("runId") == ["run-1"]
    assert db[SCORES_COLLECTION + PREVIOUS_SUFFIX].distinct("runId") == ["run-2"]
