"""Links a run's artifacts carry: real http URLs when `bbx up` serves the reports.

`reports.data_docs_url` is the HTTP root of home/data_docs (the Data Docs server `bbx
up` starts); `reports.mlflow_ui_url` an MLflow UI on this home's store. Without them a
Data Docs link is a file:// path (a browser opens it only from the same machine) and
MLflow gets no link.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

from bbx.settings import Settings

CHURN_PLOTS = ("roc", "pr", "calibration", "confusion_matrix", "feature_importance",
               "contribution_summary")


def data_docs_link(settings: Settings, page: Path) -> str:
    root = settings.reports.data_docs_url
    if not root:
        return page.as_uri()
    relative = page.relative_to(settings.data_docs_root).as_posix()
    return f"{root.rstrip('/')}/{quote(relative)}"


def mlflow_run_link(settings: Settings, experiment_id: str, run_id: str) -> str | None:
    root = settings.reports.mlflow_ui_url
    if not root:
        return None
    return f"{root.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_artifact_link(settings: Settings, run_id: str, path: str) -> str | None:
    """The artifact file itself (an image opens in the browser)."""
    root = settings.reports.mlflow_ui_url
    if not root:
        return None
    return f"{root.rstrip('/')}/get-artifact?{urlencode({'path': path, 'run_uuid': run_id})}"
