"""The lake split into hash buckets of customers (bbx.lake.buckets), as a flow step."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from prefect import task
from prefect.cache_policies import NONE

from bbx.lake.buckets import LakePartitions, partition_lake
from bbx.settings import Settings


@task(name="partition-lake", cache_policy=NONE)
def partition_lake_task(
    settings: Settings, as_of: dt.date, clean_paths: Mapping[str, str]
) -> LakePartitions:
    return partition_lake(settings, as_of, clean_paths)
