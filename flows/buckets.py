"""Scoring in hash buckets of customers: score each bucket of the night's split, combine.

The one way a night is scored (the bench and the tests use it too).

Wiring only. The bucket tasks run on this subflow's task runner: the Dask cluster
at `scale.dask_address` through prefect-dask's DaskTaskRunner, else one bucket at
a time in this process (one bucket's raw events in memory at once).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from bbx.lake.buckets import LakePartitions
from bbx.settings import Settings
from tasks.score import (
    Champions,
    ScoreResult,
    bucket_cache_options,
    champion_versions,
    combine_scores_task,
    score_bucket_task,
)


def bucket_task_runner(settings: Settings) -> TaskRunner:
    if settings.scale.dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=settings.scale.dask_address)
    return ThreadPoolTaskRunner(max_workers=1)


@flow(name="score-buckets", validate_parameters=False)
def score_buckets(
    settings: Settings, as_of: dt.date, partitions: LakePartitions,
    champions: Champions | None = None,
) -> ScoreResult:
    """Score every customer bucket with one set of model versions (default: @champion)."""
    # Every bucket scores with the same versions.
    champions = champions or champion_versions(settings)
    futures = [
        score_bucket_task.with_options(
            **bucket_cache_options(settings, as_of, partitions, b, champions))
        .submit(settings, as_of, partitions.bucket_paths(b), partitions=partitions, bucket=b,
                champions=champions)
        for b in range(partitions.buckets)
    ]
    parts = [future.result() for future in futures]
    return combine_scores_task(settings, as_of, partitions, parts, champions)


def score_in_buckets(
    settings: Settings, as_of: dt.date, partitions: LakePartitions,
    champions: Champions | None = None,
) -> ScoreResult:
    """Run `score_buckets` on the runner the settings ask for, named under its parent run
    (`nightly 2026-12-01 › score buckets`)."""
    runner = bucket_task_runner(settings)
    name = f"{flow_run.get_name() or 'nightly'} › score buckets"
    return score_buckets.with_options(task_runner=runner, flow_run_name=name)(
        settings, as_of, partitions, champions)
