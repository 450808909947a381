"""Shared fixtures: one real embedded MongoDB server per test session.

Each test that needs data gets its own database on it, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from bbx.mongo import start_embedded, stop_process
from bbx.settings import Settings, load_settings


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bbx-home")


@pytest.fixture(scope="session")
def mongo_server_uri(session_home: Path) -> Iterator[str]:
    settings = load_settings(home=session_home, mongo={"embedded_storage": ":memory:"})
    server, process = start_embedded(settings)
    try:
        yield server.uri
    finally:
        stop_process(process)


@pytest.fixture()
def mongo_client(mongo_server_uri: str) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(mongo_server_uri, tz_aware=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture()
def mongo_db(mongo_client: MongoClient) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    try:
        yield mongo_client[name]
    finally:
        mongo_client.drop_database(name)


@pytest.fixture()
def settings(tmp_path: Path, mongo_server_uri: str) -> Settings:
    """Settings pointing at a fresh home and a fresh database on the session server."""
    return load_settings(
        home=tmp_path / "home",
        mongo={"uri": mongo_server_uri, "database": f"t_{uuid.uuid4().hex[:10]}"},
    )


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API for the whole session (it takes 10-20 s to start)."""
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture()
def flow_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, prefect_api: None) -> Settings:
    """Environment a flow run reads its settings from: this test's home and database."""
    monkeypatch.setenv("BBX_HOME", str(settings.home))
    monkeypatch.setenv("MONGODB_URI", settings.mongo.uri or "")
    monkeypatch.setenv("BBX_MONGO__DATABASE", settings.mongo.database)
    return settings
