"""Ground truth: what the pipeline is judged against, kept apart from the app's data.

One document per customer in the truth collection (see TRUTH_COLLECTION), never
read by pipeline code (tests/test_architecture.py): the latent segment and
elasticity, the actual cancellation and lapse dates, including those in the
`future_days` simulated after the written history, and the true probability of
cancelling (and of leaving either way) within the next 30 days at each as-of date:
the first day of every month in the history, and the day after its end (what a
nightly run "today" scores).

How the true probability is computed. In the simulator a customer cancels on the
first day C at which the cumulative daily hazard h (latent traits x recent
tickets, failed charges and incidents x new-contract boost, calibrated to the
annual churn) crosses an Exp(1) draw, and starts winding down usage and logins
D days before C, D uniform on LEAVER_DECLINE_DAYS. At midnight starting day t,
with G(x) = exp(-sum(h[0..x])) the chance of not having cancelled by the end of
day x:
  - a customer already winding down (C - D < t) has decided: the probability is
    1 if C falls within [t, t + 30) and 0 otherwise;
  - any other live customer has not decided yet, i.e. C >= t + D, so
      P(C < t + 30 | C >= t + D) = sum_D [G(t+D-1) - G(t+29)]^+ / sum_D G(t+D-1).
The "leave" probability (for churn.definition cancelled_or_nonrenewal) is the
same, with a decided non-renewal counting as leaving; the chance that a customer
not yet winding down is later picked for a non-renewal (a small random share) is
left out. h is the realised hazard path, so the next 30 days' incidents and failed charges
are known to this reference: it is the ceiling of what any model of the observed
data can reach (a slightly generous one), not a model itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from pymongo.database import Database

from simulator.catalog import SEGMENTS
from simulator.scenarios import decline_range
from simulator.timeline import NEVER
from simulator.world import World, in_service

TRUTH_COLLECTION = "sim_truth"
HORIZON_DAYS = 30  # the churn label's horizon the truth's probabilities are for


class TruthUnavailableError(LookupError):
    """The truth does not cover what was asked (no simulation, or another as-of date)."""


def truth_as_of_dates(world: World) -> list[dt.date]:
    """First day of each month inside the history, then the day after its end."""
    start, end = world.spec.start, world.spec.end
    dates = []
    month = dt.date(start.year, start.month, 1)
    while month <= end:
        if month > start:
            dates.append(month)
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    dates.append(end + dt.timedelta(days=1))
    return dates


def churn_probabilities(
    world: World, day_index: int, cumulative_hazard: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(live, p_cancel, p_leave) per customer at midnight starting `day_index`, for the
    next HORIZON_DAYS days; probabilities are NaN for customers not live then.
    `cumulative_hazard` (cumsum of the daily hazard over days) saves recomputing it."""
    tl = world.full
    cum = cumulative_hazard
    if cum is None:
        cum = np.cumsum(tl.daily_hazard, axis=0, dtype=np.float64)
    last = cum.shape[0] - 1

    def survival(x: int) -> np.ndarray:  # chance of not having cancelled by the end of day x
        return np.exp(-cum[min(x, last)]) if x >= 0 else np.ones(cum.shape[1])

    t = day_index
    horizon_end = survival(t + HORIZON_DAYS - 1)
    num = np.zeros(cum.shape[1])
    den = np.zeros(cum.shape[1])
    shortest, longest = decline_range(world.spec.scenario)
    for d in range(shortest, longest + 1):
        still = survival(t + d - 1)
        num += np.maximum(still - horizon_end, 0.0)
        den += still
    undecided = np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    cancel_day = np.where(tl.cancel_day >= 0, tl.cancel_day, NEVER)
    lapse_day = np.where(tl.nonrenewal_day >= 0, tl.nonrenewal_day, NEVER)
    leave_day = np.minimum(cancel_day, lapse_day)
    # Without a wind-down (contract-driven) nothing shows a decision before it is made.
    decided = (leave_day < NEVER) & (tl.decline_start_day < t) & (longest > 0)
    within = t + HORIZON_DAYS
    p_cancel = np.where(decided, (cancel_day < within).astype(float), undecided)
    p_leave = np.where(decided, (leave_day < within).astype(float), undecided)
    live = in_service(world, t)
    return live, np.where(live, p_cancel, np.nan), np.where(live, p_leave, np.nan)


def _dt(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def truth_documents(world: World, usage_gb: np.ndarray) -> Iterator[dict]:
    """One truth document per customer (the future included)."""
    pop, tl, keys = world.pop, world.full, world.keys
    months = world.spec.days / 30.0
    as_of_dates = truth_as_of_dates(world)
    cum = np.cumsum(tl.daily_hazard, axis=0, dtype=np.float64)
    probabilities = [churn_probabilities(world, world.day_index(d), cum) for d in as_of_dates]
    observed_through = _midnight(world.spec.end + dt.timedelta(days=1))
    simulated_through = _midnight(world.date_of(tl.window.days))
    for i in range(pop.size):
        cancelled, lapsed = tl.cancel_day[i] >= 0, tl.nonrenewal_day[i] >= 0
        yield {
            "_id": keys.user_ids[i],
            "userId": keys.user_ids[i],
            "subscriptionId": keys.subscription_ids[i],
            "segment": SEGMENTS[pop.segment[i]].name,
            "segmentIndex": int(pop.segment[i]),
            "elasticity": float(round(pop.elasticity[i], 4)),
            "churnDate": _dt(tl.cancel_request_seconds[i]) if cancelled else None,
            "nonRenewalDate": _dt(tl.nonrenewal_seconds[i]) if lapsed else None,
            "declineStart": (
                _dt(tl.window.day_seconds(int(tl.decline_start_day[i])))
                if cancelled or lapsed
                else None
            ),
            "monthlyChurnHazard": float(round(tl.monthly_hazard[i], 6)),
            "satisfaction": float(round(pop.satisfaction[i], 4)),
            "paymentStress": float(round(pop.payment_stress[i], 4)),
            "typicalMonthlyGB": float(round(pop.monthly_gb[i], 2)),
            "simulatedMonthlyGB": float(round(usage_gb[i] / months, 2)),
            "observedThrough": observed_through,  # app data ends before this instant
            "simulatedThrough": simulated_through,  # outcomes known up to this instant
            "churnProbability30d": [
                {"asOf": _midnight(day), "cancel": float(p_cancel[i]), "leave": float(p_leave[i])}
                for day, (live, p_cancel, p_leave) in zip(as_of_dates, probabilities, strict=True)
                if live[i]
            ],
        }


def read_truth(db: Database, as_of_dates: Sequence[dt.date]) -> pd.DataFrame:
    """The truth for evaluating scores of `as_of_dates`: one row per customer live at each
    date, columns as_of, user_id (hex), latent_segment, p_cancel_30d, p_leave_30d,
    cancelled_30d and left_30d (what actually happened in [as_of, as_of + 30 days)).

    Raises TruthUnavailableError if there is no truth, or a date is not covered."""
    fields = {
        "userId": 1,
        "segment": 1,
        "churnDate": 1,
        "nonRenewalDate": 1,
        "simulatedThrough": 1,
        "churnProbability30d": 1,
    }
    rows: list[dict] = []
    wanted = {_midnight(d): d for d in as_of_dates}
    seen: set[dt.date] = set()
    available: set[dt.date] = set()
    simulated_through = None
    for doc in db[TRUTH_COLLECTION].find({}, fields):
        simulated_through = doc["simulatedThrough"]
        for entry in doc["churnProbability30d"]:
            as_of = _aware(entry["asOf"])
            available.add(as_of.date())
            if as_of not in wanted:
                continue
            seen.add(wanted[as_of])
            horizon_end = as_of + dt.timedelta(days=HORIZON_DAYS)
            ends = [d for d in (doc["churnDate"], doc["nonRenewalDate"]) if d is not None]
            rows.append(
                {
                    "as_of": wanted[as_of],
                    "user_id": str(doc["userId"]),
                    "latent_segment": doc["segment"],
                    "p_cancel_30d": entry["cancel"],
                    "p_leave_30d": entry["leave"],
                    "cancelled_30d": _within(doc["churnDate"], as_of, horizon_end),
                    "left_30d": any(_within(d, as_of, horizon_end) for d in ends),
                }
            )
    if simulated_through is None:
        raise TruthUnavailableError(
            f"no simulation truth in database {db.name!r}: run `bbx simulate` first"
        )
    missing = sorted(set(as_of_dates) - seen)
    if missing:
        raise TruthUnavailableError(
            f"the truth has no churn probabilities for {', '.join(map(str, missing))}; "
            f"available as-of dates: {', '.join(map(str, sorted(available)))}"
        )
    horizon = dt.timedelta(days=HORIZON_DAYS)
    late = [d for d in as_of_dates if _midnight(d) + horizon > _aware(simulated_through)]
    if late:
        raise TruthUnavailableError(
            f"outcomes are simulated only up to {simulated_through:%Y-%m-%d}: "
            f"{', '.join(map(str, late))} + {HORIZON_DAYS} days is beyond that"
        )
    return pd.DataFrame(rows)


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _within(when: dt.datetime | None, start: dt.datetime, end: dt.datetime) -> bool:
    return when is not None and start <= _aware(when) < end
