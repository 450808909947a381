"""Which state of the data a night reads, and a dry run's own lake.

A night the lake already holds validated (its manifest `validated`, every table's
version file `clean/<c>/_versions/dt=<as_of>.json` and the files of the recorded
clean-table versions present) can be
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
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from bbx import lake
from bbx.lake.history import validated_versions
from bbx.lake.manifests import read_manifest, seed_from
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


def lake_night(settings: Settings, as_of: dt.date) -> LakeNight | None:
    """The lake's validated state of `as_of` (read from the live lake), or None."""
    lake_dir = settings.live_lake_dir
    versions = validated_versions(lake_dir, as_of)
    if versions is None:
        return None
    manifest = read_manifest(lake.manifest_path(lake_dir, as_of))
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
    seed_from(settings.live_lake_dir, settings.lake_dir, as_of)
