"""The MongoDB server dies while a night is being published.

Each trial runs a dedicated embedded server on a real storage folder (not
:memory:, not the session server), publishes a complete first night, then kills
the server with SIGKILL while the second night is being published, either at a
named step of the publish or after a delay from another thread. After a restart
on the same folder the app-visible collection must hold one complete night
(never a mix, never empty, indexes intact), and a rerun must publish the second
night completely. Both swap methods of tasks/publish.py are exercised: `rename`
(MongoDB's) up to the rename itself, `transaction` (SecantusDB's default) at every
step; the xfail test records why SecantusDB cannot use the rename.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from bson import ObjectId
from pymongo import MongoClient

from bbx.lake import SCORES_COLLECTION
from bbx.mongo import MongoUnavailableError, start_embedded
from bbx.settings import Settings, load_settings
from tasks.publish import PREVIOUS_SUFFIX, STAGING_SUFFIX, publish_scores

NIGHT_1 = dt.date(2026, 5, 1)
NIGHT_2 = dt.date(2026, 5, 2)
CUSTOMERS_1 = 150
CUSTOMERS_2 = 250  # a different size, so any mix of the two nights shows in the count
# Three staging batches for night 2. Below the settings' floor (1000, a production
# guard), set after loading: the batching code is the same, the trial is ten times
# shorter.
BATCH = 100

pytestmark = pytest.mark.slow  # a few seconds a trial: the server dies and restarts


@dataclass
class Server:
    settings: Settings
    process: subprocess.Popen
    port: int

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        _, self.process = start_embedded(self.settings, port=self.port)


def _scores(n: int, seed: int) -> pd.DataFrame:
    risk = [(i * 37 + seed) % 100 for i in range(n)]
    return pd.DataFrame({
        "user_id": [str(ObjectId()) for _ in range(n)],
        "plan_id": [str(ObjectId())] * n,
        "plan_name": ["Basic"] * n,
        "churn_probability": [r / 100 for r in risk],
        "risk_score": [float(r) for r in risk],
        "risk_band": ["high" if r > 70 else "medium" if r >= 40 else "low" for r in risk],
        "segment_id": [1] * n,
        "segment_name": ["Value-Seekers"] * n,
        "elasticity": [-1.2] * n,
        "base_price": [499.0] * n,
        "dynamic_price": [479.0] * n,
        "demand": [0.5] * n,
        "price_term_demand": [0.05] * n,
        "price_term_elasticity": [-0.06] * n,
        "price_term_risk": [-0.03] * n,
        "currency": ["INR"] * n,
        "churn_model_version": ["1"] * n,
        "segment_model_version": ["1"] * n,
    })


@pytest.fixture(scope="module")
def score_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("fault-scores")
    files = {}
    for name, n, seed in (("night-1", CUSTOMERS_1, 1), ("night-2", CUSTOMERS_2, 2)):
        files[name] = str(folder / f"{name}.parquet")
        _scores(n, seed).to_parquet(files[name])
    return files


@pytest.fixture(scope="module")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server folder for the module: each trial kills and restarts it anyway."""
    folder = tmp_path_factory.mktemp("faults")
    settings = load_settings(
        home=folder / "home",
        mongo={"embedded_storage": str(folder / "mongo-data"), "database": "faults",
               "server_selection_timeout_ms": 1500},
    )
    settings.mongo.batch_size = BATCH
    info, process = start_embedded(settings)
    running = Server(settings, process, info.port)
    try:
        yield running
    finally:
        running.kill()  # its folder is thrown away: no clean shutdown needed (it takes 2 s)


@pytest.fixture()
def server(running_server: Server) -> Server:
    """The module's server, up, with an empty database and the default swap method."""
    if running_server.process.poll() is not None:
        running_server.restart()
    running_server.settings.publish.swap_method = load_settings().publish.swap_method
    client: MongoClient = MongoClient(running_server.uri)
    try:
        client.drop_database("faults")
    finally:
        client.close()
    return running_server


def _publish(server: Server, night: str, files: dict[str, str], **kwargs) -> None:
    as_of = NIGHT_1 if night == "night-1" else NIGHT_2
    publish_scores(server.uri, server.settings, as_of, night, files[night], **kwargs)


def _app_sees_nothing(server: Server) -> bool:
    client: MongoClient = MongoClient(server.uri)
    try:
        return client["faults"][SCORES_COLLECTION].count_documents({}) == 0
    finally:
        client.close()


def _visible_night(server: Server) -> tuple[int, list[str]]:
    client: MongoClient = MongoClient(server.uri, tz_aware=True)
    try:
        scores = client["faults"][SCORES_COLLECTION]
        indexes = scores.index_information()
        assert indexes.get("userId_unique", {}).get("unique") is True, indexes
        return scores.count_documents({}), sorted(scores.distinct("runId"))
    finally:
        client.close()


def _check_complete_night(server: Server, allowed: set[str]) -> str:
    count, runs = _visible_night(server)
    assert len(runs) == 1, f"the app sees a mix of runs: {runs}"
    expected = {"night-1": CUSTOMERS_1, "night-2": CUSTOMERS_2}[runs[0]]
    assert runs[0] in allowed and count == expected, (runs, count)
    return runs[0]


def _rerun_publishes_night_2(server: Server, files: dict[str, str]) -> None:
    _publish(server, "night-2", files)
    assert _visible_night(server) == (CUSTOMERS_2, ["night-2"])
    client: MongoClient = MongoClient(server.uri)
    try:
        db = client["faults"]
        assert db[SCORES_COLLECTION + PREVIOUS_SUFFIX].count_documents({}) in (
            CUSTOMERS_1, CUSTOMERS_2)
        assert len(db[SCORES_COLLECTION + PREVIOUS_SUFFIX].distinct("runId")) == 1
        # Night 2's documents remember night 1's score when the app saw night 1 last.
        stamped = db[SCORES_COLLECTION].count_documents({"previous": {"$exists": True}})
        assert stamped in (0, CUSTOMERS_2) or stamped <= CUSTOMERS_2
    finally:
        client.close()


# Named steps of tasks/publish.py (progress callback). rename (MongoDB's method):
# after the 1st staging batch (the rest unwritten), the count check, the indexes, the
# copy of the previous night and the flush that precedes the rename. transaction
# (SecantusDB's method, the default on it): after the previous night is kept, the
# flush, the 1st batch inside the transaction, the count inside it, and after the commit.
KILL_POINTS = [
    ("rename", "staging", BATCH),
    ("rename", "counted", CUSTOMERS_2), ("rename", "indexed", CUSTOMERS_2),
    ("rename", "previous-kept", CUSTOMERS_2), ("rename", "flushed", CUSTOMERS_2),
    ("transaction", "previous-kept", CUSTOMERS_2), ("transaction", "flushed", CUSTOMERS_2),
    ("transaction", "replacing", BATCH),
    ("transaction", "counted", CUSTOMERS_2), ("transaction", "committed", CUSTOMERS_2),
]


@pytest.mark.parametrize(("method", "step", "documents"), KILL_POINTS,
                         ids=[f"{m}-{s}-{n}" for m, s, n in KILL_POINTS])
def test_kill_at_a_publish_step_leaves_a_complete_night(
    server: Server, score_files, method: str, step: str, documents: int
) -> None:
    server.settings.publish.swap_method = method
    _publish(server, "night-1", score_files)
    killed = []

    def kill_here(at_step: str, done: int) -> None:
        if (at_step, done) == (step, documents):
            server.kill()
            killed.append(at_step)

    with pytest.raises(MongoUnavailableError, match="still sees a complete night"):
        _publish(server, "night-2", score_files, progress=kill_here)
    assert killed == [step]

    server.restart()
    # Only a committed transaction has made night 2 visible; else night 1, complete.
    expected = "night-2" if step == "committed" else "night-1"
    assert _check_complete_night(server, {expected}) == expected
    _rerun_publishes_night_2(server, score_files)
    client: MongoClient = MongoClient(server.uri)
    try:  # the staging collection, when used, was consumed by the rename
        assert SCORES_COLLECTION + STAGING_SUFFIX not in client["faults"].list_collection_names()
    finally:
        client.close()


# Kills from another thread at fractions of the time night 2's first publish took
# (measured on this machine in the same trial): they land wherever the publish
# happens to be, the commit and the final flush included. The server's default
# method (auto: a transaction on SecantusDB).
KILL_FRACTIONS = [0.3, 0.9, 1.1]


@pytest.mark.parametrize("fraction", KILL_FRACTIONS)
def test_kill_at_a_random_moment_never_shows_a_mix(server: Server, score_files,
                                                   fraction: float) -> None:
    _publish(server, "night-1", score_files)
    started = time.perf_counter()
    _publish(server, "night-2", score_files)  # measure a whole night-2 publish here
    duration = time.perf_counter() - started
    _publish(server, "night-1", score_files)  # the app sees night 1 again
    delay = fraction * duration
    timer = threading.Timer(delay, server.kill)
    started = time.perf_counter()
    steps: list[str] = []
    started = time.perf_counter()
    timer.start()
    try:
        _publish(server, "night-2", score_files, progress=lambda step, n: steps.append(step))
        finished_first = True
    except MongoUnavailableError:
        finished_first = False
    finally:
        timer.join()
    elapsed = time.perf_counter() - started
    server.restart()
    last_step = steps[-1] if steps else "none"
    assert not _app_sees_nothing(server), f"collection lost after step {last_step}"
    seen = _check_complete_night(server, {"night-1", "night-2"})
    if finished_first:  # an acknowledged publish must have been durable
        assert seen == "night-2", f"acknowledged publish lost after {elapsed:.2f}s"
    print(f"kill at {delay:.2f}s of {duration:.2f}s: last step {last_step}, publish "
          f"{'returned' if finished_first else 'failed'}, app sees {seen}")
    _rerun_publishes_night_2(server, score_files)  # the rerun always repairs



# Not strict: whether the loss shows depends on whether the server's own periodic fsync
# ran between the rename and the kill, so on a quiet machine it sometimes passes (seen
# in a fresh-clone run); a strict xfail made CI fail at random.
@pytest.mark.xfail(strict=False, reason=(
    "SecantusDB 0.7.0b3: renameCollection(dropTarget) is not crash-safe. A SIGKILL "
    "after the rename was acknowledged (even with j:true and an fsync before it) but "
    "before the next fsync usually comes back with the target dropped and the renamed "
    "collection empty. MongoDB's rename is atomic and journaled; the nightly publish "
    "therefore uses a transaction on SecantusDB."))
def test_kill_right_after_the_rename_keeps_a_complete_night(server: Server,
                                                            score_files) -> None:
    server.settings.publish.swap_method = "rename"
    _publish(server, "night-1", score_files)

    def kill_after_rename(step: str, done: int) -> None:
        if step == "renamed":
            server.kill()

    with pytest.raises(MongoUnavailableError):
        _publish(server, "night-2", score_files, progress=kill_after_rename)
    server.restart()
    _check_complete_night(server, {"night-1", "night-2"})
