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
from models.app_documents import PublishCheckError, check_scores, score_documents
from models.pricing_engine import priced_scores

STAGING_SUFFIX = "_staging"
PREVIOUS_SUFFIX = "_previous"
ROLLBACK_SUFFIX = "_rolled_back"  # parks the replaced night during a rollback
# Every publish write waits for the journal: a server killed after acknowledging the
# staged documents must not come back with the rename but without the documents.
JOURNALED = WriteConcern(w=1, j=True)


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


def read_priced_scores(scores_file: str, prices_file: str | None = None) -> pd.DataFrame:
    """The night's scores with its prices joined in; without a prices file (a tool's or
    a test's scores), the scores as they are."""
    scores = pd.read_parquet(scores_file)
    return scores if prices_file is None else priced_scores(scores, pd.read_parquet(prices_file))


def published_as_of(db: Database, target: str) -> dt.date | None:
    doc = db[target].find_one({}, {"asOf": 1})
    return doc["asOf"].date() if doc and doc.get("asOf") else None


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
    prices_file: str | None = None,
) -> PublishResult:
    """keep_newer: if the app already sees a later as-of (a backfill of past dates),
    leave it in place and say so instead of swapping an older night in.
    progress(step, documents): called after each step, for logs and fault tests.
    rename: "staging" (per batch), "counted", "indexed", "previous-kept", "flushed",
    "renamed"; transaction: "previous-kept", "flushed", "replacing" (per batch),
    "counted", "committed"."""
    started = time.perf_counter()
    scores = read_priced_scores(scores_file, prices_file)
    check_scores(scores, settings.pricing.min_ratio, settings.pricing.max_ratio)
    documents = score_documents(scores, as_of, run_id, dt.datetime.now(dt.UTC))
    for document in documents:
        document["userId"], document["planId"] = (ObjectId(document["userId"]),
                                                  ObjectId(document["planId"]))
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
    prices_file: str | None = None,
    keep_newer: bool = False,
) -> PublishResult:
    return publish_scores(uri, settings, as_of, run_id, scores_file, keep_newer,
                          prices_file=prices_file)
