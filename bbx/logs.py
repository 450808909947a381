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
        step = (getattr(record, "task_run_name", None) or _step_from_context()
                or getattr(record, "flow_name", None))
        return f"[{step}] {message}" if step else message
