"""On-demand scoring: the nightly work with the current champions, no training.

Wiring only. Use it after `bbx model promote/rollback`, or to republish a night.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from flows.naming import OptionalDate, night_label
from flows.nightly import run_night
from tasks.report import on_flow_failure


def _score_run_name() -> str:
    parameters = flow_run.parameters
    return f"score {night_label(parameters.get('as_of'), parameters.get('dry_run', False))}"


@flow(name="score", flow_run_name=_score_run_name, log_prints=True,
      on_failure=[on_flow_failure])
def score(as_of: OptionalDate = None, dry_run: bool = False) -> dict:
    """Score every active customer with the @champion models and publish (no training).

    Use it after `bbx model promote` or `bbx model rollback`, or to republish a night.

    Args:
        as_of: The UTC date to score (YYYY-MM-DD). Leave empty for today (UTC) at the
            run's start.
        dry_run: Score and report only: no MongoDB writes, the lake's validated state
            left as it was.
    """
    return run_night(as_of, train=False, force_train=False, dry_run=dry_run)
