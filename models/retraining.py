"""When a night retrains the models (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainingDue:
    due: bool
    reason: str


def training_due(as_of: dt.date, force: bool, missing_champions: list[str],
                 last_trained_as_of: str | None, retrain_every_days: int) -> TrainingDue:
    """Train when forced, when a model has no champion (`missing_champions` names them),
    or when the churn champion's last training (its as-of, ISO date) is
    `retrain_every_days` old. A rerun of a night that trained does not train again:
    the champion was trained for that very as-of."""
    if force:
        return TrainingDue(True, "forced")
    if missing_champions:
        return TrainingDue(True, f"no {missing_champions[0]} champion yet")
    if last_trained_as_of is None:
        return TrainingDue(True, "the churn champion has no training date")
    age = (as_of - dt.date.fromisoformat(last_trained_as_of)).days
    text = f"last trained for {last_trained_as_of}, {age} days ago (every {retrain_every_days})"
    return TrainingDue(age >= retrain_every_days, text)
