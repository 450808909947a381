"""What followed each customer's price: the history elasticity is estimated from (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.customer import DAY, DAYS_PER_MONTH, LakeTables, customer_population
from features.subscriptions import subscription_lifecycle, to_utc


def price_response_history(
    tables: LakeTables, cohort_cutoff: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """The cohort live at `cohort_cutoff`, followed to `end` (point in time: only what
    was known by `end`).

    Index user_id; columns plan_id, base_price and final_price (the subscription's
    price per billing cycle before and after its discount), exposure_months (time
    at risk from the cohort cutoff to the cancellation or `end`) and churned (the
    subscription was cancelled in that span; a non-renewal is not a price response
    the customer chose, so it ends exposure without counting).
    """
    cohort_cutoff, end = to_utc(cohort_cutoff), to_utc(end)
    if end <= cohort_cutoff:
        raise ValueError("the follow-up must end after the cohort cutoff")
    cohort = customer_population(tables, cohort_cutoff)
    life = subscription_lifecycle(tables.subscriptions).set_index("subscription_id")
    ended = life["ended_at"].reindex(cohort["subscription_id"].to_numpy())
    kind = life["end_kind"].reindex(cohort["subscription_id"].to_numpy())
    ended = pd.Series(ended.array, index=cohort.index)  # .array keeps UTC when all NaT
    kind = pd.Series(kind.to_numpy(), index=cohort.index)
    ended_in_span = ended.notna() & (ended <= end)
    stop = ended.where(ended_in_span, end)
    exposure = ((stop - cohort_cutoff) / DAY).to_numpy(dtype=float) / DAYS_PER_MONTH
    out = pd.DataFrame(index=cohort.index)
    out["plan_id"] = cohort["plan_id"].astype(str).to_numpy()
    out["base_price"] = pd.to_numeric(cohort["base_price"], errors="coerce").to_numpy(float)
    out["final_price"] = pd.to_numeric(cohort["final_price"], errors="coerce").to_numpy(float)
    out["exposure_months"] = np.clip(exposure, 0.0, None)
    out["churned"] = (ended_in_span & kind.eq("cancelled")).to_numpy(dtype=bool)
    return out
