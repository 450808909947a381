"""Which state of the data a night reads, and a dry run's own lake.

A night the lake already holds validated (its manifest `validated`, every table's
version file `clean/<c>/_versions/dt=<as_of>.json` and their parts present) can be
rebuilt from that state: what the app looked like that night. A night the lake does
not hold is read from the app as it is today; append-only events and documents created
later are left out by the extract, but some fields hold only the current state
(/work/shared/broadbandx-schema.md, "Current state versus history"), and those cannot
be rewound. `app_state_source` names them for the run's summary.

A dry run writes its lake under `dry-runs/<id>` (settings.dry_run_id). It starts
from copies of the live lake's manifests, so it extracts incrementally from the
last validated night as a real night would, and it never writes the live lake.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from bbx import lake
from bbx.settings import Settings
from tasks.extract import ExtractResult
from tasks.validate import TableValidation

# App fields that describe the customer now, whatever night is computed; those the lake
# reads are listed with their lake column (the others never leave the app).
CURRENT_STATE_FIELDS: tuple[tuple[str, str | None], ...] = (
    ("users.status", "users.account_status"),
    ("users.lastLogin", "users.last_login_at"),
    ("users.updatedAt", "users.updated_at"),
    ("users.npsScore", "users.nps_score"),
    ("subscriptions.status", "subscriptions.subscription_status"),
    ("subscriptions.endDate", "subscriptions.end_date"),
    ("subscriptions.paymentFailures", None),
    ("supporttickets.status", "supporttickets.ticket_status"),
)


@dataclass(frozen=True)
class LakeNight:
    """A night rebuilt from the lake: what the report needs, and where it came from."""

    extracts: list[ExtractResult]
    validations: list[TableValidation]
    source: dict[str, Any] = field(default_factory=dict)


def validated_versions(lake_dir: Path, as_of: dt.date) -> dict[str, str] | None:
    """Per collection, the version file of the lake's validated state of `as_of`, or None
    when the lake does not hold all of it."""
    manifest_file = lake.manifest_path(lake_dir, as_of)
    if not manifest_file.exists():
        return None
    manifest = json.loads(manifest_file.read_text())
    if not manifest.get("validated"):
        return None
    versions = {}
    for collection in lake.TABLES:
        version = lake.table_version_path(lake_dir, collection, as_of)
        if not version.exists():
            return None
        parts = json.loads(version.read_text())["parts"]
        if not all(lake.from_record(lake_dir, p).exists() for p in parts):
            return None
        versions[collection] = str(version)
    return versions


def lake_night(settings: Settings, as_of: dt.date) -> LakeNight | None:
    """The lake's validated state of `as_of` (read from the live lake), or None."""
    lake_dir = settings.live_lake_dir
    versions = validated_versions(lake_dir, as_of)
    if versions is None:
        return None
    manifest = json.loads(lake.manifest_path(lake_dir, as_of).read_text())
    quarantined = manifest.get("quarantined") or {}
    entries = {t["collection"]: t for t in manifest.get("tables", [])}
    extracts, validations = [], []
    for collection, version in versions.items():
        entry = entries.get(collection, {})
        rows = int(entry.get("rows", 0))
        extracts.append(ExtractResult(collection=collection, rows=rows,
                                      path=entry.get("path", version), seconds=0.0,
                                      mode="lake"))
        validations.append(TableValidation(
            collection=collection, rows=rows, quarantined=int(quarantined.get(collection, 0)),
            warnings=[], failed_critical=[], clean_file=version, quarantine_file=None,
            history_file=version))
    source = {
        "kind": "lake",
        "detail": f"the lake's validated state of {as_of} (validated "
                  f"{manifest.get('validated_at', 'earlier')})",
        "unrewound": [],
    }
    return LakeNight(extracts, validations, source)


@task(name="read-validated-lake-night", cache_policy=NONE)
def lake_night_task(settings: Settings, as_of: dt.date) -> LakeNight | None:
    return lake_night(settings, as_of)


def app_state_source(as_of: dt.date, today: dt.date | None = None) -> dict[str, Any]:
    """A night read from the app: for a past night, the fields that could not be rewound."""
    today = today or dt.datetime.now(dt.UTC).date()
    if as_of >= today:
        return {"kind": "app", "detail": "the app's current state", "unrewound": []}
    return {
        "kind": "app",
        "detail": f"the app as it is today ({today}); the lake held no validated state of "
                  f"{as_of}",
        "unrewound": [app for app, _ in CURRENT_STATE_FIELDS],
    }


def seed_dry_run_lake(settings: Settings, as_of: dt.date) -> None:
    """Start a dry run's lake from copies of the live lake's earlier manifests."""
    assert settings.dry_run_id, "only a dry run has a lake of its own"
    source = lake.manifests_dir(settings.live_lake_dir)
    target = lake.manifests_dir(settings.lake_dir)
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.json")) if source.exists() else []:
        try:
            day = dt.date.fromisoformat(path.stem)
        except ValueError:
            continue
        if day < as_of:
            (target / path.name).write_text(json.dumps(
                _pointing_at(settings.live_lake_dir, json.loads(path.read_text())), indent=2))
    live_source = lake.source_path(settings.live_lake_dir)
    if live_source.exists():  # the same source check as a real night, no marker to write
        shutil.copy2(live_source, lake.source_path(settings.lake_dir))


def _pointing_at(live_lake: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """A live manifest whose lake-relative records name the live lake's files, so the
    dry run reads the live history without writing next to it."""
    def absolute(recorded: str) -> str:
        return str(lake.from_record(live_lake, recorded))

    for entry in manifest.get("tables", []):
        for name in ("path", "merged_onto"):
            if entry.get(name):
                entry[name] = absolute(entry[name])
        if entry.get("history"):
            entry["history"] = [absolute(p) for p in entry["history"]]
        if entry.get("fingerprints"):
            entry["fingerprints"] = {absolute(p): f for p, f in entry["fingerprints"].items()}
    return manifest
