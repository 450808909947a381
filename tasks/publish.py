"""Publish: the night's scores become visible to the app in one atomic step.

Documents go to a staging collection, are counted and indexed there, and only
then replace `ml_customer_scores` with `renameCollection(dropTarget=True)`. The
app therefore sees either last night's complete set or tonight's, never a mix
and never an empty collection. The replaced night is kept as
`ml_customer_scores_previous`. On the embedded SecantusDB, whose renameCollection
is a copy a crash can interrupt, the swap is one multi-document transaction
instead (`publish.swap_method`, see replace_in_transaction).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from bson import ObjectId
from prefect import task
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from bbx.lake import SCORES_COLLECTION
from bbx.mongo import MongoUnavailableError, connect, redact
from bbx.settings import Settings

STAGING_SUFFIX = "_staging"
PREVIOUS_SUFFIX = "_previous"
ROLLBACK_SUFFIX = "_rolled_back"  # parks the replaced night during a rollback
# Every publish write waits for the journal: a server killed after acknowledging the
# staged documents must not come back with the rename but without the documents.
JOURNALED = WriteConcern(w=1, j=True)


class PublishCheckError(RuntimeError):
    """The staged scores break the contract with the app; nothing was swapped in."""


PublishProgress = Callable[[str, int], None]


@dataclass(frozen=True)
class PublishResult:
    collection: str
    documents: int
    seconds: float
    swapped: bool = True  # False: a newer night is published and was kept (backfill)
    note: str = ""


@dataclass(frozen=True)
class RollbackResult:
    restored_as_of: dt.date | None
    restored_documents: int
    replaced_as_of: dt.date | None


def previous_scores(db: Database, target: str, as_of: dt.date) -> dict[ObjectId, dict]:
    """userId → the score the app sees now, to stamp on tonight's document as `previous`.

    A rerun of the same night carries that night's own `previous` forward, so
    "crossed into high since the last published night" does not depend on reruns.
    """
    as_of_instant = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    previous: dict[ObjectId, dict] = {}
    fields = {"userId": 1, "asOf": 1, "riskScore": 1, "riskBand": 1, "previous": 1, "_id": 0}
    for doc in db[target].find({}, fields):
        if doc.get("asOf") == as_of_instant:
            if doc.get("previous"):
                previous[doc["userId"]] = doc["previous"]
        else:
            previous[doc["userId"]] = {"asOf": doc.get("asOf"), "riskScore": doc.get("riskScore"),
                                       "riskBand": doc.get("riskBand")}
    return previous


def published_as_of(db: Database, target: str) -> dt.date | None:
    doc = db[target].find_one({}, {"asOf": 1})
    return doc["asOf"].date() if doc and doc.get("asOf") else None


def _churn_reasons(encoded: str | None) -> list[dict]:
    """The scores Parquet's JSON string → an array of {feature, value, effect, text}."""
    return json.loads(encoded) if isinstance(encoded, str) and encoded else []


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
            "churnReasons": _churn_reasons(getattr(row, "churn_reasons", None)),
            "segment": {"id": int(row.segment_id), "name": str(row.segment_name)},
            "elasticity": float(row.elasticity),
            "planId": ObjectId(row.plan_id),
            "price": price_document(row),
            "priceTerms": {
                "demand": float(row.demand),
                "demandTerm": float(row.price_term_demand),
                "elasticityTerm": float(row.price_term_elasticity),
                "riskTerm": float(row.price_term_risk),
            },
            # The A/B arm (control: the plan's static price); unpriced scores have none.
            "pricingArm": str(getattr(row, "pricing_arm", "") or "") or None,
            "priceWeights": {
                "alpha": float(getattr(row, "price_weight_alpha", float("nan"))),
                "beta": float(getattr(row, "price_weight_beta", float("nan"))),
                "gamma": float(getattr(row, "price_weight_gamma", float("nan"))),
            } if hasattr(row, "price_weight_alpha") else None,
            "modelVersions": {
                "churn": str(row.churn_model_version),
                "segmentation": str(row.segment_model_version),
            },
            "createdAt": published_at,
        })
    return documents


def _money(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return round(number, 2) if number == number else None  # NaN: not known


def price_document(row) -> dict:
    """The per-customer `price` object, per billing cycle (docs/data-contract.md).
    Scores the pricing step did not price (no band: a tool's or a test's) keep the
    short form: the monthly list price as base and the scoring's dynamic price."""
    if not hasattr(row, "cycle_dynamic_price"):
        return {"plan": str(row.plan_name), "base": round(float(row.base_price), 2),
                "dynamic": round(float(row.dynamic_price), 2), "currency": str(row.currency)}
    factor = float(row.cycle_factor)
    return {
        "plan": str(row.plan_name),
        "billingCycle": str(row.billing_cycle),
        "base": round(float(row.anchor_price) * factor, 2),  # the formula's P_base: the anchor
        "list": round(float(row.cycle_list_price), 2),
        "paid": _money(row.paid_price),
        "dynamic": round(float(row.cycle_dynamic_price), 2),
        "band": {"min": round(float(row.band_low) * factor, 2),
                 "max": round(float(row.band_high) * factor, 2),
                 "anchorSource": str(row.anchor_source)},
        "monthly": {"anchor": round(float(row.anchor_price), 2),
                    "list": round(float(row.base_price), 2),
                    "dynamic": round(float(row.dynamic_price), 2)},
        "currency": str(row.currency),
    }


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
    # A cent of slack: prices are rounded to paise when published. Priced scores carry
    # their plan's band around its anchor; others the ratios around the list price.
    if {"band_low", "band_high"} <= set(scores.columns):
        floor, ceiling = scores["band_low"], scores["band_high"]
    else:
        floor, ceiling = scores["base_price"] * min_ratio, scores["base_price"] * max_ratio
    low = scores["dynamic_price"] < floor - 0.01
    high = scores["dynamic_price"] > ceiling + 0.01
    if (low | high).any():
        problems.append(f"{int((low | high).sum())} prices outside their bounds")
    if problems:
        raise PublishCheckError("scores not published: " + "; ".join(problems))


def ensure_score_indexes(collection: Collection) -> None:
    """The indexes docs/data-contract.md promises on ml_customer_scores."""
    collection.create_index([("userId", ASCENDING)], unique=True, name="userId_unique")
    collection.create_index([("riskBand", ASCENDING)], name="riskBand")
    collection.create_index([("riskScore", DESCENDING)], name="riskScore")


def flush_to_disk(db: Database) -> None:
    """Ask the server to write everything to disk (the `fsync` admin command).

    The embedded SecantusDB acknowledges j:true writes before they are on disk: a
    server killed right after a rename came back with the staging collection empty
    and the target gone (tests/test_publish_faults.py). `fsync` closes that gap.
    A production user without the fsync privilege relies on j:true, as MongoDB
    honours it."""
    with contextlib.suppress(OperationFailure):
        db.client.admin.command("fsync")


def _no_progress(step: str, documents: int) -> None:
    return None


def swap_in(
    db: Database, staging: str, target: str, expected: int,
    progress: PublishProgress = _no_progress,
) -> None:
    staged = db[staging].count_documents({})
    if staged != expected:
        raise PublishCheckError(
            f"staging collection {staging} holds {staged} documents, expected {expected}"
        )
    progress("counted", staged)
    ensure_score_indexes(db[staging])
    progress("indexed", staged)
    if target in db.list_collection_names():
        # Keep the replaced night for `bbx publish rollback`.
        db[target].aggregate([{"$match": {}}, {"$out": target + PREVIOUS_SUFFIX}])
    progress("previous-kept", staged)
    flush_to_disk(db)  # the staged night is on disk before it becomes visible
    progress("flushed", staged)
    db.client.admin.command(
        "renameCollection", f"{db.name}.{staging}", to=f"{db.name}.{target}", dropTarget=True,
        writeConcern=JOURNALED.document,
    )
    progress("renamed", staged)
    flush_to_disk(db)  # and an acknowledged publish survives a crash right after it


def uses_transaction(client: MongoClient, method: str) -> bool:
    """auto: a transaction on SecantusDB (its buildInfo has `secantusVersion`)."""
    if method != "auto":
        return method == "transaction"
    return "secantusVersion" in client.server_info()


def replace_in_transaction(
    client: MongoClient, db: Database, target: str, documents: list[dict], batch: int,
    progress: PublishProgress = _no_progress,
) -> None:
    """Tonight's documents replace the target's in one multi-document transaction.

    On SecantusDB renameCollection copies documents, so a crash during it leaves the
    target empty (tests/test_publish_faults.py); a committed transaction is atomic
    and durable there. Readers see the old night until the commit."""
    if target in db.list_collection_names():
        # Keep the replaced night for `bbx publish rollback` (not app-visible).
        db[target].aggregate([{"$match": {}}, {"$out": target + PREVIOUS_SUFFIX}])
    ensure_score_indexes(db[target])
    progress("previous-kept", len(documents))
    flush_to_disk(db)
    progress("flushed", len(documents))
    with client.start_session() as session, session.start_transaction(write_concern=JOURNALED):
        db[target].delete_many({}, session=session)
        for start in range(0, len(documents), batch):
            db[target].insert_many(documents[start : start + batch], session=session)
            progress("replacing", min(start + batch, len(documents)))
        counted = db[target].count_documents({}, session=session)
        if counted != len(documents):  # raising aborts the transaction
            raise PublishCheckError(
                f"{target} would hold {counted} documents, expected {len(documents)}")
        progress("counted", counted)
    progress("committed", len(documents))
    flush_to_disk(db)


def publish_scores(
    uri: str,
    settings: Settings,
    as_of: dt.date,
    run_id: str,
    scores_file: str,
    keep_newer: bool = False,
    progress: PublishProgress = _no_progress,
) -> PublishResult:
    """keep_newer: if the app already sees a later as-of (a backfill of past dates),
    leave it in place and say so instead of swapping an older night in.
    progress(step, documents): called after each step, for logs and fault tests.
    rename: "staging" (per batch), "counted", "indexed", "previous-kept", "flushed",
    "renamed"; transaction: "previous-kept", "flushed", "replacing" (per batch),
    "counted", "committed"."""
    started = time.perf_counter()
    scores = pd.read_parquet(scores_file)
    check_scores(scores, settings.pricing.min_ratio, settings.pricing.max_ratio)
    documents = score_documents(scores, as_of, run_id, dt.datetime.now(dt.UTC))
    staging = SCORES_COLLECTION + STAGING_SUFFIX
    client = connect(uri, settings)
    try:
        db = client.get_database(settings.mongo.database, write_concern=JOURNALED)
        visible = published_as_of(db, SCORES_COLLECTION)
        if keep_newer and visible is not None and visible > as_of:
            return PublishResult(
                SCORES_COLLECTION, 0, time.perf_counter() - started, swapped=False,
                note=f"kept the newer night {visible} that the app already sees",
            )
        previous = previous_scores(db, SCORES_COLLECTION, as_of)
        for document in documents:
            if document["userId"] in previous:
                document["previous"] = previous[document["userId"]]
        batch = settings.mongo.batch_size
        if uses_transaction(client, settings.publish.swap_method):
            replace_in_transaction(client, db, SCORES_COLLECTION, documents, batch, progress)
        else:
            db[staging].drop()
            for start in range(0, len(documents), batch):
                db[staging].insert_many(documents[start : start + batch], ordered=False)
                progress("staging", min(start + batch, len(documents)))
            swap_in(db, staging, SCORES_COLLECTION, expected=len(documents), progress=progress)
    except PyMongoError as exc:
        raise MongoUnavailableError(
            f"publish to '{SCORES_COLLECTION}' on {redact(uri)} failed: {type(exc).__name__}; "
            "the app still sees a complete night (the previous one, unless the swap had "
            "committed); rerun the night"
        ) from None
    finally:
        client.close()
    return PublishResult(SCORES_COLLECTION, len(documents), time.perf_counter() - started)


def swap_in_transaction(client: MongoClient, db: Database, target: str, previous: str) -> None:
    """Exchange the two collections' documents in one transaction (see
    replace_in_transaction for why not renames on SecantusDB)."""
    shown, kept = list(db[target].find()), list(db[previous].find())
    ensure_score_indexes(db[target])
    flush_to_disk(db)
    with client.start_session() as session, session.start_transaction(write_concern=JOURNALED):
        db[target].delete_many({}, session=session)
        db[target].insert_many(kept, session=session)
        db[previous].delete_many({}, session=session)
        if shown:
            db[previous].insert_many(shown, session=session)
    flush_to_disk(db)


def rollback_scores(uri: str, settings: Settings) -> RollbackResult:
    """Swap the kept previous night back in; the replaced night becomes the previous one,
    so a second rollback undoes the first. One transaction (SecantusDB) or renames
    after a copy (MongoDB): the app never sees a partial collection."""
    target = SCORES_COLLECTION
    previous = target + PREVIOUS_SUFFIX
    parked = target + ROLLBACK_SUFFIX
    client = connect(uri, settings)
    try:
        db = client.get_database(settings.mongo.database, write_concern=JOURNALED)
        names = set(db.list_collection_names())
        if previous not in names or db[previous].estimated_document_count() == 0:
            raise PublishCheckError(
                f"nothing to roll back to: '{previous}' is missing or empty in "
                f"'{settings.mongo.database}'"
            )
        restored_as_of = published_as_of(db, previous)
        replaced_as_of = published_as_of(db, target) if target in names else None
        if uses_transaction(client, settings.publish.swap_method):
            swap_in_transaction(client, db, target, previous)
            return RollbackResult(restored_as_of, db[target].count_documents({}),
                                  replaced_as_of)
        admin = db.client.admin
        ensure_score_indexes(db[previous])
        if target in names:  # copy, not rename: the app must never see no collection
            db[target].aggregate([{"$match": {}}, {"$out": parked}])
        flush_to_disk(db)
        admin.command("renameCollection", f"{db.name}.{previous}", to=f"{db.name}.{target}",
                      dropTarget=True, writeConcern=JOURNALED.document)
        if target in names:
            admin.command("renameCollection", f"{db.name}.{parked}",
                          to=f"{db.name}.{previous}", dropTarget=True,
                          writeConcern=JOURNALED.document)
        flush_to_disk(db)
        restored = db[target].count_documents({})
    except PyMongoError as exc:
        raise MongoUnavailableError(
            f"rollback of '{target}' on {redact(uri)} failed: {type(exc).__name__}"
        ) from None
    finally:
        client.close()
    return RollbackResult(restored_as_of, restored, replaced_as_of)


@task(name="publish-scores")  # retries: set by the flow
def publish_scores_task(
    uri: str,
    settings: Settings,
    as_of: dt.date,
    run_id: str,
    scores_file: str,
    keep_newer: bool = False,
) -> PublishResult:
    return publish_scores(uri, settings, as_of, run_id, scores_file, keep_newer)
