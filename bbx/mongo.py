"""Where the pipeline's MongoDB comes from.

Production sets `MONGODB_URI`. Without it the project runs its own embedded
SecantusDB server (a real wire-protocol server) as a child process on a free
loopback port. `bbx mongo start` leaves one running for a Prefect worker or the
app to share; its address is recorded in `<home>/mongo.json` so later runs find
it instead of starting a second server on the same data folder.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, PyMongoError

from bbx.settings import Settings

STATE_FILE = "mongo.json"


class MongoUnavailableError(RuntimeError):
    """The configured MongoDB cannot be used (message names host, never credentials)."""


class MongoUnreachableError(MongoUnavailableError):
    """The server did not answer: worth retrying, unlike a refused login or command."""


@dataclass(frozen=True)
class EmbeddedServer:
    pid: int
    port: int
    storage: str
    log_file: str

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"


def redact(uri: str) -> str:
    """The URI's host part without user name or password, for messages and logs."""
    parts = urlsplit(uri)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ping(uri: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=250, connect=False)
    try:
        while True:
            if process is not None and process.poll() is not None:
                raise MongoUnavailableError(
                    f"embedded MongoDB server exited with code {process.returncode} "
                    f"before answering ping on {redact(uri)}"
                )
            try:
                client.admin.command("ping")
                return
            except PyMongoError as exc:
                if time.monotonic() > deadline:
                    raise MongoUnavailableError(
                        f"MongoDB at {redact(uri)} did not answer ping within {timeout_s:.0f}s "
                        f"({type(exc).__name__})"
                    ) from None
                time.sleep(0.1)
    finally:
        client.close()


def _storage_arg(settings: Settings) -> str:
    storage = settings.mongo.embedded_storage
    if storage == ":memory:":
        return storage
    path = Path(storage)
    path = path if path.is_absolute() else settings.home / path
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def start_embedded(
    settings: Settings, port: int | None = None, extra_args: tuple[str, ...] = ()
) -> tuple[EmbeddedServer, subprocess.Popen]:
    settings.home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    storage = _storage_arg(settings)
    log_file = settings.home / f"mongo-{port}.log"
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "secantus",
                "--host", "127.0.0.1", "--port", str(port),
                "--storage-path", storage, "--log-level", "WARNING", *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the shell should not kill it mid-write
        )
    server = EmbeddedServer(process.pid, port, storage, str(log_file))
    try:
        wait_for_ping(server.uri, timeout_s=60, process=process)
    except BaseException:
        stop_process(process)
        raise
    return server, process


def stop_process(process: subprocess.Popen, timeout_s: float = 20) -> None:
    if process.poll() is not None:
        return
    process.terminate()  # SIGTERM: the server checkpoints WiredTiger and exits
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


# --- the persistent server (`bbx mongo start|stop|status`) ---------------------


def _state_path(settings: Settings) -> Path:
    return settings.home / STATE_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def persistent_server(settings: Settings) -> EmbeddedServer | None:
    """The server `bbx mongo start` left running, if it still answers."""
    path = _state_path(settings)
    if not path.exists():
        return None
    server = EmbeddedServer(**json.loads(path.read_text()))
    if not _pid_alive(server.pid):
        path.unlink(missing_ok=True)
        return None
    try:
        wait_for_ping(server.uri, timeout_s=3)
    except MongoUnavailableError:
        return None
    return server


def start_persistent(settings: Settings, port: int | None = None) -> EmbeddedServer:
    running = persistent_server(settings)
    if running:
        return running
    server, _process = start_embedded(settings, port)
    _state_path(settings).write_text(json.dumps(asdict(server)))
    return server


def stop_persistent(settings: Settings) -> bool:
    server = persistent_server(settings)
    _state_path(settings).unlink(missing_ok=True)
    if server is None:
        return False
    os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _pid_alive(server.pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(server.pid, os.WNOHANG)
        time.sleep(0.1)
    if _pid_alive(server.pid):
        os.kill(server.pid, signal.SIGKILL)
    return True


# --- what a run uses -----------------------------------------------------------


@contextlib.contextmanager
def mongo_uri(settings: Settings) -> Iterator[str]:
    """Yield the URI a run should use, starting (and later stopping) a server if needed.

    Order: configured URI > the persistent embedded server > a child server for
    this run only, on the home folder's data.
    """
    if settings.mongo.uri:
        yield settings.mongo.uri
        return
    running = persistent_server(settings)
    if running:
        yield running.uri
        return
    server, process = start_embedded(settings)
    try:
        yield server.uri
    finally:
        stop_process(process)


def connect(uri: str, settings: Settings) -> MongoClient:
    """A client that fails fast and clearly when the server is unreachable."""
    client: MongoClient = MongoClient(
        uri,
        serverSelectionTimeoutMS=settings.mongo.server_selection_timeout_ms,
        tz_aware=True,
        uuidRepresentation="standard",
    )
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        client.close()
        error = MongoUnreachableError if isinstance(exc, ConnectionFailure) \
            else MongoUnavailableError
        raise error(f"cannot reach MongoDB at {redact(uri)}: {type(exc).__name__}") from None
    return client


def is_transient(error: BaseException) -> bool:
    """A connection-type failure (server down, network, failover): retrying may help."""
    return isinstance(error, MongoUnreachableError | ConnectionFailure)


# One client per process and URI: a MongoClient is a connection pool plus monitor
# threads, and building and pinging one per call cost more than reading a small
# increment. Filled lazily (nothing connects at import), closed at exit.
_CLIENTS: dict[tuple[int, str, int], MongoClient] = {}
_CLIENTS_LOCK = threading.Lock()
_CLOSE_AT_EXIT: list[bool] = []


def _client_key(uri: str, settings: Settings) -> tuple[int, str, int]:
    # The pid: a forked worker must not share its parent's sockets.
    return os.getpid(), uri, settings.mongo.server_selection_timeout_ms


def mongo_client(uri: str, settings: Settings) -> MongoClient:
    """This process's client for `uri`, connected (and pinged) on first use."""
    key = _client_key(uri, settings)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = connect(uri, settings)  # MongoUnavailableError if unreachable
            _CLIENTS[key] = client
            if not _CLOSE_AT_EXIT:
                atexit.register(close_clients)
                _CLOSE_AT_EXIT.append(True)
        return client


def discard_client(uri: str, settings: Settings) -> None:
    """Drop a client that failed, so the next attempt connects afresh."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.pop(_client_key(uri, settings), None)
    if client is not None:
        client.close()


def close_clients() -> None:
    """Close every client this process opened (also run at interpreter exit)."""
    with _CLIENTS_LOCK:
        mine = [k for k in _CLIENTS if k[0] == os.getpid()]
        clients = [_CLIENTS.pop(k) for k in mine]
        _CLIENTS.clear()  # a parent's clients after a fork: forgotten, never closed here
    for client in clients:
        client.close()


# --- least privilege (docs/security.md) -----------------------------------------

PIPELINE_ROLE = "bbxPipeline"
# The two app collections the app already displays and the pipeline writes into:
# insert + update, because reruns upsert the pipeline's own document for the night
# (MongoDB cannot restrict updates to some documents; no remove is granted).
APP_COLLECTIONS_WRITTEN = ("churnscanhistories", "pricingproposals")
# Collections the pipeline owns in the app's database (the app only reads them).
PIPELINE_COLLECTIONS = (
    "ml_customer_scores",
    "ml_customer_scores_staging",
    "ml_customer_scores_previous",
    "ml_churn_alerts",
    "ml_demand_profile",
    "ml_model_metrics",
    "ml_pricing_log",
    "ml_segments",
    "ml_pipeline_meta",
    "ml_price_anchors",
)
_READ = ["find", "listIndexes", "collStats"]
_OWN = [*_READ, "insert", "update", "remove", "createCollection", "createIndex", "dropIndex",
        "dropCollection"]


def pipeline_role(database: str, app_collections: tuple[str, ...]) -> dict:
    """The `createRole` command for the pipeline's user: read the app's collections,
    read/write its own, insert into the two app collections it feeds.

    `renameCollectionSameDB` (the atomic publish swap) can only be granted on the
    whole database in MongoDB (SERVER-43346); docs/security.md says what that allows.
    """
    def on(collection: str, actions: list[str]) -> dict:
        return {"resource": {"db": database, "collection": collection}, "actions": actions}

    privileges = [on(c, _READ) for c in app_collections if c not in APP_COLLECTIONS_WRITTEN]
    privileges += [on(c, [*_READ, "insert", "update"]) for c in APP_COLLECTIONS_WRITTEN]
    privileges += [on(c, _OWN) for c in PIPELINE_COLLECTIONS]
    privileges.append({"resource": {"db": database, "collection": ""},
                       "actions": ["listCollections", "renameCollectionSameDB"]})
    return {"createRole": PIPELINE_ROLE, "privileges": privileges, "roles": []}
