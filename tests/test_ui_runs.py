"""Runs a data engineer starts from the Prefect UI: dry runs, backfills, run names.

Real embedded MongoDB, the session's Prefect test API, a real MLflow store under the
test's home. A small simulated world after one real night is prepared once per session
(tests/conftest.py); each test works on its own copy of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from bson import json_util
from mlflow import MlflowClient

from bbx.settings import Settings

AS_OF = dt.date(2026, 6, 1)
CUSTOMERS = 200
DAYS = 100


def _app_state(db) -> dict[str, str]:
    """A digest of every collection's documents: any write shows."""
    state = {}
    for name in sorted(db.list_collection_names()):
        documents = sorted(db[name].find(), key=lambda d: str(d["_id"]))
        state[name] = hashlib.sha256(json_util.dumps(documents).encode()).hexdigest()
    return state


def _aliases(settings: Settings) -> dict[str, dict[str, str]]:
    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    return {name: dict(client.get_registered_model(name).aliases)
            for name in ("churn", "segmentation")}


def _lake_validated_state(settings: Settings) -> dict[str, str]:
    """Manifests and table version files: what the next night starts from."""
    lake = settings.lake_dir
    files = sorted([*lake.glob("manifests/*.json"), *lake.glob("clean/*/_versions/*.json")])
    return {str(p.relative_to(lake)): p.read_text() for p in files}


def _run_names(flow_run_ids) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(flow_run_ids))))
    return [r.name for r in runs]


def _children(parent_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id])))


def _artifact(key: str, flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert found, f"no {key} artifact on run {flow_run_id}"
    return found[0].data


@pytest.fixture()
def world(flow_env: Settings, mongo_client, prepared_world) -> Settings:
    """This test's copy of a small world after a real night for the day before AS_OF
    (champions, a validated lake, published scores)."""
    from tests.conftest import copy_world

    yesterday = AS_OF - dt.timedelta(days=1)
    prepared = prepared_world(customers=CUSTOMERS, days=DAYS, seed=5, end=yesterday,
                              as_of=yesterday)
    copy_world(prepared, flow_env, mongo_client)
    return flow_env


@pytest.mark.slow
def test_a_dry_run_leaves_the_app_the_aliases_and_the_lake_validated_state_unchanged(
    world: Settings, mongo_client
) -> None:
    from flows.nightly import nightly
    from tasks import registry

    db = mongo_client[world.mongo.database]
    yesterday = AS_OF - dt.timedelta(days=1)  # the world's real night
    app, aliases, lake = _app_state(db), _aliases(world), _lake_validated_state(world)
    assert aliases["churn"].get("champion") and any(m["validated"] for m in (
        json.loads(text) for name, text in lake.items() if name.startswith("manifests")))

    state = nightly(as_of=AS_OF, force_train=True, dry_run=True, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()

    assert _app_state(db) == app
    assert _aliases(world) == aliases
    assert _lake_validated_state(world) == lake
    assert not (world.lake_dir / "raw" / "users" / f"dt={AS_OF}").exists()
    # It trained and registered versions, without alias, and scored with them.
    assert summary["dry_run"] and summary["published"] is None
    churn_version = summary["models"]["churn"]["version"]
    assert churn_version not in aliases["churn"].values()
    registry.configure(world, "churn")
    # The next night still sees the real night's training date: no retrain skipped.
    assert registry.last_trained_as_of(registry.CHURN_MODEL) == yesterday.isoformat()
    assert registry.version_tags(registry.CHURN_MODEL, churn_version)[
        registry.DRY_RUN_AS_OF] == AS_OF.isoformat()
    # Named for what it did; its Data Docs stay readable, apart from the night's own.
    flow_run_id = state.state_details.flow_run_id
    assert _run_names([flow_run_id]) == [f"nightly {AS_OF} (dry run)"]
    assert [c.name for c in _children(flow_run_id)] == [
        f"nightly {AS_OF} (dry run) › score buckets"]
    docs = list((world.data_docs_root / "dry-runs").glob(f"{AS_OF}-*/index.html"))
    assert len(docs) == 1 and f"validations/users/{AS_OF}/" in docs[0].read_text()
    assert not (world.data_docs_root / "validations" / "users" / str(AS_OF)).exists()
    assert f"validations/users/{AS_OF}/" not in (world.data_docs_root / "index.html").read_text()
    assert not list((world.gx_dir / "validations").rglob(f"{AS_OF}/*"))
    text = _artifact("nightly-summary", flow_run_id)
    assert "(dry run)" in text and "as-of 2026-06-01 is a UTC date" in text


def test_a_reversed_backfill_range_is_refused_before_any_night_runs(
    flow_env: Settings, monkeypatch
) -> None:
    from flows.backfill import BackfillRangeError, backfill

    events: list[dict] = []
    monkeypatch.setattr("prefect.events.emit_event", lambda **kw: events.append(kw))
    state = backfill(start_date=AS_OF, end_date=AS_OF - dt.timedelta(days=2),
                     return_state=True)

    assert state.is_failed()
    with pytest.raises(BackfillRangeError, match="reversed .*no night was run"):
        state.result()
    flow_run_id = state.state_details.flow_run_id
    assert _children(flow_run_id) == []  # no night subflow was even created
    assert not flow_env.lake_dir.exists()
    assert _run_names([flow_run_id]) == ["backfill 2026-06-01..2026-05-30"]
    message = events[0]["payload"]["message"]
    assert message.startswith("backfill for 2026-06-01..2026-05-30 failed")
    assert "today" not in message.split("failed")[0] and "rerun the same as_of" not in message
    assert "Nothing was run" in message


@pytest.mark.slow
def test_a_backfilled_night_the_lake_holds_reads_that_nights_validated_state(
    world: Settings, mongo_client
) -> None:
    from flows.backfill import backfill

    db = mongo_client[world.mongo.database]
    night = AS_OF - dt.timedelta(days=1)  # the world's real night
    manifest = world.lake_dir / "manifests" / f"{night}.json"
    validated = manifest.read_text()
    scores = {d["userId"]: d["churnProbability"] for d in db.ml_customer_scores.find()}

    # The app moves on: every customer now looks different from that night.
    now = dt.datetime.now(dt.UTC)
    db.users.update_many({}, {"$set": {"status": "suspended", "npsScore": 0, "updatedAt": now}})

    earlier = night - dt.timedelta(days=1)
    state = backfill(start_date=earlier, end_date=night, train=False, skip_done=False,
                     return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["ran"] == [earlier.isoformat(), night.isoformat()]
    assert result["read_from"] == {earlier.isoformat(): "app", night.isoformat(): "lake"}

    # The lake's night was not re-extracted, and its scores are that night's.
    assert manifest.read_text() == validated
    rescored = {d["userId"]: d["churnProbability"] for d in db.ml_customer_scores.find()}
    assert rescored == scores

    flow_run_id = state.state_details.flow_run_id
    assert sorted(c.name for c in _children(flow_run_id)) == [
        f"backfill {earlier}..{night} › nightly {earlier}",
        f"backfill {earlier}..{night} › nightly {night}"]
    summary = _artifact("backfill-summary", flow_run_id)
    assert "2 ran · 0 skipped · 0 failed" in summary
    assert "the lake's validated state of that night" in summary
    assert "Not rewound" in summary and "`users.status`" in summary
    assert "`subscriptions.endDate`" in summary
