"""On-demand scoring: the nightly work with the current champions, no training.

Wiring only. Use it after `bbx model promote/rollback`, or to republish a night.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.nightly import nightly
from tasks.report import on_flow_failure


@flow(name="score", log_prints=True, on_failure=[on_flow_failure])
def score(as_of: dt.date | None = None, dry_run: bool = False) -> dict:
    """Score every active customer for `as_of` with @champion and publish (unless dry_run)."""
    return nightly(as_of=as_of, train=False, force_train=False, dry_run=dry_run)
