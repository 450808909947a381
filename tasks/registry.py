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
PIPELINE_EXPERIMENTS = (CHURN_MODEL, SEGMENT_MODEL, "pricing")  # what the night writes to
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


class MlflowStoreMovedError(RuntimeError):
    """The tracking store's artifact locations point outside this home."""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str


def check_store_location(settings: Settings) -> None:
    """Stop before any work when the home's MLflow store keeps its artifacts elsewhere
    (a copied or moved home), rather than at training, after the lake was written."""
    if not (settings.home / "mlflow.db").exists():
        return
    mlflow.set_tracking_uri(settings.mlflow_uri)
    for experiment in mlflow.search_experiments():
        if experiment.name in PIPELINE_EXPERIMENTS:
            _check_location(settings, experiment.name, experiment.artifact_location)


def _check_location(settings: Settings, experiment: str, location: str) -> None:
    expected = (settings.mlflow_artifacts_dir / experiment).as_uri()
    if location.rstrip("/") != expected.rstrip("/"):
        raise MlflowStoreMovedError(
            f"the MLflow store {settings.mlflow_uri} keeps experiment '{experiment}' "
            f"artifacts at {location}, not under this home "
            f"({settings.mlflow_artifacts_dir.as_uri()}): the home was copied or moved, and "
            "MLflow records absolute artifact paths, so runs would write into the old "
            "location. Run from the original home, or move mlflow.db and mlartifacts/ out "
            "of this home to start a fresh store (the next night retrains: --force-train)."
        )


def configure(settings: Settings, experiment: str) -> None:
    """Point MLflow at the project's SQLite store; artifacts under home."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)  # the cloudpickle notice
    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    expected = (settings.mlflow_artifacts_dir / experiment).as_uri()
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is None:
        mlflow.create_experiment(experiment, artifact_location=expected)
    else:
        _check_location(settings, experiment, existing.artifact_location)
    mlflow.set_experiment(experiment)


def _requirements() -> list[str]:
    return [f"{name}=={version(name)}" for name in _RUNTIME_PACKAGES]


def log_and_register(
    model: Any,
    kind: str,
    registered_name: str,
    example_input: pd.DataFrame,
    example_output: Any,
    alias: str | None,
    tags: dict[str, str] | None = None,
) -> RegisteredModel:
    """Log `model` in the active run, register a version and point `alias` at it
    (None: no alias, as for a dry run's version, which nothing may serve).

    `tags` are set on the new model version (e.g. the as-of it was trained for).
    """
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
    client = MlflowClient()
    for key, value in (tags or {}).items():
        client.set_model_version_tag(registered_name, registered_version, key, value)
    if alias is not None:
        client.set_registered_model_alias(registered_name, alias, registered_version)
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


# --- champion history ------------------------------------------------------------
# The alias `champion` points at the serving version. Each promotion tags the new
# champion with `promoted_from` (the version it replaced, "" for the first) and
# `promoted_at`/`promotion_reason`; rollback follows `promoted_from` one step back,
# so the chain of tags is the history.
PROMOTED_FROM = "promoted_from"
PROMOTED_AT = "promoted_at"
PROMOTION_REASON = "promotion_reason"
TRAINED_AS_OF = "trained_as_of"
# A dry run's version carries this instead of `trained_as_of`, so it never makes the
# next night's "retrain when due" think the model is fresh.
DRY_RUN_AS_OF = "dry_run_as_of"


def alias_version(registered_name: str, alias: str) -> str | None:
    """The version `alias` points at, or None (no such model or alias)."""
    try:
        return str(MlflowClient().get_model_version_by_alias(registered_name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def load_version(registered_name: str, version: str) -> Any:
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registered_name}/{version}")
    return pyfunc.unwrap_python_model().model


def version_tags(registered_name: str, version: str) -> dict[str, str]:
    return dict(MlflowClient().get_model_version(registered_name, version).tags)


def promote(registered_name: str, version: str, reason: str) -> str | None:
    """Point `champion` at `version`; returns the previous champion's version (or None)."""
    import datetime as dt

    client = MlflowClient()
    try:
        client.get_model_version(registered_name, version)
    except mlflow.exceptions.MlflowException:
        raise LookupError(f"model '{registered_name}' has no version {version}") from None
    previous = alias_version(registered_name, CHAMPION)
    if previous == str(version):
        return previous
    client.set_model_version_tag(registered_name, version, PROMOTED_FROM, previous or "")
    client.set_model_version_tag(
        registered_name, version, PROMOTED_AT, dt.datetime.now(dt.UTC).isoformat()
    )
    client.set_model_version_tag(registered_name, version, PROMOTION_REASON, reason[:4000])
    client.set_registered_model_alias(registered_name, CHAMPION, str(version))
    return previous


def rollback(registered_name: str) -> tuple[str, str]:
    """Move `champion` back to the version it replaced: returns (from, to)."""
    client = MlflowClient()
    current = alias_version(registered_name, CHAMPION)
    if current is None:
        raise LookupError(f"model '{registered_name}' has no champion to roll back")
    previous = version_tags(registered_name, current).get(PROMOTED_FROM, "")
    if not previous:
        raise LookupError(
            f"champion v{current} of '{registered_name}' was the first champion: nothing to "
            "roll back to"
        )
    client.set_registered_model_alias(registered_name, CHAMPION, previous)
    client.set_model_version_tag(registered_name, current, "rolled_back_to", previous)
    return current, previous


def model_versions(registered_name: str) -> list[dict[str, str]]:
    """Every version, newest first: version, aliases, trained as-of, promotion tags."""
    client = MlflowClient()
    try:
        aliases = client.get_registered_model(registered_name).aliases
    except mlflow.exceptions.MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, aliased in aliases.items():
        by_version.setdefault(str(aliased), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name='{registered_name}'"):
        rows.append({
            "version": str(mv.version),
            "aliases": ",".join(sorted(by_version.get(str(mv.version), []))),
            TRAINED_AS_OF: mv.tags.get(TRAINED_AS_OF, ""),
            PROMOTED_FROM: mv.tags.get(PROMOTED_FROM, ""),
            PROMOTION_REASON: mv.tags.get(PROMOTION_REASON, ""),
        })
    return sorted(rows, key=lambda r: -int(r["version"]))


def last_trained_as_of(registered_name: str) -> str | None:
    """The latest `trained_as_of` tag over the model's versions (ISO date), or None."""
    dates = [r[TRAINED_AS_OF] for r in model_versions(registered_name) if r[TRAINED_AS_OF]]
    return max(dates) if dates else None
