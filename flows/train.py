"""Weekly retrain: the nightly work with training forced and nothing published.

Wiring only. Extract and validate run as usual, both models are trained and
registered (champion/challenger rules decide promotion), and the night is scored
with the resulting champions as a dry run, which proves they can score.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.nightly import nightly
from tasks.report import on_flow_failure


@flow(name="train", log_prints=True, on_failure=[on_flow_failure])
def train(as_of: dt.date | None = None) -> dict:
    """Retrain both models for `as_of` (default today); the app's collections are untouched."""
    return nightly(as_of=as_of, train=True, force_train=True, dry_run=True)
