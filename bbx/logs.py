"""Run logs a person can read in the Prefect UI.

`configs/prefect-logging.yml` (PREFECT_LOGGING_SETTINGS_PATH, set by `bbx up` and the
`bbx` CLI) sends the project's own loggers (`tasks`, `flows`, `bbx`, `features`,
`models`) to the run's log with their level, keeps library chatter (Great
Expectations, MLflow) out of it, and formats every line sent to the API with
`StepFormatter`, so each line names the task run or flow it came from.
"""

from __future__ import annotations

import logging
from pathlib import Path

LOGGING_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "prefect-logging.yml"


def _step_from_context() -> str | None:
    from prefect.context import FlowRunContext, TaskRunContext

    task_run = TaskRunContext.get()
    if task_run is not None:
        return task_run.task_run.name
    flow_run = FlowRunContext.get()
    if flow_run is not None and flow_run.flow is not None:
        return flow_run.flow.name
    return None


class StepFormatter(logging.Formatter):
    """`[extract-users] Finished in state Completed()`: the step first, then the message."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        step = _known(getattr(record, "task_run_name", None)) or _step_from_context() \
            or _known(getattr(record, "flow_name", None)) or _origin(record.name)
        return f"[{step}] {message}"


def _known(name: str | None) -> str | None:
    return None if name in (None, "", "<unknown>") else name


ORIGINS = {"prefect.flow_runs.worker": "worker", "prefect.flow_runs": "run setup",
           "prefect.flow_runs.runner": "runner"}


def _origin(logger_name: str) -> str:
    """Lines written about a run outside its flow (the worker, the deployment's pull steps)."""
    return ORIGINS.get(logger_name, logger_name)


class LibraryNoiseFilter(logging.Filter):
    """Drops libraries' INFO and below. Great Expectations sets its own module loggers to
    INFO when imported (after logging is configured), so levels in the config alone
    cannot keep its "Created temporary directory" lines out."""

    NOISY = ("great_expectations", "mlflow", "alembic")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(self.NOISY)
