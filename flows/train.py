"""Retrain on demand: the nightly work with training forced and nothing published.

Wiring only. Extract and validate run as usual, both models are trained and
registered (champion/challenger rules decide promotion), and the night is scored
with the resulting champions without publishing, which proves they can score.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from flows.naming import OptionalDate, night_label
from flows.nightly import run_night
from tasks.report import on_flow_failure


def _train_run_name() -> str:
    return f"train {night_label(flow_run.parameters.get('as_of'))}"


@flow(name="train", flow_run_name=_train_run_name, log_prints=True,
      on_failure=[on_flow_failure])
def train(as_of: OptionalDate = None) -> dict:
    """Retrain both models, promote by the champion/challenger rules, score without
    publishing. The app's collections are untouched.

    Args:
        as_of: The UTC date to train for (YYYY-MM-DD): training data ends a churn
            horizon before it. Leave empty for today (UTC) at the run's start.
    """
    return run_night(as_of, train=True, force_train=True, publish=False)
