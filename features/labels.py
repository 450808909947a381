"""Churn labels: did the customer's live subscription end within the horizon?

The event time comes from features/subscriptions.py: for a cancellation, the
customer's *request* date (else effective date). The request is the decision
we want to anticipate: by the effective date the customer is already lost and
nothing can be offered, and the population at later cutoffs excludes a
customer from the request on, so labels and population agree.
A non-renewal (grace_period/suspended/expired) ends at its end_date.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from features.subscriptions import current_subscription, subscription_lifecycle, to_utc

ChurnDefinition = Literal["cancelled", "cancelled_or_nonrenewal"]


def churn_labels(
    subscriptions: pd.DataFrame,
    user_ids: pd.Index,
    cutoff: pd.Timestamp,
    horizon_days: int,
    definition: ChurnDefinition,
) -> pd.Series:
    """1 if the customer's subscription live at cutoff churned in (cutoff, cutoff + horizon].

    - "cancelled": only cancellations count;
    - "cancelled_or_nonrenewal": non-renewals count too.
    A customer who started another subscription after the current one's start and by
    the horizon's end moved plans rather than left: label 0. Customers in `user_ids`
    without a live subscription at cutoff get 0 (they should not be asked about).
    Returns int labels indexed like `user_ids`, named "label".
    """
    if definition not in ("cancelled", "cancelled_or_nonrenewal"):
        raise ValueError(f"unknown churn definition: {definition!r}")
    cutoff = to_utc(cutoff)
    horizon_end = cutoff + pd.Timedelta(days=horizon_days)
    lifecycle = subscription_lifecycle(subscriptions)
    current = current_subscription(lifecycle, cutoff)

    kinds = ("cancelled",) if definition == "cancelled" else ("cancelled", "nonrenewal")
    ended = current["ended_at"]
    churned = (
        current["end_kind"].isin(kinds) & ended.notna() & (ended > cutoff) & (ended <= horizon_end)
    )

    # Plan switch: a later subscription of the same user started by the horizon's end.
    later = lifecycle[["user_id", "start_date"]].merge(
        current["start_date"].rename("current_start"), left_on="user_id", right_index=True
    )
    switched_users = later.loc[
        (later["start_date"] > later["current_start"]) & (later["start_date"] <= horizon_end),
        "user_id",
    ].unique()
    churned &= ~current.index.isin(switched_users)

    labels = churned.reindex(user_ids, fill_value=False).astype(np.int64)
    labels.name = "label"
    return labels
