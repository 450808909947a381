"""`bbx up`'s whole stack for real, as a data engineer operates it.

One stack per module (starting it costs most of a minute): a real `prefect server`
with its UI, the process work pool, the deployments from prefect.yaml (rendered with the
schedule settings), a worker, the Data Docs server and the MLflow UI, on free ports,
over a small simulated world in its own database on the session's embedded MongoDB.
One night runs on it (a night on the worker is the costly part; what a dry run leaves
alone is checked in process, tests/test_ui_runs.py):

- Through the API: the deployments and their schedule, and a run created as the UI's
  "Custom run" sends it (flat, JSON-typed parameters), scheduled a week ahead and
  deleted, so the worker never picks it up.
- In a real headless Chromium: open the nightly deployment's custom-run form, check it
  explains its parameters, set as_of (the date picker's "Today") and force_train (a
  switch) in the form, submit, and let the worker run the night to completion. Then its
  name, its WARNING log lines from the data gate, its summary artifact, the Data Docs
  page and the MLflow plot that artifact links to, its other artifacts, and what it
  published to the app. Screenshots of the form and the summary go to the test's temp
  folder, or to docs/img/ (the runbook shows them) with BBX_UPDATE_SCREENSHOTS=1.

Every process the stack started is gone after it is brought down, also on failure.

Chromium is Debian's (`make test` installs the `chromium` package when missing);
Playwright drives it through `executable_path`, so no browser is downloaded.
Without Chromium the browser test is skipped, unless BBX_REQUIRE_BROWSER=1 (set by
`make test`).
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

from bbx.lake import SCORES_COLLECTION
from bbx.mongo import free_port
from bbx.settings import PROJECT_ROOT, Settings, load_settings
from tasks.app_views import MODEL_METRICS_COLLECTION, SCAN_HISTORY_COLLECTION

pytestmark = pytest.mark.slow

# Small, as in the deployment test: the stack's night has to run on the worker, train and
# publish, not learn much.
CUSTOMERS = 150
DAYS = 90
DEPLOYMENTS = {"nightly", "train", "score", "backfill"}
DOCS_IMAGES = PROJECT_ROOT / "docs" / "img"
RUN_TIMEOUT_S = 420
SUBMIT_TIMEOUT_S = 90  # above the server's SQLite busy timeout (60 s)
# Read here: the stack fixture clears BBX_* variables before the tests run.
REQUIRE_BROWSER = os.environ.get("BBX_REQUIRE_BROWSER") == "1"
UPDATE_SCREENSHOTS = os.environ.get("BBX_UPDATE_SCREENSHOTS") == "1"


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if REQUIRE_BROWSER:
            pytest.fail("Debian's chromium is not installed (`make test` installs it)")
        pytest.skip("no chromium on PATH (apt-get install chromium, or `make test`)")
    return path


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory,
          mongo_server_uri: str) -> Iterator[tuple[Settings, object]]:
    from bbxcli.up import bring_down, bring_up
    from simulator import simulate

    tmp_path = tmp_path_factory.mktemp("stack")
    client: MongoClient = MongoClient(mongo_server_uri, tz_aware=True)
    database = f"t_stack_{uuid.uuid4().hex[:8]}"
    simulate(client[database], customers=CUSTOMERS, days=DAYS, seed=5,
             end=_today() - dt.timedelta(days=1))
    up = None
    with pytest.MonkeyPatch.context() as monkeypatch:
        # The session's own settings must not leak into the stack, apart from the suite's
        # settings file (a smaller churn search; the stack's nights run on it too).
        for name in [k for k in os.environ
                     if k.startswith(("PREFECT_API", "BBX_")) and k != "BBX_CONFIG"]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
        monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")
        settings = load_settings(
            home=tmp_path / "bbx-home", mongo={"uri": mongo_server_uri, "database": database},
            reports={"data_docs_port": free_port(), "mlflow_port": free_port()})
        try:
            up = bring_up(settings, free_port())
            yield settings, up
        finally:
            bring_down(settings, stop_mongo=False)
            client.drop_database(database)
            client.close()
    if up is not None:  # nothing the stack started is left running
        for pid in filter(None, (up.worker_pid, up.docs_pid, up.mlflow_pid, up.server_pid)):
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)


def _runs_submitted(client, deployment_id, submitted_after: dt.datetime) -> list:
    """The deployment's manual top-level runs created since `submitted_after`."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterParentTaskRunId,
    )

    return [r for r in client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)))
        if r.created and r.created >= submitted_after and r.auto_scheduled is False]


def _submit(page, client, deployment_id, submitted_after: dt.datetime, screenshots: Path):
    """Submit the form and return the run it created.

    Prefect's server on SQLite answers a write that meets another (SQLITE_BUSY) with 503
    "retry". Its Python client retries; the UI shows "Oops. Something went wrong." and
    creates no run (seen on a loaded machine). A user submits again; so does this, up to
    twice more, and only after the server answered the create with an error: a slow or
    lost answer may still have made a run, and a second night must not start. The toast
    lies over the Submit button, so a resubmit goes through the keyboard.
    """
    problems: list[str] = []  # what the page saw go wrong, for the failure message
    refusals: list[int] = []  # error statuses the server gave the create call

    def on_response(response) -> None:
        if response.status >= 400:
            problems.append(f"{response.status} {response.request.method} {response.url}")
            if "/create_flow_run" in response.url:
                refusals.append(response.status)

    page.on("response", on_response)
    page.on("requestfailed", lambda r: problems.append(
        f"failed {r.method} {r.url}: {r.failure}"))
    page.on("console", lambda m: problems.append(
        f"console {m.type}: {m.text[:300]}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    submit = page.get_by_role("button", name="Submit")
    for attempt in range(3):
        refused_before = len(refusals)
        if attempt == 0:
            submit.click()
        else:
            submit.press("Enter")
        deadline = time.monotonic() + SUBMIT_TIMEOUT_S
        while not (runs := _runs_submitted(client, deployment_id, submitted_after)) \
                and len(refusals) == refused_before and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        if runs:
            assert len(runs) == 1, runs
            return runs[0]
        page.screenshot(path=str(screenshots / f"no-run-after-submit-{attempt}.png"))
        print(f"Submit created no run (attempt {attempt + 1}):", problems)
        if len(refusals) == refused_before:
            break  # not refused, only unanswered: submitting again could start a second night
    pytest.fail("Submit created no run; what went wrong in the page:\n" + "\n".join(problems))


def _wait_until_final(client, flow_run):
    """The run once final; past RUN_TIMEOUT_S it is cancelled (the worker stops it) and
    the test fails."""
    from prefect.states import Cancelling

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (flow_run.state and flow_run.state.is_final()):
        if time.monotonic() >= deadline:
            client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
            pytest.fail(f"run still {flow_run.state} after {RUN_TIMEOUT_S} s")
        time.sleep(2)
        flow_run = client.read_flow_run(flow_run.id)
    return flow_run


def test_the_deployments_and_a_run_as_the_custom_run_form_sends_it(stack) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Scheduled

    settings, up = stack
    with temporary_settings({PREFECT_API_URL: up.api_url}), \
            get_client(sync_client=True) as client:
        assert {d.name for d in client.read_deployments()} == DEPLOYMENTS
        nightly = client.read_deployment_by_name("nightly/nightly")
        assert nightly.schedules and nightly.schedules[0].schedule.timezone == (
            settings.schedule.timezone)
        # What the UI's "Custom run" sends: flat, JSON-typed parameters. A week ahead, so
        # the worker never picks it up; the night itself runs in the browser test.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
        parameters = {"as_of": _today().isoformat(), "force_train": True}
        created = client.create_flow_run_from_deployment(
            nightly.id, parameters=parameters, state=Scheduled(scheduled_time=later))
        try:
            stored = client.read_flow_run(created.id)
            # The form's other switches, from the deployment's defaults.
            assert stored.parameters == {"train": True, "dry_run": False} | parameters
            assert stored.state.is_scheduled()
        finally:
            client.delete_flow_run(created.id)


@pytest.mark.browser
def test_a_night_from_the_custom_run_form_runs_on_the_worker_and_publishes(
    stack, mongo_client: MongoClient, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    chromium = _chromium()  # skips (or fails under make test) before anything runs
    settings, up = stack
    today = _today()
    db = mongo_client[settings.mongo.database]
    with temporary_settings({PREFECT_API_URL: up.api_url}), \
            get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("nightly/nightly")
        submitted_after = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        screenshots = DOCS_IMAGES if UPDATE_SCREENSHOTS else tmp_path / "screenshots"
        screenshots.mkdir(parents=True, exist_ok=True)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
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
            force_train = page.get_by_role("switch").nth(1)  # train, force_train, dry_run
            force_train.click()
            page.wait_for_function(
                "() => document.querySelectorAll('[role=switch]')[1]"
                ".getAttribute('aria-checked') === 'true'")
            page.wait_for_timeout(600)  # the switch's animation, for the screenshot
            page.screenshot(path=str(screenshots / "custom-run-form.png"), full_page=True)
            submitted = _submit(page, client, deployment.id, submitted_after, screenshots)
            # Off the run's page while the night runs: the UI would poll the server and
            # redraw the growing log all along, on the cores the night needs.
            page.goto("about:blank")
            flow_run = _wait_until_final(client, submitted)
            worker_log = Path(up.logs["worker"]).read_text()
            assert flow_run.state.is_completed(), (flow_run.state, worker_log[-3000:])
            # Every run log line names its step; library chatter stays out of both logs.
            lines = [log.message for log in client.read_logs(log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))]
            assert lines and all(line.startswith("[") for line in lines), lines
            assert "Created temporary directory" not in worker_log
            assert "{{" not in deployment.job_variables["env"]["PREFECT_LOGGING_SETTINGS_PATH"]
            assert flow_run.parameters == {"as_of": today.isoformat(), "train": True,
                                           "force_train": True, "dry_run": False}
            active = set(db.subscriptions.distinct("user", {"status": "active"}))

            # The run's page: its name says the as-of.
            page.goto(f"{up.ui_url}/runs/flow-run/{flow_run.id}", wait_until="networkidle")
            name = f"nightly {today}"
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
            page.get_by_role("heading", name=f"Nightly run for {today}").wait_for()
            summary = page.inner_text("body")
            assert "Why it matters:" in summary
            assert f"published: {len(active):,} documents to" in summary, summary
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

        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))
        keys = {a.key for a in artifacts}
        assert {"nightly-summary", "nightly-rows", "nightly-risk-bands",
                "nightly-segments", "nightly-price-changes"} <= keys, keys
        summary = next(a for a in artifacts if a.key == "nightly-summary")
        assert "customers scored" in summary.data and "MLflow" in summary.data

    # What the night published to the app.
    scores = db[SCORES_COLLECTION]
    assert scores.count_documents({}) == len(active) > 0
    assert scores.distinct("asOf") == [dt.datetime.combine(today, dt.time(), dt.UTC)]
    assert db[SCAN_HISTORY_COLLECTION].count_documents({"scanType": "scheduled"}) == 1
    assert db[MODEL_METRICS_COLLECTION].count_documents({}) == 1


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
