"""Shared fixtures: one real embedded MongoDB server per test session.

Each test that needs data gets its own database on it, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from bbx.mongo import start_embedded, stop_process
from bbx.settings import Settings, load_settings

SUITE_CONFIG = Path(__file__).with_name("suite.yaml")


# How `make test` spreads the files over its two xdist workers (`--dist loadfile`):
# each file runs whole on one worker, so its module fixtures are made once. Files that
# read the same prepared world (made once per worker) run together.
SHARED_WORLD = {"tests/test_pii.py": "tests/test_ui_runs.py"}
# The costliest groups, heaviest first: whole-file seconds from `--durations` / junit
# (2026-12-02). They are handed out in this order, so the long ones start early and the
# quick files fill in at the end (longest-processing-time first). The Dask file's own
# cluster processes come after the stack's start, not beside it. Update it when a file's
# cost changes a lot; a file not listed runs after these.
HEAVIEST_FILES = [
    "test_stack.py", "test_nightly_flow.py", "test_ui_runs.py", "test_dask.py",
    "test_incremental.py", "test_simulator.py", "test_partitions.py",
    "test_bench_pipeline.py", "test_soak.py", "test_deployment.py", "test_publish_faults.py",
    "test_bad_input.py", "test_simulate_continue.py", "test_registry.py", "test_auth.py",
    "test_validate.py", "test_pricing_engine.py", "test_feature_validation.py",
    "test_scenarios.py", "test_data_docs.py",
]


def pytest_configure(config: pytest.Config) -> None:
    """Every test, and every process a test starts, reads the suite's settings file
    (a smaller churn search; tests/suite.yaml says why) unless the caller set one."""
    os.environ.setdefault("BBX_CONFIG", str(SUITE_CONFIG))
    if hasattr(config.option, "loadscopereorder"):
        # xdist would otherwise queue the groups by their number of tests, which puts the
        # two-test end-to-end files last, running alone while the other worker idles.
        config.option.loadscopereorder = False


def _group(path: str) -> str:
    return SHARED_WORLD.get(path, path)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `--dist loadfile`, a file runs whole on one worker, as do files sharing a
    prepared world (SHARED_WORLD). xdist's own `loadgroup` would do it with marks, but
    its group suffix on node ids has no effect under pytest 9."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesSharingWorlds(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid.split("::", 1)[0])

    return FilesSharingWorlds(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The costliest groups first (HEAVIEST_FILES), the rest in their usual order."""
    rank = {name: position for position, name in enumerate(HEAVIEST_FILES)}

    def position(item: pytest.Item) -> int:
        return rank.get(Path(_group(item.nodeid.split("::", 1)[0])).name, len(rank))

    items.sort(key=position)  # stable: the order within a group is kept


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


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow store with no runs, its schema created once for the session.

    MLflow builds a new SQLite store by running its whole chain of schema migrations,
    about 2 s; a test's new home starts from a copy of this one instead, which is the
    same database (it holds only MLflow's 'Default' experiment, which the pipeline
    never uses)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-store") / "mlflow.db"
    uri = f"sqlite:///{path}"  # both: a client without a tracking URI opens ./mlflow.db
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    return path


def new_home(home: Path, empty_store: Path) -> Path:
    """A test's home, its MLflow store created from the session's empty one."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_store, home / "mlflow.db")
    return home


def fresh_settings(folder: Path, mongo_uri: str, empty_store: Path,
                   prefix: str = "t") -> Settings:
    """Settings pointing at a new home under folder and a new database on mongo_uri."""
    return load_settings(
        home=new_home(folder / "home", empty_store),
        mongo={"uri": mongo_uri, "database": f"{prefix}_{uuid.uuid4().hex[:10]}"},
    )


@pytest.fixture()
def settings(tmp_path: Path, mongo_server_uri: str, empty_mlflow_store: Path) -> Settings:
    """Settings pointing at a fresh home and a fresh database on the session server."""
    return fresh_settings(tmp_path, mongo_server_uri, empty_mlflow_store)


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
    return point_flows_at(settings, monkeypatch)


def point_flows_at(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Flow runs started from here on read settings' home and database."""
    monkeypatch.setenv("BBX_HOME", str(settings.home))
    monkeypatch.setenv("MONGODB_URI", settings.mongo.uri or "")
    monkeypatch.setenv("BBX_MONGO__DATABASE", settings.mongo.database)
    return settings


# --- one prepared world, shared ------------------------------------------------------
# Simulating a population and running a whole night on it is the slow part of the flow
# tests. A prepared world is made once per session for each (size, seed, night) and then
# only read; a test that changes it works on a copy (`copy_world`).


@dataclass(frozen=True)
class PreparedWorld:
    """A simulated app database after one real nightly run, with its home."""

    settings: Settings  # read only: its home and its database
    simulation: dict[str, Any]  # the simulate() arguments, which reproduce the app's data
    as_of: dt.date
    summary: dict[str, Any]  # the night's flow summary


def _flow_settings_env(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                       config: Path | None) -> None:
    for name in [k for k in os.environ if k.startswith("BBX_")]:
        monkeypatch.delenv(name)  # the prepared night runs on the settings files alone
    if config is not None:
        monkeypatch.setenv("BBX_CONFIG", str(config))
    monkeypatch.setenv("BBX_HOME", str(settings.home))
    monkeypatch.setenv("MONGODB_URI", settings.mongo.uri or "")
    monkeypatch.setenv("BBX_MONGO__DATABASE", settings.mongo.database)


@pytest.fixture(scope="session")
def prepared_world(
    tmp_path_factory: pytest.TempPathFactory, mongo_server_uri: str, prefect_api: None,
    empty_mlflow_store: Path,
) -> Iterator[Callable[..., PreparedWorld]]:
    """prepared_world(customers=, days=, seed=, end=, as_of=, config=): the world simulated
    up to end, after the nightly flow ran for as_of on configs/default.yaml overlaid with
    config (the suite's file unless given; None: the defaults alone). Made on first use."""
    from flows.nightly import nightly
    from simulator import simulate

    worlds: dict[tuple, PreparedWorld] = {}
    client: MongoClient = MongoClient(mongo_server_uri, tz_aware=True)

    def prepare(customers: int, days: int, seed: int, end: dt.date,
                as_of: dt.date, config: Path | None = SUITE_CONFIG) -> PreparedWorld:
        key = (customers, days, seed, end, as_of, config)
        if key not in worlds:
            settings = fresh_settings(tmp_path_factory.mktemp("prepared-world"),
                                      mongo_server_uri, empty_mlflow_store, prefix="w")
            simulation = {"customers": customers, "days": days, "seed": seed, "end": end}
            simulate(client[settings.mongo.database], **simulation)
            with pytest.MonkeyPatch.context() as monkeypatch:
                _flow_settings_env(monkeypatch, settings, config)
                summary = nightly(as_of=as_of)
            worlds[key] = PreparedWorld(settings, simulation, as_of, summary)
        return worlds[key]

    try:
        yield prepare
    finally:
        for world in worlds.values():
            client.drop_database(world.settings.mongo.database)
        client.close()


def copy_world(world: PreparedWorld, target: Settings, client: MongoClient) -> None:
    """The world's app database and home, copied to target's database and home.

    The app's collections are simulated again (deterministic, and faster than copying
    documents through the embedded server); what the night wrote is copied. The MLflow
    store's absolute paths are moved to the new home."""
    from simulator import simulate

    source, copy = client[world.settings.mongo.database], client[target.mongo.database]
    simulate(copy, **world.simulation)
    simulated = set(copy.list_collection_names())
    for name in source.list_collection_names():
        if name in simulated:
            continue
        documents = list(source[name].find())
        if documents:
            copy[name].insert_many(documents)
        for index, info in source[name].index_information().items():
            if index != "_id_":
                options = {k: v for k, v in info.items() if k not in ("key", "v", "ns")}
                copy[name].create_index(list(info["key"]), name=index, **options)
    assert {n: copy[n].count_documents({}) for n in source.list_collection_names()} == {
        n: source[n].count_documents({}) for n in source.list_collection_names()
    }, "the copy differs from the prepared world"

    shutil.copytree(world.settings.home, target.home, dirs_exist_ok=True)  # over its new home
    old, new = str(world.settings.home), str(target.home)
    with sqlite3.connect(target.home / "mlflow.db") as store:
        tables = [r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in store.execute(f"PRAGMA table_info('{table}')").fetchall():
                if column[2].upper() in ("TEXT", "VARCHAR") or column[2].upper().startswith(
                        "VARCHAR"):
                    store.execute(
                        f'UPDATE "{table}" SET "{column[1]}" = replace("{column[1]}", ?, ?) '
                        f'WHERE "{column[1]}" LIKE ?', (old, new, f"%{old}%"))
    store.close()
