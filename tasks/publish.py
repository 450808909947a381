"""Publish: the night's scores become visible to the app in one atomic step.

Documents go to a staging collection, are counted and indexed there, and only
then replace `ml_customer_scores` with `renameCollection(dropTarget=True)`. The
app therefore sees either last night's complete set or tonight's, never a mix
and never an empty collection. The replaced night is kept as
`ml_customer_scores_previous`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import pandas as pd
from bson import ObjectId
from prefect import task
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import PyMongoError

from bbx.lake import SCORES_COLLECTION
from bbx.mongo import MongoUnavailableError, connect, redact
from bbx.settings import Settings

STAGING_SUFFIX = "_staging"
PREVIOUS_SUFFIX = "_previous"


class PublishCheckError(RuntimeError):
    """The staged scores break the contract with the app; nothing was swapped in."""


@dataclass(frozen=True)
class PublishResult:
    collection: str
    documents: int
    seconds: float


def score_documents(
    scores: pd.DataFrame, as_of: dt.date, run_id: str, published_at: dt.datetime
) -> list[dict]:
    """Rows of the scores table → documents in the shape of docs/data-contract.md."""
    as_of_instant = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    documents = []
    for row in scores.itertuples(index=False):
        documents.append({
            "userId": ObjectId(row.user_id),
            "asOf": as_of_instant,
            "runId": run_id,
            "churnProbability": float(row.churn_probability),
            "riskScore": float(row.risk_score),
            "riskBand": str(row.risk_band),
            "segment": {"id": int(row.segment_id), "name": str(row.segment_name)},
            "elasticity": float(row.elasticity),
            "planId": ObjectId(row.plan_id),
            "price": {
                "plan": str(row.plan_name),
                "base": round(float(row.base_price), 2),
                "dynamic": round(float(row.dynamic_price), 2),
                "currency": str(row.currency),
            },
            "priceTerms": {
                "demand": float(row.demand),
                "demandTerm": float(row.price_term_demand),
                "elasticityTerm": float(row.price_term_elasticity),
                "riskTerm": float(row.price_term_risk),
            },
            "modelVersions": {
                "churn": str(row.churn_model_version),
                "segmentation": str(row.segment_model_version),
            },
            "createdAt": published_at,
        })
    return documents


def check_scores(scores: pd.DataFrame, min_ratio: float, max_ratio: float) -> None:
    """The contract the app relies on; raise before anything is written."""
    problems: list[str] = []
    required = ["user_id", "churn_probability", "risk_score", "risk_band", "segment_id",
                "base_price", "dynamic_price"]
    nulls = {c: int(scores[c].isna().sum()) for c in required if scores[c].isna().any()}
    if nulls:
        problems.append(f"null values in {nulls}")
    if scores["user_id"].duplicated().any():
        problems.append(f"{int(scores['user_id'].duplicated().sum())} duplicated user_id")
    outside = ~scores["churn_probability"].between(0, 1)
    if outside.any():
        problems.append(f"{int(outside.sum())} churn probabilities outside [0, 1]")
    # A cent of slack: prices are rounded to paise when published.
    low = scores["dynamic_price"] < scores["base_price"] * min_ratio - 0.01
    high = scores["dynamic_price"] > scores["base_price"] * max_ratio + 0.01
    if (low | high).any():
        problems.append(f"{int((low | high).sum())} prices outside their bounds")
    if problems:
        raise PublishCheckError("scores not published: " + "; ".join(problems))


def swap_in(db: Database, staging: str, target: str, expected: int) -> None:
    staged = db[staging].count_documents({})
    if staged != expected:
        raise PublishCheckError(
            f"staging collection {staging} holds {staged} documents, expected {expected}"
        )
    db[staging].create_index([("userId", ASCENDING)], unique=True, name="userId_unique")
    db[staging].create_index([("riskBand", ASCENDING)], name="riskBand")
    db[staging].create_index([("riskScore", DESCENDING)], name="riskScore")
    if target in db.list_collection_names():
        # Keep the replaced night for `bbx publish rollback`.
        db[target].aggregate([{"$match": {}}, {"$out": target + PREVIOUS_SUFFIX}])
    db.client.admin.command(
        "renameCollection", f"{db.name}.{staging}", to=f"{db.name}.{target}", dropTarget=True
    )


def publish_scores(
    uri: str, settings: Settings, as_of: dt.date, run_id: str, scores_file: str
) -> PublishResult:
    started = time.perf_counter()
    scores = pd.read_parquet(scores_file)
    check_scores(scores, settings.pricing.min_ratio, settings.pricing.max_ratio)
    documents = score_documents(scores, as_of, run_id, dt.datetime.now(dt.UTC))
    staging = SCORES_COLLECTION + STAGING_SUFFIX
    client = connect(uri, settings)
    try:
        db = client[settings.mongo.database]
        db[staging].drop()
        batch = settings.mongo.batch_size
        for start in range(0, len(documents), batch):
            db[staging].insert_many(documents[start : start + batch], ordered=False)
        swap_in(db, staging, SCORES_COLLECTION, expected=len(documents))
    except PyMongoError as exc:
        raise MongoUnavailableError(
            f"publish to '{SCORES_COLLECTION}' on {redact(uri)} failed: {type(exc).__name__}; "
            "the app still sees the previous night"
        ) from None
    finally:
        client.close()
    return PublishResult(SCORES_COLLECTION, len(documents), time.perf_counter() - started)


@task(name="publish-scores")
def publish_scores_task(
    uri: str, settings: Settings, as_of: dt.date, run_id: str, scores_file: str
) -> PublishResult:
    return publish_scores(uri, settings, as_of, run_id, scores_file)
