"""Operating from the Prefect UI: prefect.yaml, the failure hook and backfills.

The whole stack for real (a `prefect server`, the work pool, the deployments, a worker)
runs a night triggered through the API in tests/test_stack.py.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import os
import time

import pytest
import yaml
from pymongo import MongoClient

from bbx.lake import SCORES_COLLECTION
from bbx.settings import PROJECT_ROOT, load_settings
from bbxcli.up import (
    PREFECT_FILE,
    render_prefect_file,
    stop_group,
)
from tasks.app_views import MODEL_METRICS_COLLECTION, SCAN_HISTORY_COLLECTION

AS_OF = dt.date(2026, 6, 1)
CUSTOMERS = 150
DAYS = 90
DEPLOYMENTS = {"nightly", "train", "score", "backfill"}


def _deployments() -> dict[str, dict]:
    config = yaml.safe_load(PREFECT_FILE.read_text())
    return {d["name"]: d for d in config["deployments"]}


def _flow_of(entrypoint: str):
    module, name = entrypoint.split(":")
    return getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)


def test_prefect_yaml_declares_the_four_deployments_with_flat_parameters() -> None:
    deployments = _deployments()
    assert set(deployments) == DEPLOYMENTS
    for name, deployment in deployments.items():
        assert deployment["work_pool"]["name"] == "bbx-process"
        flow = _flow_of(deployment["entrypoint"])
        signature = inspect.signature(flow.fn)
        for parameter in deployment.get("parameters") or {}:
            assert parameter in signature.parameters, f"{name}: unknown parameter {parameter}"
        for parameter in signature.parameters.values():
            hint = str(parameter.annotation)
            assert "dict" not in hint and "list" not in hint, f"{name}.{parameter.name}: {hint}"
    assert {"as_of", "force_train", "dry_run"} <= set(
        inspect.signature(_flow_of(deployments["nightly"]["entrypoint"]).fn).parameters)
    assert {"start_date", "end_date"} <= set(
        inspect.signature(_flow_of(deployments["backfill"]["entrypoint"]).fn).parameters)
    # The literals in prefect.yaml are the settings' defaults (bbx up applies the settings).
    schedule = yaml.safe_load((PROJECT_ROOT / "configs" / "default.yaml").read_text())["schedule"]
    nightly = deployments["nightly"]["schedules"][0]
    assert nightly["cron"] == schedule["nightly_cron"] == "0 2 * * *"
    assert nightly["timezone"] == schedule["timezone"] == "Asia/Kolkata"
    assert not deployments["train"].get("schedules")  # the nightly retrains when due
    assert not deployments["score"].get("schedules")
    assert not deployments["backfill"].get("schedules")


def test_bbx_up_renders_the_schedule_settings_into_the_deployments(tmp_path) -> None:
    settings = load_settings(home=tmp_path, schedule={
        "timezone": "Europe/London", "nightly_cron": "30 3 * * *", "work_pool": "other-pool"})
    rendered = yaml.safe_load(render_prefect_file(settings, tmp_path / "p.yaml").read_text())
    by_name = {d["name"]: d for d in rendered["deployments"]}
    assert by_name["nightly"]["schedules"][0] == {
        "cron": "30 3 * * *", "timezone": "Europe/London", "active": True}
    assert not by_name["train"].get("schedules")
    assert {d["work_pool"]["name"] for d in rendered["deployments"]} == {"other-pool"}


# --- the real stack ----------------------------------------------------------------


def test_stopping_a_group_that_ignores_sigterm_leaves_nothing_behind() -> None:
    # A loaded Prefect server can outlive SIGTERM's grace period; the SIGKILL path must
    # still wait for the group and reap its leader, or a zombie answers killpg(pid, 0).
    import subprocess

    stubborn = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"], start_new_session=True)
    time.sleep(0.3)  # let the trap be set before the signal comes
    stop_group(stubborn.pid, timeout_s=0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(stubborn.pid, 0)


# --- the failure hook -------------------------------------------------------------------

def test_a_failed_flow_leaves_a_clear_message_and_a_prefect_event(
    prefect_api, monkeypatch
) -> None:
    from prefect import flow

    from tasks.report import FAILURE_EVENT, on_flow_failure

    events: list[dict] = []
    monkeypatch.setattr("prefect.events.emit_event", lambda **kw: events.append(kw))

    @flow(name="failing-night", on_failure=[on_flow_failure])
    def failing_night(as_of: dt.date | None = None) -> None:
        raise RuntimeError("cannot reach MongoDB at mongodb://db:27017")

    with pytest.raises(RuntimeError):
        failing_night(as_of=AS_OF)
    assert len(events) == 1
    event = events[0]
    assert event["event"] == FAILURE_EVENT
    message = event["payload"]["message"]
    assert "failing-night for as-of 2026-06-01 failed" in message
    assert "cannot reach MongoDB" in message
    assert "last complete night" in message and "rerun the same as_of" in message
    assert event["resource"]["prefect.resource.id"].startswith("prefect.flow-run.")


# --- backfill --------------------------------------------------------------------------


def test_backfill_dates_are_inclusive_and_a_reversed_range_is_refused() -> None:
    from flows.backfill import BackfillRangeError, nights

    assert nights(AS_OF, AS_OF + dt.timedelta(days=2)) == [
        AS_OF, AS_OF + dt.timedelta(days=1), AS_OF + dt.timedelta(days=2)]
    with pytest.raises(BackfillRangeError, match="reversed"):
        nights(AS_OF, AS_OF - dt.timedelta(days=1))
    with pytest.raises(BackfillRangeError, match="after today"):
        nights(AS_OF, AS_OF + dt.timedelta(days=1), today=AS_OF)


@pytest.mark.slow
def test_backfill_runs_each_night_once_and_never_replaces_a_newer_night(
    flow_env, mongo_client: MongoClient
) -> None:
    from flows.backfill import backfill
    from simulator import simulate

    db = mongo_client[flow_env.mongo.database]
    simulate(db, customers=CUSTOMERS, days=DAYS, seed=5, end=AS_OF - dt.timedelta(days=1))
    first, last = AS_OF - dt.timedelta(days=1), AS_OF

    result = backfill(start_date=first, end_date=last)
    assert (result["ran"], result["skipped"], result["failed"]) == (
        [first.isoformat(), last.isoformat()], [], [])
    assert db[SCORES_COLLECTION].distinct("asOf") == [dt.datetime(2026, 6, 1, tzinfo=dt.UTC)]
    assert db[SCAN_HISTORY_COLLECTION].count_documents({}) == 2
    assert db[MODEL_METRICS_COLLECTION].count_documents({}) == 2

    again = backfill(start_date=first, end_date=last)  # idempotent: nothing to redo
    assert (again["ran"], again["skipped"]) == ([], [first.isoformat(), last.isoformat()])

    # Forcing the older night again records it but the app keeps the newer one.
    backfill(start_date=first, end_date=first, skip_done=False, train=False)
    assert db[SCORES_COLLECTION].distinct("asOf") == [dt.datetime(2026, 6, 1, tzinfo=dt.UTC)]
    assert db[SCAN_HISTORY_COLLECTION].count_documents({}) == 2
    assert db[MODEL_METRICS_COLLECTION].count_documents({}) == 2
