"""Validate one raw lake table against its Great Expectations suite.

The suite in `expectations/<collection>.json` is the single source of truth. Every
expectation carries `meta.severity`:

- `critical`   table-level (columns exist, key unique and non-null, table not empty):
               any failure stops the run;
- `quarantine` row-level: the failing rows move to the quarantine file with a
               `quarantine_reason`; the run stops when they exceed the allowed share;
- `warning`    reported in `TableValidation.warnings` and the data docs, never stops.

GX runs the whole suite once on the pandas frame with result_format COMPLETE, whose
`unexpected_index_list` gives the failing rows of each row-level expectation
(measured fast enough for ~1M rows, so no pandas re-implementation of the rules).
Orphan `user_id`s are checked in Arrow, not GX: a value set of every user is slow there.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import task
from prefect.cache_policies import NONE

from bbx.lake import TABLES

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

log = logging.getLogger(__name__)

CRITICAL = "critical"
QUARANTINE = "quarantine"
WARNING = "warning"
SEVERITIES = (CRITICAL, QUARANTINE, WARNING)
REASON_COLUMN = "quarantine_reason"
ORPHAN_REASON = "orphan user_id"
USER_KEY = "user_id"
# Result lists we consume ourselves; dropped before rendering docs (they can hold 1M items).
_BULKY_RESULT_KEYS = ("unexpected_index_list", "unexpected_list", "unexpected_index_query")


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
    clean_file: str
    quarantine_file: str | None


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


def _run_suite(
    frame: Any, suite: dict[str, Any], as_of: dt.date
) -> ExpectationSuiteValidationResult:
    # GX is imported here only: importing it costs seconds, and most callers never validate.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("lake")
        .add_dataframe_asset(suite["name"])
        .add_batch_definition_whole_dataframe("raw")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    return batch.validate(
        gx.ExpectationSuite(**suite),
        result_format={"result_format": "COMPLETE", "partial_unexpected_count": 5},
        expectation_parameters={"as_of_end": as_of_end(as_of)},
    )


def _plain(value: Any) -> Any:
    """numpy scalars → Python scalars, recursively (for messages and GX's renderer)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _describe_failure(result: dict[str, Any]) -> str:
    result = _plain({k: v for k, v in result.items() if k not in _BULKY_RESULT_KEYS})
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


def _orphan_rows(table: pa.Table, known_user_ids: set[str]) -> np.ndarray:
    """Rows whose (non-null) user_id is not a known customer."""
    user_ids = table.column(USER_KEY)
    known = pa.array(list(known_user_ids), type=pa.string())
    orphan = pc.and_(pc.is_valid(user_ids), pc.invert(pc.is_in(user_ids, value_set=known)))
    return np.flatnonzero(orphan.to_numpy(zero_copy_only=False))


def _quarantine_reasons(n_rows: int, row_failures: dict[str, np.ndarray]) -> np.ndarray:
    """Per row: '; '-joined labels of every quarantine rule it broke ('' = clean)."""
    reasons = np.full(n_rows, "", dtype=object)
    for label, rows in row_failures.items():
        if rows.size == 0:
            continue
        current = reasons[rows]
        reasons[rows] = np.where(current == "", label, current + "; " + label)
    return reasons


def _share_message(
    collection: str, rows: int, quarantined: int, row_failures: dict[str, np.ndarray], limit: float
) -> str:
    counts = sorted(((len(r), label) for label, r in row_failures.items() if len(r)), reverse=True)
    what = (
        f"failed {counts[0][1]}"
        if len(counts) == 1
        else "failed " + ", ".join(f"{label} ({n})" for n, label in counts)
    )
    return (
        f"{collection}: {quarantined} of {rows} rows ({quarantined / rows:.1%}) {what} — "
        f"above the {limit:.1%} quarantine limit; run stopped before features"
    )


# ---------------------------------------------------------------- files


def _write_atomically(table: pa.Table, path: Path) -> None:
    """Write beside the target and rename: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale(paths: Iterable[Path]) -> None:
    # A file left by an earlier attempt at this partition would be read as this run's output.
    for path in paths:
        path.unlink(missing_ok=True)


def _write_data_docs(
    result: ExpectationSuiteValidationResult, data_docs_dir: Path, collection: str, as_of: dt.date
) -> Path | None:
    """GX's own validation-results page, one HTML file per table and run.

    Rendered directly (no docs site/store): an ephemeral context has no store to build
    a site from, and the page renderer needs only the result.
    """
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    for item in result.results:
        for key in _BULKY_RESULT_KEYS:
            item.result.pop(key, None)
        # numpy 2 scalars crash GX's number formatter (num_to_str reparses their repr).
        item.result = _plain(item.result)
    try:
        html = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    except Exception:  # docs are for people; a rendering bug must not stop the data
        log.warning("data docs for %s could not be rendered", collection, exc_info=True)
        return None
    path = data_docs_dir / collection / f"{as_of.isoformat()}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


# ---------------------------------------------------------------- entry points


def _check_table(
    collection: str, table: pa.Table, suite_dir: Path, data_docs_dir: Path, as_of: dt.date
) -> _SuiteOutcome:
    """Run the collection's suite on the table and write its data docs page."""
    suite = load_suite(suite_dir, collection)
    missing_columns = {
        e["kwargs"]["column"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_to_exist" and e["kwargs"]["column"] not in table.column_names
    }
    gx_result = _run_suite(table.to_pandas(), suite, as_of)
    outcome = _summarise(gx_result, missing_columns)
    _write_data_docs(gx_result, data_docs_dir, collection, as_of)
    return outcome


def _references_users(collection: str, table: pa.Table) -> bool:
    # In users, user_id is the key itself, not a reference to check.
    return USER_KEY in table.column_names and TABLES[collection].key != USER_KEY


def validate_table(
    collection: str,
    raw_file: Path,
    clean_file: Path,
    quarantine_file: Path,
    suite_dir: Path,
    data_docs_dir: Path,
    as_of: dt.date,
    max_quarantine_share: float,
    known_user_ids: set[str] | None = None,
) -> TableValidation:
    """Split a raw table into clean and quarantined rows, or stop the run.

    Raises DataValidationError on a critical failure or when the quarantined share
    exceeds `max_quarantine_share`; the clean file is then absent (the quarantine
    file and data docs are still written, as evidence).
    """
    clean_file, quarantine_file = Path(clean_file), Path(quarantine_file)
    table = pq.read_table(raw_file)
    rows = table.num_rows
    outcome = _check_table(collection, table, Path(suite_dir), Path(data_docs_dir), as_of)
    row_failures = dict(outcome.row_failures)
    if known_user_ids is not None and _references_users(collection, table):
        orphans = _orphan_rows(table, known_user_ids)
        if orphans.size:
            row_failures[ORPHAN_REASON] = orphans

    if outcome.failed_critical:
        _remove_stale([clean_file])
        validation = TableValidation(
            collection, rows, 0, outcome.warnings, outcome.failed_critical, str(clean_file), None
        )
        raise DataValidationError(
            f"{collection}: critical expectation failed — {'; '.join(outcome.failed_critical)}"
            f" ({rows} rows); run stopped before features",
            validation,
        )

    reasons = _quarantine_reasons(rows, row_failures)
    bad = reasons != ""
    quarantined = int(bad.sum())
    if quarantined:
        bad_rows = table.filter(pa.array(bad)).append_column(
            REASON_COLUMN, pa.array(reasons[bad].tolist(), type=pa.string())
        )
        _write_atomically(bad_rows, quarantine_file)
    else:
        _remove_stale([quarantine_file])
    validation = TableValidation(
        collection,
        rows,
        quarantined,
        outcome.warnings,
        [],
        str(clean_file),
        str(quarantine_file) if quarantined else None,
    )

    if rows and quarantined / rows > max_quarantine_share:
        _remove_stale([clean_file])
        raise DataValidationError(
            _share_message(collection, rows, quarantined, row_failures, max_quarantine_share),
            validation,
        )

    _write_atomically(table.filter(pa.array(~bad)), clean_file)
    for warning in outcome.warnings:
        log.warning("%s: %s", collection, warning)
    return validation


# No result caching: the task's job is its files, which a cache hit would not rewrite.
@task(name="validate-collection", task_run_name="validate-{collection}", cache_policy=NONE)
def validate_collection_task(
    collection: str,
    raw_file: Path,
    clean_file: Path,
    quarantine_file: Path,
    suite_dir: Path,
    data_docs_dir: Path,
    as_of: dt.date,
    max_quarantine_share: float,
    known_user_ids: set[str] | None = None,
) -> TableValidation:
    return validate_table(
        collection,
        raw_file,
        clean_file,
        quarantine_file,
        suite_dir,
        data_docs_dir,
        as_of,
        max_quarantine_share,
        known_user_ids,
    )
