"""The data gate: validate every extracted table before features are built.

Users are validated first so that every other table's `user_id` can be checked
against the customers that passed. Any stop (critical expectation, too many
quarantined rows) in any table stops the run, with every table's reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from prefect import task

from bbx import lake
from bbx.settings import PROJECT_ROOT, Settings
from tasks.validate import DataValidationError, TableValidation, validate_table

SUITE_DIR = PROJECT_ROOT / "expectations"

__all__ = ["DataValidationError", "validate_lake_task", "validate_lake"]


def validate_lake(
    settings: Settings, as_of: dt.date, raw_files: Mapping[str, str]
) -> list[TableValidation]:
    def run(collection: str, known_user_ids: set[str] | None) -> TableValidation:
        return validate_table(
            collection=collection,
            raw_file=Path(raw_files[collection]),
            clean_file=lake.clean_path(settings.lake_dir, collection, as_of),
            quarantine_file=lake.quarantine_path(settings.lake_dir, collection, as_of),
            suite_dir=SUITE_DIR,
            data_docs_dir=settings.data_docs_dir,
            as_of=as_of,
            max_quarantine_share=settings.validation.max_quarantine_share,
            known_user_ids=known_user_ids,
        )

    users = run("users", None)
    user_ids = set(pd.read_parquet(users.clean_file, columns=["user_id"])["user_id"])
    results, failures = [users], []
    for collection in raw_files:
        if collection == "users":
            continue
        try:
            results.append(run(collection, user_ids))
        except DataValidationError as exc:
            failures.append(str(exc))
    if failures:
        raise DataValidationError("run stopped by data validation:\n  " + "\n  ".join(failures))
    return results


@task(name="validate-lake")
def validate_lake_task(
    settings: Settings, as_of: dt.date, raw_files: Mapping[str, str]
) -> list[TableValidation]:
    return validate_lake(settings, as_of, raw_files)
