"""`bbx up` / `bbx down`: the whole pipeline on one machine, operated from the Prefect UI.

Up: the embedded MongoDB (`bbx mongo start`'s server, unless MONGODB_URI is set),
a Prefect server, the process work pool, the deployments of prefect.yaml (schedules
from the `schedule:` settings) and a worker whose flow runs use that MongoDB, plus
the reports a run links to: a static server of home/data_docs (Data Docs) and an
MLflow UI on home's store (model runs and plots), whose URLs the worker's runs put
in their artifacts.
What was started is recorded in `<home>/up.json` so `bbx down` stops exactly those
processes. The stack test (tests/test_stack.py) drives them through bring_up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from bbx.logs import LOGGING_CONFIG
from bbx.mongo import free_port, start_persistent, stop_persistent
from bbx.schedule import schedule_note
from bbx.settings import PROJECT_ROOT, Settings

STATE_FILE = "up.json"
PREFECT_FILE = PROJECT_ROOT / "prefect.yaml"
SCHEDULED = {"nightly": "nightly_cron"}


class BringUpError(RuntimeError):
    """A piece of the local stack did not come up; the message says which and where to look."""


@dataclass(frozen=True)
class Stack:
    api_url: str
    server_pid: int | None  # None: a Prefect server that was already running was used
    worker_pid: int
    mongodb_uri: str
    started_mongo: bool
    logs: dict[str, str]
    docs_pid: int | None = None
    mlflow_pid: int | None = None
    data_docs_url: str | None = None
    mlflow_ui_url: str | None = None

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def _prefect() -> list[str]:
    return [sys.executable, "-m", "prefect"]


def api_healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_detached(args: list[str], env: dict[str, str], log_file: Path,
                   cwd: Path = PROJECT_ROOT) -> subprocess.Popen:
    """A child in its own session (Ctrl-C in the shell does not reach it), logging to a file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def start_prefect_server(port: int, env: dict[str, str], log_file: Path) -> subprocess.Popen:
    return start_detached(
        [*_prefect(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env, log_file,
    )


def wait_for_api(api_url: str, timeout_s: float, process: subprocess.Popen | None = None,
                 log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not api_healthy(api_url):
        if process is not None and process.poll() is not None:
            raise BringUpError(f"the Prefect server exited with code {process.returncode}; "
                               f"see {log_file}")
        if time.monotonic() > deadline:
            raise BringUpError(f"the Prefect API at {api_url} did not answer within "
                               f"{timeout_s:.0f}s; see {log_file}")
        time.sleep(0.5)


def run_prefect(args: list[str], env: dict[str, str], what: str,
                cwd: Path = PROJECT_ROOT, timeout_s: float = 300) -> str:
    result = subprocess.run([*_prefect(), *args], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-2000:]
        raise BringUpError(f"{what} failed (prefect {' '.join(args)}):\n{tail}")
    return result.stdout


def url_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def wait_for_url(url: str, what: str, timeout_s: float, process: subprocess.Popen,
                 log_file: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not url_answers(url):
        if process.poll() is not None:
            raise BringUpError(f"{what} exited with code {process.returncode}; see {log_file}")
        if time.monotonic() > deadline:
            raise BringUpError(f"{what} at {url} did not answer within {timeout_s:.0f}s; "
                               f"see {log_file}")
        time.sleep(0.5)


def ensure_port_free(port: int, what: str, setting: str) -> None:
    """Refuse a port something else already serves: links would lead to that server."""
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise BringUpError(f"port {port} for {what} is already in use by another process; "
                               f"free it or choose another port ({setting})")


def start_data_docs_server(settings: Settings, port: int, env: dict[str, str],
                           log_file: Path) -> subprocess.Popen:
    """A static file server of home/data_docs: every night's and dry run's GX pages."""
    root = settings.data_docs_root
    root.mkdir(parents=True, exist_ok=True)
    return start_detached([sys.executable, "-m", "http.server", str(port), "--bind",
                           "127.0.0.1", "--directory", str(root)], env, log_file)


def start_mlflow_ui(settings: Settings, port: int, env: dict[str, str],
                    log_file: Path) -> subprocess.Popen:
    settings.home.mkdir(parents=True, exist_ok=True)
    # The UI only shows the pipeline's runs and registry. MLflow's job execution (GenAI
    # judges, trace rollups) would start eight more processes, each busy all the time.
    env = env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return start_detached([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                           settings.mlflow_uri, "--host", "127.0.0.1", "--port", str(port),
                           "--workers", "1"], env, log_file)


def create_work_pool(pool: str, env: dict[str, str]) -> None:
    run_prefect(["work-pool", "create", pool, "--type", "process", "--overwrite"], env,
                f"creating work pool {pool}")


def render_prefect_file(settings: Settings, target: Path, source: Path = PREFECT_FILE) -> Path:
    """prefect.yaml with the `schedule:` settings applied (cron, timezone, work pool)."""
    config = yaml.safe_load(source.read_text())
    schedule = settings.schedule
    for deployment in config["deployments"]:
        deployment["work_pool"]["name"] = schedule.work_pool
        cron_field = SCHEDULED.get(deployment["name"])
        for entry in deployment.get("schedules") or []:
            entry["timezone"] = schedule.timezone
            if cron_field:
                entry["cron"] = getattr(schedule, cron_field)
            # The description says what the configured schedule means in UTC.
            description = deployment.get("description", "").split(" Schedule:")[0]
            deployment["description"] = (
                f"{description} {schedule_note(entry['cron'], schedule.timezone)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def deploy_all(prefect_file: Path, env: dict[str, str], cwd: Path = PROJECT_ROOT) -> str:
    # {{ $PWD }} in the pull step must be the checkout, whatever the caller's shell says.
    env = env | {"PWD": str(cwd)}
    return run_prefect(["--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
                       env, "deploying prefect.yaml", cwd=cwd)


def start_worker(pool: str, env: dict[str, str], log_file: Path,
                 cwd: Path = PROJECT_ROOT) -> subprocess.Popen:
    return start_detached([*_prefect(), "worker", "start", "--pool", pool, "--type", "process"],
                          env, log_file, cwd)


def stop_group(pid: int, timeout_s: float = 20) -> None:
    """Stop a process started here and its children (its own session/process group).

    SIGTERM first; a group still alive after ``timeout_s`` gets SIGKILL. Either way it
    returns only once the group is gone and the leader reaped (a zombie leader would
    still answer ``killpg(pid, 0)``), so a caller may check that nothing is left.
    """
    stop_groups([pid], timeout_s)


def stop_groups(pids: list[int], timeout_s: float = 20) -> None:
    """`stop_group` for several groups at once: all are asked to stop, then awaited,
    so their shutdowns overlap."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        if _wait_group_gone(pid, max(deadline - time.monotonic(), 0.0)):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_group_gone(pid, 10)


def _wait_group_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


RUN_LOG_ENV = {
    # Project loggers to the run log with their level, every line naming its step,
    # library chatter out (bbx/logs.py).
    "PREFECT_LOGGING_SETTINGS_PATH": str(LOGGING_CONFIG),
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GX_ANALYTICS_ENABLED": "false",
}


def stack_env(settings: Settings, api_url: str, mongodb_uri: str,
              data_docs_url: str | None = None, mlflow_ui_url: str | None = None
              ) -> dict[str, str]:
    env = os.environ | RUN_LOG_ENV | {
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "BBX_HOME": str(settings.home),
        "MONGODB_URI": mongodb_uri,
        "BBX_MONGO__DATABASE": settings.mongo.database,
    }
    if data_docs_url:
        env["BBX_REPORTS__DATA_DOCS_URL"] = data_docs_url
    if mlflow_ui_url:
        env["BBX_REPORTS__MLFLOW_UI_URL"] = mlflow_ui_url
    return env


def bring_up(settings: Settings, port: int = 4200) -> Stack:
    """Start (or reuse) every piece; idempotent: a second call reuses what runs."""
    home = settings.home
    state = home / STATE_FILE
    if state.exists():
        bring_down(settings, stop_mongo=False)  # a stale or running stack: start afresh
    started_mongo = False
    if settings.mongo.uri:
        mongodb_uri = settings.mongo.uri
    else:
        mongodb_uri, started_mongo = start_persistent(settings).uri, True
    api_url = f"http://127.0.0.1:{port}/api"
    reports = settings.reports
    docs_url = f"http://127.0.0.1:{reports.data_docs_port}"
    mlflow_url = f"http://127.0.0.1:{reports.mlflow_port}"
    env = stack_env(settings, api_url, mongodb_uri, docs_url, mlflow_url)
    logs = {name: str(home / f"{name}.log")
            for name in ("prefect-server", "prefect-worker", "data-docs", "mlflow-ui")}
    logs["server"], logs["worker"] = logs["prefect-server"], logs["prefect-worker"]
    started: dict[str, int | None] = {"server_pid": None, "docs_pid": None, "mlflow_pid": None,
                                      "worker_pid": None}
    server = None
    if not api_healthy(api_url):
        server = start_prefect_server(port, env, Path(logs["server"]))
        started["server_pid"] = server.pid
    state.write_text(json.dumps(started))  # so `bbx down` can stop a half-started stack
    try:
        ensure_port_free(reports.data_docs_port, "the Data Docs server",
                         "BBX_REPORTS__DATA_DOCS_PORT")
        ensure_port_free(reports.mlflow_port, "the MLflow UI", "BBX_REPORTS__MLFLOW_PORT")
        docs = start_data_docs_server(settings, reports.data_docs_port, env,
                                      Path(logs["data-docs"]))
        started["docs_pid"] = docs.pid
        mlflow_ui = start_mlflow_ui(settings, reports.mlflow_port, env, Path(logs["mlflow-ui"]))
        started["mlflow_pid"] = mlflow_ui.pid
        state.write_text(json.dumps(started))
        wait_for_api(api_url, 120, server, Path(logs["server"]))
        create_work_pool(settings.schedule.work_pool, env)
        deploy_all(render_prefect_file(settings, home / "prefect.rendered.yaml"), env)
        worker = start_worker(settings.schedule.work_pool, env, Path(logs["worker"]))
        started["worker_pid"] = worker.pid
        wait_for_url(docs_url, "the Data Docs server", 30, docs, Path(logs["data-docs"]))
        wait_for_url(f"{mlflow_url}/health", "the MLflow UI", 120, mlflow_ui,
                     Path(logs["mlflow-ui"]))
        for process, what in ((docs, "the Data Docs server"), (mlflow_ui, "the MLflow UI")):
            if process.poll() is not None:  # answered, but not from our process
                raise BringUpError(f"{what} exited with code {process.returncode}")
    except BaseException:
        for pid in reversed(list(started.values())):  # worker first, server last
            if pid:
                stop_group(pid)
        state.unlink(missing_ok=True)
        raise
    stack = Stack(api_url, started["server_pid"], worker.pid, mongodb_uri, started_mongo,
                  logs, docs.pid, mlflow_ui.pid, docs_url, mlflow_url)
    state.write_text(json.dumps(asdict(stack)))
    return stack


def bring_down(settings: Settings, stop_mongo: bool = True) -> list[str]:
    """Stop what `bring_up` started (worker first, then the server); say what was stopped."""
    state = settings.home / STATE_FILE
    stopped: list[str] = []
    if state.exists():
        recorded = json.loads(state.read_text())
        # The worker first, so it does not see its server go; the others together.
        for names in (("worker_pid",), ("docs_pid", "mlflow_pid", "server_pid")):
            pids = {name: recorded[name] for name in names if recorded.get(name)}
            stop_groups(list(pids.values()))
            stopped += [f"{name.removesuffix('_pid')} (pid {pid})" for name, pid in pids.items()]
        state.unlink(missing_ok=True)
    if stop_mongo and stop_persistent(settings):
        stopped.append("embedded MongoDB")
    return stopped


def free_api_port() -> int:
    return free_port()
