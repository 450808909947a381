"""Great Expectations' own machinery for validation: a Checkpoint per table (one
validation definition) and the Data Docs site GX builds from the stored results.

Imports great_expectations, which costs seconds: import this module only inside the
validation functions (tasks/validate.py), never at a module's top.

- The Data Docs site is a GX filesystem site (home/data_docs; a dry run's own under
  data_docs/dry-runs/<id>). Its `index.html` is GX's site index.
- The validation results are stored as files in the home's gx folder (gx/validations).
  GX's index lists the stored results, and drops a page from the site once its result is
  gone from the store, so earlier nights stay only because the store persists.
- The site is rebuilt by GX's `build_data_docs` with the result's and its suite's
  identifiers, the call `UpdateDataDocsAction` makes for each result. A night's tables
  are validated inside `one_site_update`, which makes that call once for all of them:
  each build also rebuilds the index, which reads every listed result again.
- A result is stored without its per-row lists (`unexpected_index_list`, ...): the
  quarantine reads them from the run's result in memory; on disk they would hold up to
  one entry per row, bloat the pages and slow every later index build.
- Everything else lives in memory, one context per process and site: the suites (every
  suite in expectations/ from the start, or GX would drop the pages of those not run
  yet; a process of its own, or a backfill beside the nightly would replace the suite
  under the other's checkpoints), the data source, validation definitions, checkpoints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
from great_expectations.core import ExpectationSuiteValidationResult  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context import AbstractDataContext  # noqa: E402
from great_expectations.data_context.store import ValidationResultsStore  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (  # noqa: E402
    ExpectationSuiteIdentifier,
)
from great_expectations.exceptions import DataContextError  # noqa: E402
from great_expectations.render.view import (  # noqa: E402
    DefaultJinjaIndexPageView,
    DefaultJinjaPageView,
)
from jinja2 import BytecodeCache  # noqa: E402
from jinja2.bccache import Bucket  # noqa: E402

from tasks.validate import ROW_LISTS, DataDocsSite  # noqa: E402

log = logging.getLogger(__name__)

SITE = "bbx"
RESULTS_STORE = "validation_results_without_row_lists"
DATA_SOURCE = "lake"


class ValidationResultsWithoutRowLists(ValidationResultsStore):
    """GX's results store, writing each result without its per-row lists."""

    def serialize(self, value: Any) -> Any:
        removed = []
        for item in value.results:
            for key in ROW_LISTS:
                if item.result and key in item.result:
                    removed.append((item.result, key, item.result.pop(key)))
        try:
            return super().serialize(value)
        finally:  # the caller's result keeps them: the quarantine needs the failing rows
            for result, key, rows in removed:
                result[key] = rows


class _CompiledTemplates(BytecodeCache):
    """Jinja's compiled templates, kept in memory for the process."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _CompiledTemplates()


# GX makes a view (a jinja environment) for every page it renders, and each compiles the
# same templates again: three pages per table (result, suite, index). Sharing the
# compiled templates keeps that a fixed cost per process.
class PageView(DefaultJinjaPageView):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED


class IndexPageView(DefaultJinjaIndexPageView):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED


def _view(view: type) -> dict[str, dict[str, str]]:
    return {"view": {"module_name": __name__, "class_name": view.__name__}}


def _on_disk(directory: Path) -> dict[str, str]:
    return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)}


@dataclass
class _Site:
    """A context for one Data Docs site, and the checkpoint of each suite run so far."""

    context: AbstractDataContext
    checkpoints: dict[str, tuple[str, gx.Checkpoint]] = field(default_factory=dict)
    pending: list[Any] | None = None  # inside one_site_update: the pages still to build

    def update(self, identifiers: list[Any]) -> None:
        """The identifiers' pages, and the index, (re)built now or at the batch's end."""
        if self.pending is None:
            self.context.build_data_docs(site_names=[SITE], resource_identifiers=identifiers)
        else:
            self.pending += identifiers

    def checkpoint(self, suite: dict[str, Any], result_format: dict[str, Any]) -> gx.Checkpoint:
        """The suite's checkpoint; the suite is stored again the first time in a process
        and whenever it changed (the feature suite follows the registry)."""
        name, text = suite["name"], json.dumps([suite, result_format], sort_keys=True)
        if name in self.checkpoints and self.checkpoints[name][0] == text:
            return self.checkpoints[name][1]
        context = self.context
        if name in self.checkpoints:
            context.checkpoints.delete(name)
            context.validation_definitions.delete(name)
        # Replaced, not updated: add_or_update compares it expectation by expectation.
        with contextlib.suppress(DataContextError):  # not in expectations/
            context.suites.delete(name)
        source = context.data_sources.get(DATA_SOURCE)
        try:
            batch = source.get_asset(name).get_batch_definition(name)
        except LookupError:
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            name=name, data=batch, suite=context.suites.add(gx.ExpectationSuite(**suite))))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            result_format=result_format,
        ))
        self.checkpoints[name] = (text, checkpoint)
        return checkpoint


@functools.lru_cache(maxsize=4)
def _site(site: DataDocsSite, suite_dir: Path) -> _Site:
    """An ephemeral context whose results store and Data Docs site are files."""
    defaults = InMemoryStoreBackendDefaults()
    stores = dict(defaults.stores)
    del stores[defaults.validation_results_store_name]
    stores[RESULTS_STORE] = {
        "module_name": __name__,
        "class_name": ValidationResultsWithoutRowLists.__name__,
        "store_backend": _on_disk(site.gx_dir / "validations"),
    }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        validation_results_store_name=RESULTS_STORE,
        data_docs_sites={},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.add_data_docs_site(SITE, {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": _on_disk(site.site_dir),
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                               "validation_results_limit": site.listed_results,
                               **_view(IndexPageView)},
        "site_section_builders": {"expectations": _view(PageView),
                                  "validations": _view(PageView),
                                  "profiling": "None"},  # no profiler runs here
    })
    context.data_sources.add_pandas(DATA_SOURCE)
    for path in sorted(suite_dir.glob("*.json")):
        try:
            context.suites.add(gx.ExpectationSuite(**json.loads(path.read_text())))
        except Exception:  # noqa: BLE001 - that suite's own table reports it when it runs
            log.warning("Data Docs: suite %s not loaded", path.name, exc_info=True)
    return _Site(context)


def run_checkpoint(
    frame: Any,
    suite: dict[str, Any],
    parameters: dict[str, Any],
    as_of: dt.date,
    site: DataDocsSite,
    suite_dir: Path,
    result_format: dict[str, Any],
) -> tuple[ExpectationSuiteValidationResult, Path | None]:
    """Validate the frame against the suite; the result is stored and the site updated
    (at the end of the enclosing `one_site_update`, if any).

    Returns the full result (with its row lists) and the result's page in the site.
    """
    docs = _site(site, Path(suite_dir))
    checkpoint = docs.checkpoint(suite, result_format)
    run_id = RunIdentifier(run_name=as_of.isoformat(), run_time=dt.datetime.now(dt.UTC))
    outcome = checkpoint.run(batch_parameters={"dataframe": frame},
                             expectation_parameters=parameters, run_id=run_id)
    key, result = next(iter(outcome.run_results.items()))
    docs.update([key, ExpectationSuiteIdentifier(name=suite["name"])])
    urls = docs.context.get_docs_sites_urls(resource_identifier=key, site_names=[SITE],
                                            only_if_exists=False)  # maybe built at batch end
    url = urls[0].get("site_url") if urls else None
    return result, Path(unquote(urlparse(url).path)) if url else None


@contextlib.contextmanager
def one_site_update(site: DataDocsSite, suite_dir: Path) -> Iterator[None]:
    """Checkpoints run inside store their results as usual; the site is built once, on
    the way out (a failed table's page too: it is the evidence the error points to)."""
    docs = _site(site, Path(suite_dir))
    docs.pending = []
    try:
        yield
    finally:
        identifiers, docs.pending = docs.pending, None
        if identifiers:
            docs.update(identifiers)
