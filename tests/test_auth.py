"""Least privilege with authentication on: a SecantusDB server started with --auth.

Users are provisioned while the server runs without auth, then it restarts with
--auth (SecantusDB's documented way). The pipeline's reads need nothing more than
the built-in `read` role on the app's database: the whole extract and a dry-run
nightly flow pass as such a user, and that user's write to an app collection is
refused. The documented pipeline role (bbx.mongo.pipeline_role) is accepted and
stored as written; SecantusDB enforces privileges per database, not per collection,
so its collection-level refusals can only be shown on a real MongoDB
(docs/security.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from bbx import lake
from bbx.mongo import (
    PIPELINE_ROLE,
    MongoUnavailableError,
    free_port,
    pipeline_role,
    start_embedded,
    stop_process,
)
from bbx.settings import Settings, load_settings
from simulator import simulate
from tasks.extract import extract_collection

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 6, 1)
DATABASE = "broadbandx"
READER, PIPELINE, ADMIN, PASSWORD = "bbx_reader", "bbx_pipeline", "root", "s3cret-Pw"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with data and users, restarted with --auth; yields its host:port."""
    home = tmp_path_factory.mktemp("auth-home")
    settings = load_settings(home=home, mongo={"embedded_storage": "mongo"})
    port = free_port()
    server, process = start_embedded(settings, port)
    try:
        client: MongoClient = MongoClient(server.uri, tz_aware=True)
        db = client[DATABASE]
        simulate(db, customers=200, days=100, seed=5, end=AS_OF - dt.timedelta(days=1))
        db.command(pipeline_role(DATABASE, tuple(lake.TABLES)))
        db.command("createUser", PIPELINE, pwd=PASSWORD,
                   roles=[{"role": PIPELINE_ROLE, "db": DATABASE}])
        db.command("createUser", READER, pwd=PASSWORD, roles=[{"role": "read", "db": DATABASE}])
        client.admin.command("createUser", ADMIN, pwd=PASSWORD, roles=["root"])
        client.close()
    finally:
        stop_process(process)
    server, process = start_embedded(settings, port, extra_args=("--auth",))
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        stop_process(process)


def _uri(host: str, user: str, password: str = PASSWORD) -> str:
    return f"mongodb://{user}:{password}@{host}/?authSource={DATABASE}"


def _settings(tmp_path, uri: str) -> Settings:
    return load_settings(home=tmp_path / "home", mongo={"uri": uri, "database": DATABASE})


def test_unauthenticated_reads_are_refused(auth_server: str) -> None:
    client: MongoClient = MongoClient(f"mongodb://{auth_server}/")
    try:
        with pytest.raises(OperationFailure, match="authentication"):
            client[DATABASE].users.find_one()
    finally:
        client.close()


def test_documented_role_is_accepted_as_written(auth_server: str) -> None:
    client: MongoClient = MongoClient(_uri(auth_server, ADMIN) .replace(
        f"authSource={DATABASE}", "authSource=admin"))
    try:
        info = client[DATABASE].command("rolesInfo", PIPELINE_ROLE, showPrivileges=True)
    finally:
        client.close()
    (role,) = info["roles"]
    expected = pipeline_role(DATABASE, tuple(lake.TABLES))["privileges"]
    assert role["privileges"] == expected
    granted = {p["resource"]["collection"]: set(p["actions"]) for p in role["privileges"]}
    assert granted["users"] == {"find", "listIndexes", "collStats"}  # app data: read only
    assert "insert" in granted["churnscanhistories"] and "remove" not in granted[
        "churnscanhistories"]
    assert "insert" in granted["ml_customer_scores"]


def test_extract_runs_as_a_read_only_user_whose_writes_are_refused(
    auth_server: str, tmp_path
) -> None:
    uri = _uri(auth_server, READER)
    settings = _settings(tmp_path, uri)
    results = [extract_collection(uri, settings, c, AS_OF) for c in lake.TABLES]
    assert {r.collection: r.rows > 0 for r in results} == {c: True for c in lake.TABLES}

    client: MongoClient = MongoClient(uri)
    try:
        db = client[DATABASE]
        with pytest.raises(OperationFailure, match="not authorized") as refused:
            db.users.insert_one({"role": "customer"})
        assert refused.value.code == 13  # Unauthorized
        with pytest.raises(OperationFailure, match="not authorized"):
            db.subscriptions.update_many({}, {"$set": {"status": "cancelled"}})
        assert db.subscriptions.count_documents({"status": "active"}) > 0
    finally:
        client.close()


def test_wrong_password_is_a_clear_error_without_credentials(auth_server: str, tmp_path) -> None:
    uri = _uri(auth_server, READER, password="wrong-Pw-123")
    settings = _settings(tmp_path, uri)
    settings.extract.retries = 0
    with pytest.raises(MongoUnavailableError) as error:
        extract_collection(uri, settings, "users", AS_OF)
    message = str(error.value)
    assert "127.0.0.1" in message and "'users'" in message
    assert "wrong-Pw-123" not in message and READER not in message


def test_nightly_dry_run_as_the_read_only_user(
    auth_server: str, flow_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.nightly import nightly

    monkeypatch.setenv("MONGODB_URI", _uri(auth_server, READER))
    monkeypatch.setenv("BBX_MONGO__DATABASE", DATABASE)
    state = nightly(as_of=AS_OF, dry_run=True, return_state=True)
    summary = state.result()
    assert summary["scores"]["customers"] > 0
    assert summary["published"] is None
    assert sum(summary["rows_extracted"].values()) > 0

    # The Prefect API stores every run's parameters, and the UI shows them: the night and
    # its subflow (which is handed the settings) carry the URI without its password.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(parent), *client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])))]
    assert len(runs) == 2, [r.name for r in runs]
    stored = repr([r.parameters for r in runs])
    assert PASSWORD not in stored and f"{READER}:***@" in stored, stored
