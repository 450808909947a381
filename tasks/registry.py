"""MLflow tracking and registry: the only module that talks to MLflow.

Models are logged as pyfunc wrappers (cloudpickle) around our own model classes:
MLflow 3's sklearn flavour defaults to skops, which refuses XGBoost inside a
pipeline, and the xgboost flavour's pyfunc predicts labels, not probabilities.
Scoring always loads `models:/<name>@champion`.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from bbx.settings import Settings

CHURN_MODEL = "churn"
SEGMENT_MODEL = "segmentation"
CHAMPION = "champion"
CHALLENGER = "challenger"

# Pinning the runtime explicitly stops MLflow from inferring requirements in a
# subprocess (slow) and records what the model was trained with.
_RUNTIME_PACKAGES = ("xgboost-cpu", "scikit-learn", "pandas", "numpy", "scipy", "cloudpickle")


class _PredictProba(mlflow.pyfunc.PythonModel):
    """pyfunc whose predict() returns what the wrapped model's `predict_proba` returns."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return self.model.predict_proba(model_input)


class _Assign(mlflow.pyfunc.PythonModel):
    """pyfunc whose predict() returns the segment assignment table."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return self.model.assign(model_input)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str


def configure(settings: Settings, experiment: str) -> None:
    """Point MLflow at the project's SQLite store; artifacts under home."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)  # the cloudpickle notice
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(
            experiment, artifact_location=(settings.mlflow_artifacts_dir / experiment).as_uri()
        )
    mlflow.set_experiment(experiment)


def _requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in _RUNTIME_PACKAGES]


def log_and_register(
    model: Any,
    kind: str,
    registered_name: str,
    example_input: pd.DataFrame,
    example_output: Any,
    alias: str,
) -> RegisteredModel:
    """Log `model` in the active run, register a version and point `alias` at it."""
    wrapper = _PredictProba(model) if kind == "predict_proba" else _Assign(model)
    with warnings.catch_warnings():
        # Advice aimed at serving endpoints (input examples, int columns, pickling):
        # our models are loaded only by our own scoring task.
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=wrapper,
            registered_model_name=registered_name,
            signature=infer_signature(example_input, example_output),
            pip_requirements=_requirements(),
        )
    registered_version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(registered_name, alias, registered_version)
    return RegisteredModel(registered_name, registered_version, mlflow.active_run().info.run_id)


def load_by_alias(registered_name: str, alias: str = CHAMPION) -> tuple[Any, str]:
    """The wrapped model object and its version number."""
    client = MlflowClient()
    try:
        version_info = client.get_model_version_by_alias(registered_name, alias)
    except mlflow.exceptions.MlflowException:
        raise LookupError(
            f"no model '{registered_name}' with alias '{alias}' in the registry; train first "
            "(`bbx run train`)"
        ) from None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered_name}@{alias}")
    return pyfunc.unwrap_python_model().model, str(version_info.version)
