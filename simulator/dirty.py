"""Dirty mode: the dirt real app data has, injected deterministically and counted.

Shares are small on purpose: enough to exercise the pipeline's quarantine and
fallbacks, not so much that the data stops being about customers (row-level dirt
stays well under the 1% quarantine limit per collection). Each kind of
dirt has its own counter in `Dirt.counts` (reported by `simulate`).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np

from simulator.encode import SECONDS_PER_DAY, STREAM_DIRT, object_ids, rng_for, to_datetimes

LAST_LOGIN_DROP_SHARE = 0.15  # more users lose lastLogin than the app already drops
NPS_DEFAULT_SHARE = 0.10  # answered npsScore overwritten by the default 7
MALFORMED_USER_SHARE = 0.002
OFF_ENUM_SUBSCRIPTION_SHARE = 0.004  # "trialing"/"pending" instead of an app status
OFF_ENUM_SUBSCRIPTION_STATUSES = ("trialing", "pending")
OFF_ENUM_TICKET_SHARE = 0.004
OFF_ENUM_TICKET_STATUSES = ("reopened", "escalated")
DUPLICATE_SESSION_SHARE = 0.005
BACK_DATED_SHARE = 0.001  # test data from before the app existed
FUTURE_DATED_SHARE = 0.001  # clocks set wrong: dates after the history's end
MALFORMED_SESSION_SHARE = 0.0005
FUTURE_FEEDBACK_SHARE = 0.005
BACK_DATED_FROM = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
USAGE_ROLLUP_EVERY_DAYS = 7  # the app's daily usageanalytics roll-up, sampled weekly
GB_SCRIPT_DAYS = 28  # one app script wrote GB instead of MB for this long
MB_PER_GB = 1000.0

_PARTS = {
    "users": 1,
    "subscriptions": 2,
    "usagelogs": 3,
    "supporttickets": 4,
    "feedbacks": 5,
    "usageanalytics": 6,
}


class Dirt:
    """Applies dirt to document streams, collection by collection, in a fixed order."""

    def __init__(self, seed: int, end: dt.date) -> None:
        self._rng = {name: rng_for(seed, STREAM_DIRT, part) for name, part in _PARTS.items()}
        self._end_seconds = int(
            dt.datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=dt.UTC).timestamp()
        )
        self.counts: Counter[str] = Counter()

    def apply(self, collection: str, documents: Iterable[dict]) -> Iterator[dict]:
        handler = getattr(self, f"_{collection}", None)
        if handler is None:
            return iter(documents)
        return handler(self._rng[collection], documents)

    def _users(self, rng: np.random.Generator, docs: Iterable[dict]) -> Iterator[dict]:
        for doc in docs:
            u = rng.random(3)
            if doc.get("role") == "customer":
                if "lastLogin" in doc and u[0] < LAST_LOGIN_DROP_SHARE:
                    del doc["lastLogin"]
                    self.counts["users.lastLogin_removed"] += 1
                if doc["npsScore"] != 7 and u[1] < NPS_DEFAULT_SHARE:
                    doc["npsScore"] = 7
                    self.counts["users.npsScore_set_to_default_7"] += 1
                if u[2] < MALFORMED_USER_SHARE:
                    doc["npsScore"] = "n/a"
                    doc["customerSince"] = "unknown"
                    self.counts["users.malformed"] += 1
            yield doc

    def _subscriptions(self, rng: np.random.Generator, docs: Iterable[dict]) -> Iterator[dict]:
        for doc in docs:
            u, pick = rng.random(), int(rng.integers(0, len(OFF_ENUM_SUBSCRIPTION_STATUSES)))
            if doc["status"] == "active" and u < OFF_ENUM_SUBSCRIPTION_SHARE:
                doc["status"] = OFF_ENUM_SUBSCRIPTION_STATUSES[pick]
                self.counts["subscriptions.status_outside_enum"] += 1
            yield doc

    def _supporttickets(self, rng: np.random.Generator, docs: Iterable[dict]) -> Iterator[dict]:
        for doc in docs:
            u, pick = rng.random(), int(rng.integers(0, len(OFF_ENUM_TICKET_STATUSES)))
            if u < OFF_ENUM_TICKET_SHARE:
                doc["status"] = OFF_ENUM_TICKET_STATUSES[pick]
                self.counts["supporttickets.status_outside_enum"] += 1
            yield doc

    def _feedbacks(self, rng: np.random.Generator, docs: Iterable[dict]) -> Iterator[dict]:
        for doc in docs:
            u, ahead = rng.random(), int(rng.integers(1, 400))
            if u < FUTURE_FEEDBACK_SHARE:
                doc["createdAt"] = doc["updatedAt"] = dt.datetime.fromtimestamp(
                    self._end_seconds + ahead * SECONDS_PER_DAY, dt.UTC
                )
                self.counts["feedbacks.future_dated"] += 1
            yield doc

    def _usagelogs(self, rng: np.random.Generator, docs: Iterable[dict]) -> Iterator[dict]:
        batch = list(docs)
        n = len(batch)
        if n == 0:
            return iter(())
        u = rng.random(n)
        duplicate = u < DUPLICATE_SESSION_SHARE
        back = (u >= 0.5) & (u < 0.5 + BACK_DATED_SHARE)
        future = (u >= 0.6) & (u < 0.6 + FUTURE_DATED_SHARE)
        malformed = (u >= 0.7) & (u < 0.7 + MALFORMED_SESSION_SHARE)
        span = self._end_seconds - int(BACK_DATED_FROM.timestamp())
        back_at = to_datetimes(int(BACK_DATED_FROM.timestamp()) + rng.integers(0, span // 8, n))
        future_at = to_datetimes(self._end_seconds + rng.integers(1, 400 * SECONDS_PER_DAY, n))
        copies = np.flatnonzero(duplicate)
        created = [int(batch[i]["_id"].generation_time.timestamp()) for i in copies]
        copy_ids = object_ids(rng, np.asarray(created, dtype=np.int64))
        out: list[dict] = []
        for i, doc in enumerate(batch):
            if back[i] or future[i]:
                doc["timestamp"] = back_at[i] if back[i] else future_at[i]
                self.counts["usagelogs.back_dated" if back[i] else "usagelogs.future_dated"] += 1
            elif malformed[i]:
                doc["download"] = str(doc["download"])  # a string where bytes belong
                del doc["timestamp"]
                self.counts["usagelogs.malformed"] += 1
            out.append(doc)
        for i, new_id in zip(copies.tolist(), copy_ids, strict=True):
            twin = copy.copy(batch[i])
            twin["_id"] = new_id
            out.append(twin)
        self.counts["usagelogs.duplicated"] += len(copies)
        return iter(out)

    def usage_rollups(
        self,
        daily_gb: np.ndarray,
        served: np.ndarray,
        first_day_seconds: int,
        user_ids: list,
        subscription_ids: list,
    ) -> Iterator[dict]:
        """The app's usageanalytics roll-ups (rolling 30-day dataUsed), one per served
        customer every USAGE_ROLLUP_EVERY_DAYS days; in MB, except in GB for the
        GB_SCRIPT_DAYS days one app script wrote them."""
        rng = self._rng["usageanalytics"]
        days, n = daily_gb.shape
        cumulative = np.vstack([np.zeros((1, n)), np.cumsum(daily_gb, axis=0)])
        gb_start = int(rng.integers(0, max(days - GB_SCRIPT_DAYS, 1)))
        # A day's roll-up is written just after the next midnight: none for the last day.
        for day in range(USAGE_ROLLUP_EVERY_DAYS - 1, days - 1, USAGE_ROLLUP_EVERY_DAYS):
            customers = np.flatnonzero(served[day])
            if len(customers) == 0:
                continue
            rolling_gb = cumulative[day + 1, customers] - cumulative[max(day - 29, 0), customers]
            in_gb = gb_start <= day < gb_start + GB_SCRIPT_DAYS
            value = rolling_gb if in_gb else rolling_gb * MB_PER_GB
            seconds = first_day_seconds + (day + 1) * SECONDS_PER_DAY + 1800
            ids = object_ids(rng, np.full(len(customers), seconds))
            when = dt.datetime.fromtimestamp(seconds, dt.UTC)
            date = dt.datetime.fromtimestamp(first_day_seconds + day * SECONDS_PER_DAY, dt.UTC)
            if in_gb:
                self.counts["usageanalytics.dataUsed_in_GB"] += len(customers)
            for k, c in enumerate(customers.tolist()):
                yield {
                    "_id": ids[k],
                    "user": user_ids[c],
                    "subscription": subscription_ids[c],
                    "date": date,
                    "metrics": {"dataUsed": float(round(value[k], 2))},
                    "anomalies": [],
                    "predictions": {},
                    "createdAt": when,
                    "updatedAt": when,
                }
