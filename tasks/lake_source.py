"""One home, one source: the lake records which MongoDB database it holds the history of.

The lake's snapshots are merged night after night and its increments start from the
previous night's watermarks, so a lake fed from two databases silently mixes their
customers. On its first extract the pipeline leaves a marker document with a random
source id in its own collection of the app's database (`ml_pipeline_meta`) and the same
id, with the server and database for people, in `<lake>/source.json`. Every extract
compares the two and stops with a clear message when they differ.

The marker lives in the database rather than being derived from the URI: the embedded
server listens on a new port every run, and one server has many names (localhost,
127.0.0.1, a replica set's members), while a restored backup is still the same data.
A read-only user cannot leave a marker, and a dry run must not: their lakes record
the marker the database already has, else the server and database names, and those
are what later runs are compared on.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from pymongo import MongoClient, ReturnDocument
from pymongo.errors import OperationFailure

from bbx import lake
from bbx.lake.files import write_json
from bbx.mongo import redact
from bbx.settings import Settings

META_COLLECTION = "ml_pipeline_meta"
SOURCE_MARKER = "lake-source"


class LakeSourceMismatchError(RuntimeError):
    """The home's lake was extracted from another database than the one configured."""


def _describe(record: dict[str, Any]) -> str:
    return f"database '{record.get('database')}' on {record.get('server')}"


UNAUTHORIZED = 13


def _database_marker(client: MongoClient, settings: Settings) -> str | None:
    """The database's source id, created once (atomically) if it has none yet; None
    when this user may not write it."""
    meta = client[settings.mongo.database][META_COLLECTION]
    try:
        marker = meta.find_one_and_update(
            {"_id": SOURCE_MARKER},
            {"$setOnInsert": {"sourceId": uuid.uuid4().hex,
                              "createdAt": dt.datetime.now(dt.UTC)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except OperationFailure as exc:
        if exc.code != UNAUTHORIZED:
            raise
        return None
    return str(marker["sourceId"])


def _same_source(recorded: dict[str, Any], here: dict[str, Any],
                 meta: dict[str, Any] | None) -> bool:
    if recorded.get("source_id") is None:  # recorded by a read-only user: names only
        return recorded.get("database") == here["database"] and \
            recorded.get("server") == here["server"]
    return meta is not None and meta.get("sourceId") == recorded["source_id"]


def _lake_has_history(lake_dir: Path) -> bool:
    manifests = lake.manifests_dir(lake_dir)
    return manifests.exists() and any(manifests.glob("*.json"))


def ensure_lake_source(client: MongoClient, uri: str, settings: Settings,
                       may_write: bool = True) -> dict[str, Any]:
    """The lake's source record, written on first use; raises on another source.
    may_write=False (a dry run): never creates the database's marker."""
    path = lake.source_path(settings.lake_dir)
    recorded = json.loads(path.read_text()) if path.exists() else None
    meta = client[settings.mongo.database][META_COLLECTION].find_one({"_id": SOURCE_MARKER})
    here = {"database": settings.mongo.database, "server": redact(uri)}
    if recorded is not None:
        if not _same_source(recorded, here, meta):
            raise LakeSourceMismatchError(
                f"this home's lake ({settings.lake_dir}) holds the history of "
                f"{_describe(recorded)} (source {recorded.get('source_id')}), but the run "
                f"points at {_describe(here)}, "
                + ("which this pipeline has never marked" if meta is None
                   else f"a different source ({meta.get('sourceId')})")
                + ". Mixing them would merge one database's customers into the other's. "
                "Use a separate home for this database (--home or BBX_HOME), or move the "
                "lake folder away to start its history afresh."
            )
        return recorded
    # First extract into this lake (or a lake from before sources were recorded: adopt it).
    record = here | {
        "source_id": _database_marker(client, settings) if may_write
        else (meta or {}).get("sourceId"),
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
        "adopted_existing_lake": _lake_has_history(settings.lake_dir),
    }
    write_json(path, record)
    return record
