"""The Prefect UI as a data engineer uses it, in a real headless Chromium.

`bbx up`'s stack for real (Prefect server and UI, work pool, deployments, worker, the
Data Docs server, the MLflow UI) on free ports, over a small simulated world in its
own database on the session's embedded MongoDB. Through the browser: open the nightly
deployment's custom-run form, check it explains its parameters, set as_of (the date
picker's "Today") and dry_run (a switch) in the form, submit, wait for the run, and
check its name, its WARNING log lines from the data gate, its summary artifact and the
Data Docs page that artifact links to. Screenshots of the form and the summary go to
the test's temp folder, or to docs/img/ (the runbook shows them) with
BBX_UPDATE_SCREENSHOTS=1.

Chromium is Debian's (`make test` installs the `chromium` package when missing);
Playwright drives it through `executable_path`, so no browser is downloaded.
Without Chromium the test is skipped, unless BBX_REQUIRE_BROWSER=1 (set by `make test`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from bbx.mongo import free_port
from bbx.settings import PROJECT_ROOT, Settings, load_settings

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CUSTOMERS = 300
DAYS = 120
DOCS_IMAGES = PROJECT_ROOT / "docs" / "img"
RUN_TIMEOUT_S = 420


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("BBX_REQUIRE_BROWSER") == "1":
            pytest.fail("Debian's chromium is not installed (`make test` installs it)")
        pytest.skip("no chromium on PATH (apt-get install chromium, or `make test`)")
    return path


@pytest.fixture()
def stack(tmp_path: Path, mongo_server_uri: str, mongo_client: MongoClient,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, object]]:
    from bbxcli.up import bring_down, bring_up
    from simulator import simulate

    database = f"t_ui_{uuid.uuid4().hex[:8]}"
    today = dt.datetime.now(dt.UTC).date()
    simulate(mongo_client[database], customers=CUSTOMERS, days=DAYS, seed=5,
             end=today - dt.timedelta(days=1))
    for name in [k for k in os.environ if k.startswith(("PREFECT_API", "BBX_"))]:
        monkeypatch.delenv(name)  # the session's own settings must not leak into the stack
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")
    settings = load_settings(
        home=tmp_path / "bbx-home", mongo={"uri": mongo_server_uri, "database": database},
        reports={"data_docs_port": free_port(), "mlflow_port": free_port()})
    try:
        yield settings, bring_up(settings, free_port())
    finally:
        bring_down(settings, stop_mongo=False)
        mongo_client.drop_database(database)


def _wait_for_run(client, deployment_id, submitted_after: dt.datetime):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterParentTaskRunId,
    )

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        runs = [r for r in client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)))
            if r.created and r.created >= submitted_after and r.auto_scheduled is False]
        if runs and runs[0].state and runs[0].state.is_final():
            return runs[0]
        assert time.monotonic() < deadline, f"no finished run yet: {runs}"
        time.sleep(2)


def test_a_nightly_dry_run_from_the_custom_run_form(
    stack, mongo_client: MongoClient, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    settings, up = stack
    today = dt.datetime.now(dt.UTC).date()
    db = mongo_client[settings.mongo.database]
    collections_before = sorted(db.list_collection_names())
    with temporary_settings({PREFECT_API_URL: up.api_url}), \
            get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("nightly/nightly")
        submitted_after = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        screenshots = DOCS_IMAGES if os.environ.get("BBX_UPDATE_SCREENSHOTS") == "1" \
            else tmp_path / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=_chromium(), headless=True,
                                                 args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": 1440, "height": 1100},
                                       timezone_id="UTC").new_page()
            page.set_default_timeout(30_000)

            # Deployments → nightly → Run → Custom run.
            page.goto(f"{up.ui_url}/deployments/deployment/{deployment.id}",
                      wait_until="networkidle")
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run", exact=True).click()
            page.wait_for_url(re.compile(r"/run(\?|$)"))
            page.get_by_role("button", name="Submit").wait_for()
            page.get_by_text("Leave empty for today (UTC)", exact=False).wait_for()
            form = page.inner_text("body")
            assert "Retrain both models when due" in form
            assert "registry's aliases" in form  # dry_run explains what it leaves alone
            assert "keep_newer" not in form and "Property is type" not in form

            page.get_by_text("Select date").click()
            page.get_by_role("button", name="Today").click()
            page.get_by_role("button", name="Apply").click()
            dry_run = page.get_by_role("switch").nth(2)  # train, force_train, dry_run
            dry_run.click()
            page.wait_for_function(
                "() => document.querySelectorAll('[role=switch]')[2]"
                ".getAttribute('aria-checked') === 'true'")
            page.wait_for_timeout(600)  # the switch's animation, for the screenshot
            page.screenshot(path=str(screenshots / "custom-run-form.png"), full_page=True)
            page.get_by_role("button", name="Submit").click()

            flow_run = _wait_for_run(client, deployment.id, submitted_after)
            worker_log = Path(up.logs["worker"]).read_text()
            assert flow_run.state.is_completed(), (flow_run.state, worker_log[-3000:])
            # Every run log line names its step; library chatter stays out of both logs.
            lines = [log.message for log in client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))]
            assert lines and all(line.startswith("[") for line in lines), lines
            assert "Created temporary directory" not in worker_log
            assert "{{" not in deployment.job_variables["env"]["PREFECT_LOGGING_SETTINGS_PATH"]
            assert flow_run.parameters == {"as_of": today.isoformat(), "train": True,
                                           "force_train": False, "dry_run": True}

            # The run's page: its name says the as-of and "dry run".
            page.goto(f"{up.ui_url}/runs/flow-run/{flow_run.id}", wait_until="networkidle")
            name = f"nightly {today} (dry run)"
            assert page.get_by_text(name, exact=True).first.is_visible()
            # Its logs: the data gate's warning at WARNING level, naming its task.
            warning_rows = page.locator(".log-row", has=page.locator(".log-level-label--warning"))
            warning_rows.first.wait_for()
            warnings = warning_rows.all_inner_texts()
            assert any("[validate-lake" in w and "users:" in w for w in warnings), warnings

            # Its summary artifact, and the Data Docs page it links to.
            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("nightly-summary", exact=True).first.click()
            page.wait_for_load_state("networkidle")
            page.get_by_role("heading", name=f"Nightly run for {today} (dry run)").wait_for()
            summary = page.inner_text("body")
            assert "Why it matters:" in summary and "published: no (dry run" in summary
            page.get_by_role("link", name=name).first.wait_for()  # the side panel loaded
            page.wait_for_timeout(600)  # the page's fade-in, for the screenshot
            page.screenshot(path=str(screenshots / "nightly-summary.png"), full_page=True)
            docs_link = page.get_by_role("link", name=f"Data Docs {today}")
            href = docs_link.get_attribute("href")
            assert href and href.startswith(f"{up.data_docs_url}/"), href
            page.goto(href, wait_until="load")
            assert page.title() == "Data Docs created by Great Expectations"
            # GX's index lists the run's users result (its table is drawn by scripts from
            # a CDN, offline here): read the page's data, then open the result it links.
            listed = re.search(rf"validations/users/{today}/[^']+\.html", page.content())
            assert listed, "GX's index does not list the run's users result"
            opened = page.goto(f"{href.rsplit('/', 1)[0]}/{listed.group(0)}", wait_until="load")
            assert opened and opened.ok and "nps_score" in page.content()
            # The model plots the summary links to open from the stack's MLflow UI.
            plot = page.context.request.get(_first_plot_link(client, flow_run.id))
            assert plot.ok and plot.headers["content-type"] == "image/png"
            browser.close()

    # The dry run left the app as it was.
    assert sorted(db.list_collection_names()) == collections_before
    assert db.ml_customer_scores.count_documents({}) == 0


def _first_plot_link(client, flow_run_id) -> str:
    """The summary's first MLflow plot link (an http URL on the stack's MLflow UI)."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    artifact = client.read_artifacts(artifact_filter=ArtifactFilter(
        key=ArtifactFilterKey(any_=["nightly-summary"]),
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))[0]
    match = re.search(r"\((http://[^)]+get-artifact[^)]+)\)", artifact.data)
    assert match, artifact.data
    return match.group(1)
