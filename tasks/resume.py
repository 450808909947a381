"""The scoring cache: a failed night, rerun, reuses the buckets it already scored.

A key is the as-of date, the settings that shape the result, the *content* of the
lake files the step reads (not their modification times: a rerun re-extracts and
rewrites identical files) and the champion versions. A cached result points at
files, so it is only reused while they still exist; otherwise the step runs again.
Training is not cached: whether a night trains is the training-due rule's call
(models/retraining.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CacheKeyFnPolicy, CachePolicy

from bbx import lake
from bbx.lake.history import content_fingerprint as file_fingerprint
from bbx.settings import Settings


def _settings_fingerprint(settings: Settings) -> str:
    # Where Mongo lives and which date is asked for do not change a model or a score.
    shaped = settings.model_dump(mode="json", exclude={"mongo", "mongodb_uri", "as_of"})
    return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()


def _never_cached(reason: str) -> str:
    return f"no-cache:{reason}:{uuid.uuid4().hex}"


def lake_inputs_key(task_name: str, inputs: Mapping[str, Any]) -> str:
    settings: Settings = inputs["settings"]
    as_of = inputs["as_of"]
    files = {}
    for name, path in sorted(dict(inputs.get("clean_paths") or {}).items()):
        fingerprint = file_fingerprint(path)
        if fingerprint is None:
            return _never_cached(f"missing input {name}")
        files[name] = fingerprint
    payload = json.dumps(
        {"task": task_name, "as_of": str(as_of), "settings": _settings_fingerprint(settings),
         "home": str(settings.home), "files": files},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _champion_versions(settings: Settings) -> dict[str, str] | None:
    if not (settings.home / "mlflow.db").exists():
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tasks import registry

    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    versions = {}
    for name in (registry.CHURN_MODEL, registry.SEGMENT_MODEL):
        try:
            versions[name] = str(client.get_model_version_by_alias(name, registry.CHAMPION).version)
        except MlflowException:
            return None
    return versions


def scoring_key(context: Any, inputs: dict[str, Any]) -> str:
    """Also keyed on the champions' versions, so a promotion or rollback rescores."""
    settings: Settings = inputs["settings"]
    champions = _champion_versions(settings)
    if champions is None:
        return _never_cached("no champions")
    base = lake_inputs_key(context.task.name, inputs)
    return hashlib.sha256(f"{base}|{json.dumps(champions, sort_keys=True)}".encode()).hexdigest()


def resumable_options(settings: Settings, as_of: dt.date, force: bool = False) -> dict[str, Any]:
    """Task options for scoring: a persisted result keyed by `scoring_key` and the
    task's source. The cache is refreshed (the step runs) when forced or when the
    night's scores file is gone."""
    output = lake.scores_path(settings.lake_dir, as_of)
    policy: CachePolicy = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=scoring_key)
    return {"cache_policy": policy, "persist_result": True,
            "refresh_cache": force or not output.exists()}
