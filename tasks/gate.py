"""The data gate: validate every extracted table before features are built.

Users are validated first so that every other table's `user_id` can be checked
against the customers that passed. Any stop (critical expectation, too many
quarantined rows) in any table stops the run, with every table's reason.

Only when every table passed are the night's validated rows committed into the clean
Delta tables. What the gate hands on is, per collection, a table version file: the
collection's full validated history at the as-of date (bbx.lake.history). Only a passed
gate marks the run's manifest `validated`, which is what lets the next run start from
this run's watermarks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from bbx import lake
from bbx.lake.history import write_table_version
from bbx.lake.manifests import (
    manifest_entry,
    mark_validated,
    previous_validated_manifest,
    read_manifest,
)
from bbx.settings import PROJECT_ROOT, Settings
from features.quarantine import TableVolume, volume_warning
from tasks.links import data_docs_link
from tasks.validate import (
    DataDocsSite,
    DataValidationError,
    TableValidation,
    validate_table,
)

SUITE_DIR = PROJECT_ROOT / "expectations"

__all__ = ["DataValidationError", "validate_lake_task", "validate_lake"]

log = logging.getLogger(__name__)


def _volume(entry: dict[str, Any]) -> TableVolume:
    return TableVolume(entry["mode"], entry["rows"], entry["new_rows"],
                       entry.get("days_since_previous"))


def validate_lake(
    settings: Settings, as_of: dt.date, raw_files: Mapping[str, str]
) -> list[TableValidation]:
    manifest_file = lake.manifest_path(settings.lake_dir, as_of)
    manifest = read_manifest(manifest_file) if manifest_file.exists() else None
    previous = previous_validated_manifest(settings.lake_dir, as_of)
    days = (as_of - dt.date.fromisoformat(previous["as_of"])).days if previous else 0
    data_docs = DataDocsSite.of(settings)

    def run(collection: str, known_user_ids: set[str] | None) -> TableValidation:
        return validate_table(
            collection=collection,
            raw_file=Path(raw_files[collection]),
            clean_file=lake.staged_path(settings.lake_dir, collection, as_of),
            quarantine_file=lake.quarantine_path(settings.lake_dir, collection, as_of),
            suite_dir=SUITE_DIR,
            data_docs=data_docs,
            as_of=as_of,
            max_quarantine_share=settings.validation.max_quarantine_share,
            known_user_ids=known_user_ids,
            freshness_max_lag_hours=settings.validation.freshness_max_lag_hours,
        )

    results: list[TableValidation] = []
    failures: list[str] = []
    order = ["users", *(c for c in raw_files if c != "users")]
    user_ids: set[str] | None = None
    # GX is imported here, in the validation task only (it costs seconds).
    from tasks.gx_checkpoint import one_site_update

    with one_site_update(data_docs, SUITE_DIR):
        for collection in order:
            if collection != "users" and user_ids is None:
                break  # without validated users, no reference can be checked
            try:
                validation = run(collection, user_ids)
            except DataValidationError as exc:
                failures.append(str(exc))
                if exc.validation is not None:
                    results.append(exc.validation)
                continue
            if collection == "users":
                clean = pd.read_parquet(validation.clean_file, columns=["user_id"])
                user_ids = set(clean["user_id"])
            entry = manifest_entry(manifest, collection)
            earlier = manifest_entry(previous, collection)
            volume = volume_warning(
                _volume(entry), _volume(earlier), days, settings.validation.volume_tolerance
            ) if entry and earlier else None
            if volume:
                log.warning("%s: %s", collection, volume)
                validation = dataclasses.replace(
                    validation,
                    warnings=[*validation.warnings, volume],
                    failed_expectations=validation.failed_expectations + 1,
                )
            results.append(validation)

    if failures:
        raise DataValidationError("run stopped by data validation:\n  " + "\n  ".join(failures))

    versioned = []
    for validation in results:
        entry = manifest_entry(manifest, validation.collection)
        version, night_file = write_table_version(
            settings.lake_dir, validation.collection, as_of, entry, previous,
            validation.clean_file)
        if entry is not None:
            entry["days_since_previous"] = days or None
        versioned.append(dataclasses.replace(
            validation, clean_file=night_file or str(version), history_file=str(version)))
    if manifest is not None:
        mark_validated(settings.lake_dir, as_of, manifest,
                       {v.collection: v.quarantined for v in versioned})
    return versioned


VOLUME_WHY = ("rows against the previous validated run; a jump or a drop beyond "
              "validation.volume_tolerance often means a broken app job or extract")


def warning_explanation(collection: str, warning: str, suite_dir: Path = SUITE_DIR) -> str:
    """The suite's own explanation (`meta.why`) of the expectation a warning names."""
    if warning.startswith("volume:"):
        return VOLUME_WHY
    path = suite_dir / f"{collection}.json"
    if not path.exists():
        return ""
    for expectation in json.loads(path.read_text()).get("expectations", []):
        column = expectation.get("kwargs", {}).get("column")
        label = f"{expectation['type']}({column})" if column else expectation["type"]
        if warning.startswith(f"{label}:"):
            return str((expectation.get("meta") or {}).get("why", ""))
    return ""


def _publish_artifacts(settings: Settings, as_of: dt.date,
                       validations: list[TableValidation]) -> None:
    from prefect.artifacts import create_link_artifact, create_table_artifact

    create_table_artifact(
        [
            {
                "collection": v.collection,
                "rows extracted": v.rows,
                "rows quarantined": v.quarantined,
                "failed expectations": v.failed_expectations,
                "stopped": bool(v.failed_critical),
            }
            for v in validations
        ],
        key="data-validation",
        description=f"Data gate for {as_of}: rows read and quarantined per table, "
                    "expectations failed (warnings never stop a run; details in Data Docs)",
    )
    index = DataDocsSite.of(settings).index_page
    create_link_artifact(
        link=data_docs_link(settings, index), link_text=f"Data Docs {as_of}", key="data-docs",
        description="Great Expectations Data Docs: this run's results, beside earlier nights'",
    )


@task(name="validate-lake", cache_policy=NONE)
def validate_lake_task(
    settings: Settings, as_of: dt.date, raw_files: Mapping[str, str]
) -> list[TableValidation]:
    try:
        validations = validate_lake(settings, as_of, raw_files)
    except DataValidationError:
        index = DataDocsSite.of(settings).index_page
        if index.exists():
            from prefect.artifacts import create_link_artifact

            create_link_artifact(link=data_docs_link(settings, index),
                                 link_text=f"Data Docs {as_of} (stopped)", key="data-docs",
                                 description="Why the data gate stopped the run")
        raise
    _publish_artifacts(settings, as_of, validations)
    return validations
