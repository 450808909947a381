"""Validate one raw lake table against its Great Expectations suite.

The suite in `expectations/<collection>.json` is the single source of truth. Every
expectation carries `meta.severity`:

- `critical`   table-level (columns exist, key unique and non-null, table not empty):
               any failure stops the run;
- `quarantine` row-level: the failing rows move to the quarantine file with a
               `quarantine_reason`; the run stops when they exceed the allowed share;
- `warning`    reported in `TableValidation.warnings` and the Data Docs, never stops.

GX runs the whole suite once on the pandas frame with result_format COMPLETE, whose
`unexpected_index_list` gives the failing rows of each row-level expectation
(measured fast enough for ~1M rows, so no pandas re-implementation of the rules).
Orphan `user_id`s are checked in Arrow, not GX: a value set of every user is slow there.
Duplicates are the same document, never "the same user and time": a document the
extract read twice (same `_id`) is kept once, its latest copy, and counted as a repeated
read; where the lake's columns are a document's whole content (usage sessions) a row
identical to an earlier one in every column but `_id` is the same event written twice
and is quarantined (`TableSpec.identical_content_is_duplicate`).
Every table's quarantine counts, by reason, are logged whether or not they stop the run.

Each table runs through a GX Checkpoint (one validation definition, tasks/gx_checkpoint.py):
its result is stored under the home's gx folder and the Data Docs site (home/data_docs,
GX's own index) lists it beside earlier nights'. GX builds the site once for a night's
tables (`tasks.gx_checkpoint.one_site_update`), not once per table.

Suite parameters: `as_of_end` (first instant after the as-of day) and `fresh_since`
(`as_of_end` minus `validation.freshness_max_lag_hours`), for freshness expectations.

The churn feature table has its own suite (`expectations/churn_features.json`,
`validate_feature_table`): every feature in `features.registry` must exist (added
from the registry at run time, so the registry stays the one list), plus ranges.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NONE

from bbx.lake import TABLES
from bbx.lake.files import remove_stale, write_parquet
from bbx.settings import Settings, load_settings
from features.quarantine import (
    DUPLICATE_REASON,
    ORPHAN_REASON,
    REASON_COLUMN,
    USER_KEY,
    drop_repeated_reads,
    identical_rows,
    orphan_rows,
    quarantine_line,
    quarantine_reasons,
    share_message,
)

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

log = logging.getLogger(__name__)

CRITICAL = "critical"
QUARANTINE = "quarantine"
WARNING = "warning"
SEVERITIES = (CRITICAL, QUARANTINE, WARNING)
__all__ = ["DUPLICATE_REASON", "ORPHAN_REASON", "REASON_COLUMN", "DataDocsSite",
           "DataValidationError", "TableValidation", "validate_table", "validate_feature_table"]
FEATURES_SUITE = "churn_features"
# Result lists the quarantine consumes itself; never stored, rendered or put in a message
# (they can hold 1M items).
ROW_LISTS = ("unexpected_index_list", "unexpected_list", "unexpected_index_query")
RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 5}


@dataclass(frozen=True)
class DataDocsSite:
    """Where GX writes: the Data Docs site people browse (GX's index is `index.html`) and
    GX's stores (the validation results that index lists, kept across nights)."""

    site_dir: Path
    gx_dir: Path
    listed_results: int  # the index lists the newest this many results

    @classmethod
    def of(cls, settings: Settings) -> DataDocsSite:
        """The home's site (a dry run's own: the live one is left as it was)."""
        return cls(settings.data_docs_dir, settings.gx_dir,
                   settings.validation.data_docs_listed_results)

    @property
    def index_page(self) -> Path:
        return self.site_dir / "index.html"


class DataValidationError(RuntimeError):
    """The data may not go on to features: a critical failure or too many bad rows."""

    def __init__(self, message: str, validation: TableValidation | None = None) -> None:
        super().__init__(message)
        self.validation = validation


@dataclass(frozen=True)
class TableValidation:
    collection: str
    rows: int
    quarantined: int
    warnings: list[str]
    failed_critical: list[str]
    clean_file: str  # the night's validated rows (after the gate: its file in the clean table)
    quarantine_file: str | None
    failed_expectations: int = 0  # critical, warning and row-level expectations that failed
    docs_page: str | None = None  # this table's GX result page for the run
    history_file: str | None = None  # set by the gate: the table's full validated history
    quarantine_reasons: dict[str, int] = field(default_factory=dict)  # reason → rows
    repeated_reads: int = 0  # copies of a document the extract read more than once (dropped)


@dataclass(frozen=True)
class _SuiteOutcome:
    """What the GX run says, reduced to what the pipeline acts on."""

    failed_critical: list[str]
    warnings: list[str]
    row_failures: dict[str, np.ndarray]  # reason label → row positions that failed it


# ---------------------------------------------------------------- suite + GX


def load_suite(suite_dir: Path, collection: str) -> dict[str, Any]:
    """The suite as reviewed in git (GX 1.x serialisation: name, expectations, meta)."""
    suite = json.loads((suite_dir / f"{collection}.json").read_text())
    for exp in suite["expectations"]:
        severity = (exp.get("meta") or {}).get("severity")
        if severity not in SEVERITIES:
            raise ValueError(
                f"{collection}: {_label(exp['type'], exp['kwargs'])} has no valid "
                f"meta.severity ({severity!r}); expected one of {SEVERITIES}"
            )
    return suite


def as_of_end(as_of: dt.date) -> dt.datetime:
    """First instant after the as-of day: anything at or after it is in the future."""
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)


def _label(expectation_type: str, kwargs: dict[str, Any]) -> str:
    column = kwargs.get("column")
    return f"{expectation_type}({column})" if column else expectation_type


def suite_parameters(as_of: dt.date, freshness_max_lag_hours: float | None) -> dict[str, Any]:
    """None: the configured lag, for callers (tests, tools) that validate without a Settings."""
    if freshness_max_lag_hours is None:
        freshness_max_lag_hours = load_settings().validation.freshness_max_lag_hours
    end = as_of_end(as_of)
    return {
        "as_of_end": end,
        "fresh_since": end - dt.timedelta(hours=freshness_max_lag_hours),
    }


def _plain(value: Any) -> Any:
    """numpy scalars → Python scalars, recursively (for messages)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _describe_failure(result: dict[str, Any]) -> str:
    result = _plain({k: v for k, v in result.items() if k not in ROW_LISTS})
    if "unexpected_count" in result and result.get("element_count") is not None:
        total = result["element_count"]
        count = result["unexpected_count"] or 0
        share = count / total if total else 0.0
        sample = [
            repr(v) if isinstance(v, str) else str(v)
            for v in (result.get("partial_unexpected_list") or [])[:5]
        ]
        return f"{count} of {total} rows ({share:.1%}) unexpected, e.g. [{', '.join(sample)}]"
    if "observed_value" in result:
        return f"observed {result['observed_value']!r}"
    return "failed"


def _exception_message(exception_info: dict[str, Any] | None) -> str | None:
    """GX reports exceptions either flat or keyed by metric; find the first message."""
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return str(info.get("exception_message"))
    return None


def _summarise(
    result: ExpectationSuiteValidationResult, missing_columns: set[str]
) -> _SuiteOutcome:
    failed_critical: list[str] = []
    warnings: list[str] = []
    row_failures: dict[str, np.ndarray] = {}
    for item in result.results:
        config = item.expectation_config
        severity = (config.meta or {}).get("severity")
        label = _label(config.type, config.kwargs)
        if (
            config.kwargs.get("column") in missing_columns
            and config.type != "expect_column_to_exist"
        ):
            continue  # not evaluable; the critical expect_column_to_exist already stops the run
        error = _exception_message(item.exception_info)
        if error:
            # An expectation that cannot be evaluated must not silently pass any severity.
            failed_critical.append(f"{label}: could not be evaluated ({error})")
        elif item.success:
            continue
        elif severity == CRITICAL:
            failed_critical.append(f"{label}: {_describe_failure(item.result)}")
        elif severity == WARNING:
            warnings.append(f"{label}: {_describe_failure(item.result)}")
        else:
            rows = np.asarray(item.result.get("unexpected_index_list") or [], dtype=np.int64)
            if rows.size != (item.result.get("unexpected_count") or 0) or rows.size == 0:
                # Without every failing row we cannot quarantine them: stop, don't guess.
                failed_critical.append(
                    f"{label}: {_describe_failure(item.result)}, "
                    f"but GX returned {rows.size} row indices"
                )
                continue
            previous = row_failures.get(label)
            row_failures[label] = rows if previous is None else np.union1d(previous, rows)
    return _SuiteOutcome(failed_critical, warnings, row_failures)


# ---------------------------------------------------------------- quarantine


def quarantine_message(validation: TableValidation) -> str:
    """One line a person reads: how many rows a table quarantined, and why."""
    v = validation
    return quarantine_line(v.collection, v.rows, v.quarantined, v.quarantine_reasons,
                           v.repeated_reads)


def log_quarantine(validation: TableValidation) -> None:
    # Always said, below the stop limit too: silent drops hide a writer's change.
    level = logging.WARNING if validation.quarantined else logging.INFO
    log.log(level, quarantine_message(validation))


# ---------------------------------------------------------------- entry points


def _check_frame(
    frame: Any,
    suite: dict[str, Any],
    suite_dir: Path,
    data_docs: DataDocsSite,
    as_of: dt.date,
    parameters: dict[str, Any],
) -> tuple[_SuiteOutcome, Path | None]:
    """Run a suite on a pandas frame through its Checkpoint; the Data Docs site is updated."""
    # GX is imported here only: importing it costs seconds, and most callers never validate.
    from tasks.gx_checkpoint import run_checkpoint

    missing_columns = {
        e["kwargs"]["column"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_to_exist" and e["kwargs"]["column"] not in frame.columns
    }
    gx_result, page = run_checkpoint(frame, suite, parameters, as_of, data_docs, suite_dir,
                                     RESULT_FORMAT)
    return _summarise(gx_result, missing_columns), page


def _check_table(
    collection: str,
    table: pa.Table,
    suite_dir: Path,
    data_docs: DataDocsSite,
    as_of: dt.date,
    parameters: dict[str, Any] | None = None,
) -> tuple[_SuiteOutcome, Path | None]:
    """Run the collection's suite on the table; its result joins the Data Docs site."""
    suite = load_suite(suite_dir, collection)
    parameters = parameters or suite_parameters(as_of, None)
    return _check_frame(table.to_pandas(), suite, suite_dir, data_docs, as_of, parameters)


def _references_users(collection: str, table: pa.Table) -> bool:
    # In users, user_id is the key itself, not a reference to check.
    return USER_KEY in table.column_names and TABLES[collection].key != USER_KEY


def validate_table(
    collection: str,
    raw_file: Path,
    clean_file: Path,
    quarantine_file: Path,
    suite_dir: Path,
    data_docs: DataDocsSite,
    as_of: dt.date,
    max_quarantine_share: float,
    known_user_ids: set[str] | None = None,
    freshness_max_lag_hours: float | None = None,
) -> TableValidation:
    """Split a raw table into clean and quarantined rows, or stop the run.

    Raises DataValidationError on a critical failure or when the quarantined share
    exceeds `max_quarantine_share`; the clean file is then absent (the quarantine
    file and the Data Docs are still written, as evidence).
    """
    clean_file, quarantine_file = Path(clean_file), Path(quarantine_file)
    spec = TABLES.get(collection)
    table = pq.read_table(raw_file)
    repeated_reads = 0
    if spec is not None and spec.key in table.column_names:
        table, repeated_reads = drop_repeated_reads(table, spec.key, spec.updated_column)
        if repeated_reads:
            log.info("%s: %d repeated reads of the same document kept once", collection,
                     repeated_reads)
    rows = table.num_rows
    outcome, page = _check_table(
        collection, table, Path(suite_dir), data_docs, as_of,
        suite_parameters(as_of, freshness_max_lag_hours),
    )
    docs_page = str(page) if page else None
    row_failures = dict(outcome.row_failures)
    if known_user_ids is not None and _references_users(collection, table):
        orphans = orphan_rows(table, known_user_ids)
        if orphans.size:
            row_failures[ORPHAN_REASON] = orphans
    if spec is not None and spec.identical_content_is_duplicate and not outcome.failed_critical:
        content = [c for c in spec.content_columns if c in table.column_names]
        duplicates = identical_rows(table, content)
        if duplicates.size:
            row_failures[DUPLICATE_REASON] = duplicates
    reason_counts = {label: int(len(r)) for label, r in row_failures.items() if len(r)}
    failed = len(outcome.failed_critical) + len(outcome.warnings) + len(row_failures)

    if outcome.failed_critical:
        remove_stale([clean_file])
        validation = TableValidation(
            collection, rows, 0, outcome.warnings, outcome.failed_critical, str(clean_file), None,
            failed, docs_page, repeated_reads=repeated_reads,
        )
        raise DataValidationError(
            f"{collection}: critical expectation failed — {'; '.join(outcome.failed_critical)}"
            f" ({rows} rows); run stopped before features",
            validation,
        )

    reasons = quarantine_reasons(rows, row_failures)
    bad = reasons != ""
    quarantined = int(bad.sum())
    if quarantined:
        bad_rows = table.filter(pa.array(bad)).append_column(
            REASON_COLUMN, pa.array(reasons[bad].tolist(), type=pa.string())
        )
        write_parquet(bad_rows, quarantine_file)
    else:
        remove_stale([quarantine_file])
    validation = TableValidation(
        collection,
        rows,
        quarantined,
        outcome.warnings,
        [],
        str(clean_file),
        str(quarantine_file) if quarantined else None,
        failed,
        docs_page,
        quarantine_reasons=reason_counts,
        repeated_reads=repeated_reads,
    )
    log_quarantine(validation)

    if rows and quarantined / rows > max_quarantine_share:
        remove_stale([clean_file])
        raise DataValidationError(
            share_message(collection, rows, quarantined, row_failures, max_quarantine_share),
            validation,
        )

    write_parquet(table.filter(pa.array(~bad)), clean_file)
    for warning in outcome.warnings:
        log.warning("%s: %s", collection, warning)
    return validation


# ---------------------------------------------------------------- feature table


def feature_suite(suite_dir: Path, feature_names: Iterable[str]) -> dict[str, Any]:
    """The reviewed feature suite plus, from the registry, one critical
    expect_column_to_exist per churn feature (the registry is the one list)."""
    suite = load_suite(suite_dir, FEATURES_SUITE)
    names = set(feature_names)
    kept = [
        e for e in suite["expectations"]
        if e["kwargs"].get("column") in names | {USER_KEY, None}
    ]
    for e in suite["expectations"]:
        if e not in kept:  # a feature renamed or dropped in the registry
            log.warning("churn_features: skipping %s on %s (not in the registry)",
                        e["type"], e["kwargs"].get("column"))
    suite = suite | {"expectations": kept}
    listed = {
        e["kwargs"].get("column")
        for e in suite["expectations"]
        if e["type"] == "expect_column_to_exist"
    }
    extra = [
        {
            "type": "expect_column_to_exist",
            "kwargs": {"column": name},
            "meta": {"severity": CRITICAL, "why": "features/registry.py CHURN_FEATURE_NAMES"},
        }
        for name in sorted(names)
        if name not in listed
    ]
    return suite | {"expectations": extra + suite["expectations"]}


def validate_feature_table(
    features_file: Path,
    suite_dir: Path,
    data_docs: DataDocsSite,
    as_of: dt.date,
    feature_names: Iterable[str],
) -> TableValidation:
    """Check the churn feature table (one row per customer, index or column user_id).

    Any critical failure raises DataValidationError naming the feature and counts;
    warnings are returned. Nothing is quarantined: a feature row is derived data, so a
    bad one means a bug or bad input upstream, not a row to drop.
    """
    import pandas as pd

    frame = pd.read_parquet(features_file)
    if USER_KEY not in frame.columns:
        frame = frame.reset_index()
    suite = feature_suite(Path(suite_dir), feature_names)
    outcome, page = _check_frame(frame, suite, Path(suite_dir), data_docs, as_of,
                                 suite_parameters(as_of, None))
    row_level = [f"{label}: {len(rows)} rows" for label, rows in outcome.row_failures.items()]
    failed_critical = outcome.failed_critical + row_level
    validation = TableValidation(
        FEATURES_SUITE, len(frame), 0, outcome.warnings, failed_critical, str(features_file),
        None, len(failed_critical) + len(outcome.warnings), str(page) if page else None,
    )
    if failed_critical:
        raise DataValidationError(
            f"{FEATURES_SUITE}: expectation failed — {'; '.join(failed_critical)} "
            f"({len(frame)} customers); run stopped before training/scoring",
            validation,
        )
    for warning in outcome.warnings:
        log.warning("%s: %s", FEATURES_SUITE, warning)
    return validation


@task(name="validate-features", cache_policy=NONE)
def validate_features_task(
    features_file: str, settings: Settings, as_of: dt.date
) -> TableValidation:
    """Wire after feature building: stops the run if the feature table breaks its suite."""
    from bbx.settings import PROJECT_ROOT
    from features.registry import CHURN_FEATURE_NAMES

    return validate_feature_table(
        Path(features_file), PROJECT_ROOT / "expectations", DataDocsSite.of(settings), as_of,
        CHURN_FEATURE_NAMES,
    )
