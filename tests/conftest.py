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
