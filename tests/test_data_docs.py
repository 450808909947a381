"""The Data Docs site is Great Expectations' own: each table runs through a Checkpoint,
GX rebuilds the site once for the night's tables, and GX's index lists every night's
results from the store under home/gx. The run report links pages that exist."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest

from bbx import lake
from bbx.settings import PROJECT_ROOT, Settings
from simulator import simulate
from tasks.extract import extract_collection, write_manifest
from tasks.gate import validate_lake
from tasks.report import _links
from tasks.validate import DataDocsSite, DataValidationError, validate_feature_table

AS_OF = dt.date(2026, 5, 1)
TODAY = dt.date(2026, 11, 26)


def _night(settings: Settings, as_of: dt.date) -> list:
    extracts = [extract_collection(settings.mongo.uri, settings, c, as_of, today=TODAY)
                for c in lake.TABLES]
    write_manifest(settings, as_of, extracts)
    return validate_lake(settings, as_of, {e.collection: e.path for e in extracts})


def _listed(index: Path) -> dict[tuple[str, str], list[str]]:
    """(suite, night) → the result pages GX's index links, relative to the site."""
    pages = re.findall(r"'_table_row_link_path': '([^']+)'", index.read_text())
    listed: dict[tuple[str, str], list[str]] = {}
    for page in (p for p in pages if p.startswith("validations/")):
        _, suite, night, *_ = page.split("/")
        listed.setdefault((suite, night), []).append(page)
    return listed


def _markdown_targets(lines: list[str]) -> list[str]:
    return re.findall(r"\]\((file://[^)]+)\)", "\n".join(lines))


def test_gx_index_lists_every_nights_results_and_the_report_links_existing_pages(
    settings: Settings, mongo_client, tmp_path: Path
) -> None:
    # Simulated past the nights: each night's extract reads up to its own as-of day.
    simulate(mongo_client[settings.mongo.database], customers=60, days=40, seed=3,
             end=AS_OF + dt.timedelta(days=2))
    first = _night(settings, AS_OF)
    second = _night(settings, AS_OF + dt.timedelta(days=1))
    site = DataDocsSite.of(settings)
    assert site.index_page == settings.home / "data_docs" / "index.html"
    listed = _listed(site.index_page)
    for night, validations in ((AS_OF, first), (AS_OF + dt.timedelta(days=1), second)):
        assert {v.collection for v in validations} == set(lake.TABLES)
        for v in validations:
            pages = listed[(v.collection, night.isoformat())]
            assert len(pages) == 1, (v.collection, night, pages)
            assert site.site_dir / pages[0] == Path(v.docs_page)
            assert Path(v.docs_page).is_file()
    # Each row's suite link too (GX drops the page of a suite missing from its store).
    suites = set(re.findall(r'href="(expectations/[^"]+\.html)"', site.index_page.read_text()))
    assert {f"expectations/{c}.html" for c in lake.TABLES} <= suites
    assert all((site.site_dir / page).is_file() for page in suites)
    # Results are stored under the home's gx folder, one per table and night.
    stored = list((settings.home / "gx" / "validations").rglob("*.json"))
    assert len(stored) == 2 * len(lake.TABLES)

    # The feature table's checkpoint joins the same site; earlier pages stay listed.
    features = tmp_path / "features.parquet"
    pd.DataFrame({"user_id": ["a"]}).to_parquet(features)
    with pytest.raises(DataValidationError, match="churn_features"):
        validate_feature_table(features, PROJECT_ROOT / "expectations", site, AS_OF, ["x"])
    after = _listed(site.index_page)
    assert ("churn_features", AS_OF.isoformat()) in after
    assert all(after[key] == pages for key, pages in listed.items())

    # The run report's links: GX's index and this night's own pages, files that exist.
    summary = {"as_of": (AS_OF + dt.timedelta(days=1)).isoformat(), "models": {},
               "dry_run": False,
               "data_docs_pages": {v.collection: v.docs_page for v in second}}
    targets = _markdown_targets(_links(settings, summary))
    assert targets[0] == site.index_page.as_uri()
    assert targets[1:] == [Path(v.docs_page).as_uri() for v in second]
    assert all(Path(t.removeprefix("file://")).is_file() for t in targets)

    # A bounded index lists the newest results only; older pages stay in the site.
    few = settings.model_copy(update={"validation": settings.validation.model_copy(
        update={"data_docs_listed_results": len(lake.TABLES)})})
    third = _night(few, AS_OF + dt.timedelta(days=2))
    listed = _listed(DataDocsSite.of(few).index_page)
    assert set(listed) == {(v.collection, (AS_OF + dt.timedelta(days=2)).isoformat())
                           for v in third}
    assert all(Path(v.docs_page).is_file() for v in first + second)
