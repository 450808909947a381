"""Continue a simulated world in MongoDB by N days, as the live app would see them.

Reads where the world ended (the `sim_state` document `simulate()` writes; inferred
from the data if it is missing), then advances day by day with:

- the app's own background writers (`simulator.app_services`): hourly usage, usage
  analytics every 4 h, the expiry/auto-renewal service at 00:01, churn scans every 6 h;
- ordinary customer activity: sign-ups (user, subscription, payment, invoice), leave
  decisions and the cancellations and non-renewals they lead to, logins, organic usage
  sessions, support tickets (opened, later resolved), feedback, renewal payments.

How customers leave. Each live customer decides to leave at a daily rate taken from
the truth's `monthlyChurnHazard`, times `price_hazard_multiplier` (below); a decided
customer winds down (fewer logins, less usage) for 14-42 days and then cancels, or
(one decision in five) switches auto-renewal off and lapses at the contract's end.
Decisions the initial simulation already made for its hidden future (the truth's
`churnDate`, `nonRenewalDate`, `declineStart`) are played out on their dates, so
`bbx evaluate` stays consistent; inside that known future only the extra rate a price
rise adds is drawn, and a price cut keeps each planned cancellation with probability
equal to the multiplier. Every decision goes into the truth as it is made.

The price hook. Each day the plans' CURRENT `pricing.monthly` is read from the
database. A customer weighs it against the plan's reference (catalogue) price:
hazard multiplier = exp(PRICE_REACTION_WEIGHT * -elasticity * ln(current/reference)),
clipped to PRICE_MULTIPLIER_BOUNDS. For an average customer (elasticity -1.2) a 10%
rise raises the daily leave rate by about 12%. Sign-ups pay the current price, and a
plan's sign-ups scale with (current/reference) ** elasticity.

History is never rewritten: documents are only inserted with dates inside the
continued days, and current-state documents (users, subscriptions) change only
through the app's own updates, with `updatedAt` inside the continued days.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from bson import ObjectId
from pymongo import UpdateOne
from pymongo.database import Database

from simulator import app_services as svc
from simulator.activity import login_document
from simulator.catalog import (
    BASE_TICKET_RATE,
    BILLING_METHODS,
    CANCELLATION_REASONS,
    CITIES,
    FEEDBACK_RATE,
    FEEDBACK_SOURCES,
    FEEDBACK_TYPES,
    FIRST_NAMES,
    GST_RATE,
    HISTORY_METHODS,
    INVOICE_DUE_DAYS,
    LAST_NAMES,
    LEAVER_ACTIVITY_FLOOR,
    LEAVER_DECLINE_DAYS,
    MAX_TENURE_DAYS,
    PAYMENT_ERROR_CODES,
    PAYMENT_METHOD_WEIGHTS,
    PAYMENT_METHODS,
    SEGMENTS,
    STREET_NAMES,
    TICKET_CATEGORIES,
    TICKET_PRIORITIES,
)
from simulator.credentials import CUSTOMER_PASSWORD_HASHES
from simulator.documents import customer_email, feedback_document, order_id
from simulator.encode import SECONDS_PER_DAY, hex_tokens, object_ids
from simulator.truth import HORIZON_DAYS, TRUTH_COLLECTION
from simulator.writer import BatchWriter

STATE_COLLECTION = "sim_state"  # the simulator's own: where the world ended, counters
DAILY_USAGE_COLLECTION = "sim_daily_usage"  # bytes per user and continued day
STATE_ID = "world"
STREAM_CONTINUATION = 101  # rng stream of continued days (far from simulate()'s streams)

PRICE_REACTION_WEIGHT = 1.0
PRICE_MULTIPLIER_BOUNDS = (0.5, 2.0)
NONRENEWAL_PER_CANCELLATION = 0.25  # one leave decision in five is a non-renewal
SIGNUP_RATE = 1.0 / MAX_TENURE_DAYS  # sign-ups per live customer per day (a steady book)
RENEWAL_FAILURE_FLOOR = 0.01
ROLLING_DAYS = 30
ANALYTICS_HOURS = (0, 4, 8, 12, 16, 20)
SCAN_HOURS = (0, 6, 12, 18)
EXPIRY_SECONDS = 60  # 00:01
DEFAULT_ANNUAL_CHURN = 0.25  # for customers the truth does not know (not simulated)
LIVE = ("active",)

# rng parts of one continued day
_PART = {
    "expiry": 1,
    "decide": 2,
    "signup": 3,
    "login": 4,
    "ticket": 5,
    "feedback": 6,
    "organic": 7,
    "hourly": 8,
    "analytics": 9,
    "scan": 10,
    "cancel": 11,
    "factor": 12,
}


class ContinuationError(LookupError):
    """The database holds no world that can be continued."""


@dataclass
class ContinuationReport:
    first_day: dt.date
    last_day: dt.date
    documents: dict[str, int]  # inserted per collection
    updates: dict[str, int]  # documents updated per collection
    events: dict[str, int]  # sign-ups, cancellations, renewals, ...
    seconds: float
    customers: int  # customers (users with a subscription) at the end


@dataclass
class _Book:
    """One row per customer (one subscription each), aligned arrays."""

    sub_id: list[ObjectId]
    user_id: list[ObjectId]
    email: list[str]
    plan: np.ndarray
    status: np.ndarray  # object
    start_seconds: np.ndarray
    end_seconds: np.ndarray
    yearly: np.ndarray
    auto_renew: np.ndarray
    total_amount: np.ndarray
    failures: np.ndarray
    method: np.ndarray  # index into PAYMENT_METHODS
    city: np.ndarray
    last_login: np.ndarray  # seconds, -1 none
    segment: np.ndarray
    elasticity: np.ndarray
    daily_hazard: np.ndarray  # cancellation hazard per day at the reference price
    satisfaction: np.ndarray
    payment_stress: np.ndarray
    monthly_gb: np.ndarray
    churn_seconds: np.ndarray  # planned cancellation request, -1 none
    decline_seconds: np.ndarray  # decision (wind-down start), -1 none
    nonrenewal_seconds: np.ndarray  # planned lapse, -1 none
    world_known: np.ndarray  # the initial simulation decided this customer's future
    has_truth: np.ndarray

    @property
    def size(self) -> int:
        return len(self.sub_id)

    def append(self, row: dict) -> None:
        for name, value in row.items():
            current = getattr(self, name)
            if isinstance(current, list):
                current.append(value)
            else:
                setattr(self, name, np.append(current, np.asarray([value], dtype=current.dtype)))


@dataclass
class _Day:
    """What one day writes."""

    inserts: dict[str, list[dict]] = field(default_factory=dict)
    sub_updates: list[UpdateOne] = field(default_factory=list)
    user_updates: list[UpdateOne] = field(default_factory=list)
    truth_updates: list[UpdateOne] = field(default_factory=list)
    ticket_updates: list[UpdateOne] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)

    def add(self, collection: str, docs: list[dict] | dict) -> None:
        self.inserts.setdefault(collection, []).extend(docs if isinstance(docs, list) else [docs])

    def count(self, event: str, n: int = 1) -> None:
        self.events[event] = self.events.get(event, 0) + n


def _dt(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC)


def _seconds(when: dt.datetime | None) -> int:
    if when is None:
        return -1
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def price_hazard_multiplier(
    elasticity: np.ndarray, current_price: np.ndarray, reference_price: np.ndarray
) -> np.ndarray:
    """How much the plan's current list price moves a customer's daily leave rate:
    exp(PRICE_REACTION_WEIGHT * -elasticity * ln(current / reference)), bounded."""
    ratio = np.asarray(current_price, dtype=float) / np.asarray(reference_price, dtype=float)
    log_multiplier = PRICE_REACTION_WEIGHT * -np.asarray(elasticity) * np.log(ratio)
    return np.clip(np.exp(log_multiplier), *PRICE_MULTIPLIER_BOUNDS)


def signup_acceptance(elasticity: np.ndarray, current: np.ndarray, reference: np.ndarray):
    """Relative sign-up demand at the current price: (current/reference) ** elasticity."""
    return (np.asarray(current) / np.asarray(reference)) ** np.asarray(elasticity)


# --- state ---------------------------------------------------------------------------


def initial_state(
    *,
    seed: int,
    end: dt.date,
    sessions_per_day: float,
    annual_churn: float,
    future_days: int,
    plans: list[dict],
    customers: int,
    invoices: int,
    tickets: int,
) -> dict:
    """The state document `simulate()` leaves for a later continuation."""
    observed = _midnight(end + dt.timedelta(days=1))
    return {
        "_id": STATE_ID,
        "seed": int(seed),
        "sessionsPerDay": float(sessions_per_day),
        "annualChurn": float(annual_churn),
        "observedThrough": observed,
        "worldSimulatedThrough": observed + dt.timedelta(days=future_days),
        "referencePrices": {str(p["_id"]): float(p["pricing"]["monthly"]) for p in plans},
        "nextCustomerNumber": int(customers),
        "nextInvoiceNumber": int(invoices) + 1,
        "nextTicketNumber": int(tickets) + 1,
        "openTickets": [],
        "continuedDays": 0,
    }


def _infer_state(db: Database, seed: int) -> dict:
    """For a world without a state document: its end is the latest login or session."""
    latest = [
        doc[key]
        for name, key in (("auditlogs", "timestamp"), ("usagelogs", "timestamp"))
        for doc in db[name].find({key: {"$type": "date"}}, {key: 1}).sort(key, -1).limit(1)
    ]
    if not latest or db.subscriptions.count_documents({}) == 0:
        raise ContinuationError(
            f"database {db.name!r} holds no simulated world to continue: run `bbx simulate` first"
        )
    end = max(_seconds(t) for t in latest)
    observed = _midnight(_dt(end).date() + dt.timedelta(days=1))
    plans = list(db.plans.find({}, {"pricing.monthly": 1}))
    return {
        "_id": STATE_ID,
        "seed": int(seed),
        "sessionsPerDay": 1.5,
        "annualChurn": DEFAULT_ANNUAL_CHURN,
        "observedThrough": observed,
        "worldSimulatedThrough": observed,
        "referencePrices": {str(p["_id"]): float(p["pricing"]["monthly"]) for p in plans},
        "nextCustomerNumber": db.users.count_documents({"role": "customer"}),
        "nextInvoiceNumber": db.billings.count_documents({}) + 1,
        "nextTicketNumber": db.supporttickets.count_documents({}) + 1,
        "openTickets": [],
        "continuedDays": 0,
        "inferred": True,
    }


# --- loading the book -----------------------------------------------------------------


def _load_book(
    db: Database, plan_pos: dict[ObjectId, int], state: dict
) -> tuple[dict[ObjectId, float], _Book]:
    """The customers and, per user, the truth's simulated monthly GB of the history."""
    subs = list(
        db.subscriptions.find(
            {},
            {
                "user": 1,
                "plan": 1,
                "status": 1,
                "startDate": 1,
                "endDate": 1,
                "billingCycle": 1,
                "autoRenewal.enabled": 1,
                "pricing.totalAmount": 1,
                "paymentFailures": 1,
                "paymentHistory": {"$slice": -1},
            },
        ).sort("_id", 1)
    )
    users = {
        u["_id"]: u
        for u in db.users.find(
            {"role": "customer"}, {"email": 1, "address.city": 1, "lastLogin": 1}
        )
    }
    truth = {
        t["_id"]: t
        for t in db[TRUTH_COLLECTION].find(
            {},
            {
                "segmentIndex": 1,
                "elasticity": 1,
                "monthlyChurnHazard": 1,
                "satisfaction": 1,
                "paymentStress": 1,
                "typicalMonthlyGB": 1,
                "simulatedMonthlyGB": 1,
                "churnDate": 1,
                "nonRenewalDate": 1,
                "declineStart": 1,
                "continued": 1,
            },
        )
    }
    city_pos = {c.city: i for i, c in enumerate(CITIES)}
    method_pos = {word: i for i, word in enumerate(HISTORY_METHODS)}
    default_hazard = -np.log(1 - state.get("annualChurn", DEFAULT_ANNUAL_CHURN)) / 365.0
    rows: dict[str, list] = {name: [] for name in _Book.__dataclass_fields__}
    for sub in subs:
        user = users.get(sub.get("user"))
        if user is None or sub.get("plan") not in plan_pos:
            continue  # not a simulated customer's contract: leave it alone
        t = truth.get(sub["user"], {})
        history = sub.get("paymentHistory") or [{}]
        monthly_hazard = float(t.get("monthlyChurnHazard", 1 - np.exp(-30 * default_hazard)))
        churn = _seconds(t.get("churnDate"))
        lapse = _seconds(t.get("nonRenewalDate"))
        decline = _seconds(t.get("declineStart"))
        for name, value in (
            ("sub_id", sub["_id"]),
            ("user_id", sub["user"]),
            ("email", user.get("email", "")),
            ("plan", plan_pos[sub["plan"]]),
            ("status", str(sub.get("status", "active"))),
            ("start_seconds", _seconds(sub.get("startDate"))),
            ("end_seconds", _seconds(sub.get("endDate"))),
            ("yearly", sub.get("billingCycle") == "yearly"),
            ("auto_renew", bool((sub.get("autoRenewal") or {}).get("enabled", False))),
            ("total_amount", float((sub.get("pricing") or {}).get("totalAmount") or 0.0)),
            ("failures", int(sub.get("paymentFailures") or 0)),
            ("method", method_pos.get(history[-1].get("paymentMethod"), 0)),
            ("city", city_pos.get((user.get("address") or {}).get("city"), 0)),
            ("last_login", _seconds(user.get("lastLogin"))),
            ("segment", int(t.get("segmentIndex", 2))),
            ("elasticity", float(t.get("elasticity", -1.2))),
            ("daily_hazard", -np.log(1 - min(monthly_hazard, 0.99)) / 30.0),
            ("satisfaction", float(t.get("satisfaction", 0.0))),
            ("payment_stress", float(t.get("paymentStress", 0.05))),
            ("monthly_gb", float(t.get("typicalMonthlyGB", 60.0))),
            ("churn_seconds", churn),
            ("decline_seconds", decline if (churn >= 0 or lapse >= 0) else -1),
            ("nonrenewal_seconds", lapse),
            ("world_known", bool(t) and not t.get("continued", False)),
            ("has_truth", bool(t)),
        ):
            rows[name].append(value)
    dtypes = {
        "plan": np.int64,
        "status": object,
        "start_seconds": np.int64,
        "end_seconds": np.int64,
        "yearly": bool,
        "auto_renew": bool,
        "total_amount": float,
        "failures": np.int64,
        "method": np.int64,
        "city": np.int64,
        "last_login": np.int64,
        "segment": np.int64,
        "elasticity": float,
        "daily_hazard": float,
        "satisfaction": float,
        "payment_stress": float,
        "monthly_gb": float,
        "churn_seconds": np.int64,
        "decline_seconds": np.int64,
        "nonrenewal_seconds": np.int64,
        "world_known": bool,
        "has_truth": bool,
    }
    history_gb = {
        uid: float(t["simulatedMonthlyGB"])
        for uid, t in truth.items()
        if isinstance(t.get("simulatedMonthlyGB"), int | float)
    }
    return history_gb, _Book(
        **{
            name: (np.asarray(values, dtype=dtypes[name]) if name in dtypes else values)
            for name, values in rows.items()
        }
    )


def _recent_daily_bytes(
    db: Database, first_day_seconds: int, history_monthly_gb: dict[ObjectId, float]
) -> dict[ObjectId, np.ndarray]:
    """Per user, bytes on each of the ROLLING_DAYS days before the first continued day:
    from the simulator's own daily ledger of continued days; days before any
    continuation are estimated from the truth's simulated monthly volume (down and up),
    or, for users the truth does not know, from one pass over those days' usage logs."""
    window_start = first_day_seconds - ROLLING_DAYS * SECONDS_PER_DAY
    ledger: dict[ObjectId, np.ndarray] = {}
    covered: set[int] = set()
    for doc in db[DAILY_USAGE_COLLECTION].find({"day": {"$gte": _dt(window_start)}}):
        k = (_seconds(doc["day"]) - window_start) // SECONDS_PER_DAY
        if not 0 <= k < ROLLING_DAYS:
            continue
        covered.add(int(k))
        for uid, used in zip(doc["users"], doc["bytes"], strict=True):
            ledger.setdefault(uid, np.zeros(ROLLING_DAYS))[k] += used
    missing = np.array([k for k in range(ROLLING_DAYS) if k not in covered], dtype=np.int64)
    if len(missing) == 0:
        return ledger
    for uid, monthly_gb in history_monthly_gb.items():
        per_day = monthly_gb * svc.BYTES_PER_GB * 1.1 / 30.0  # upload adds about a tenth
        ledger.setdefault(uid, np.zeros(ROLLING_DAYS))[missing] += per_day
    if history_monthly_gb:
        return ledger
    lo = window_start + int(missing.min()) * SECONDS_PER_DAY
    hi = window_start + (int(missing.max()) + 1) * SECONDS_PER_DAY
    pipeline = [
        {"$match": {"timestamp": {"$gte": _dt(lo), "$lt": _dt(hi)}}},
        {"$group": {"_id": "$userId", "total": {"$sum": {"$add": ["$download", "$upload"]}}}},
    ]
    for row in db.usagelogs.aggregate(pipeline):
        if isinstance(row.get("total"), int | float):
            ledger.setdefault(row["_id"], np.zeros(ROLLING_DAYS))[missing] += row["total"] / len(
                missing
            )
    return ledger


# --- one day ------------------------------------------------------------------------


class _World:
    def __init__(self, db: Database, state: dict) -> None:
        self.db = db
        self.state = state
        self.seed = int(state["seed"])
        plans = list(db.plans.find().sort("_id", 1))
        if not plans:
            raise ContinuationError(f"database {db.name!r} has no plans: nothing to continue")
        self.plan_ids = [p["_id"] for p in plans]
        self.plan_pos = {pid: i for i, pid in enumerate(self.plan_ids)}
        refs = state.get("referencePrices", {})
        self.reference_price = np.array(
            [float(refs.get(str(p["_id"]), p["pricing"]["monthly"])) for p in plans]
        )
        self.plans = svc.PlanTable.from_documents(plans)
        self.history_gb, self.book = _load_book(db, self.plan_pos, state)
        self.devices = svc.devices_for(self.book.user_id)
        self.world_through = _seconds(state.get("worldSimulatedThrough"))
        self.sessions_per_day = float(state.get("sessionsPerDay", 1.5))
        weights = np.array([s.session_weight for s in SEGMENTS])
        self.session_weight = weights / float(weights @ np.array([s.share for s in SEGMENTS]))
        self.open_tickets: list[dict] = list(state.get("openTickets", []))

    def rng(self, day_seconds: int, part: str) -> np.random.Generator:
        day_number = day_seconds // SECONDS_PER_DAY
        return np.random.default_rng([self.seed, STREAM_CONTINUATION, day_number, _PART[part]])

    def refresh_prices(self) -> None:
        """The plans' current prices, as an admin may have applied new ones."""
        current = {p["_id"]: p for p in self.db.plans.find({}, {"pricing": 1})}
        self.plans = svc.PlanTable(
            ids=self.plans.ids,
            names=self.plans.names,
            monthly=np.array([float(current[pid]["pricing"]["monthly"]) for pid in self.plan_ids]),
            yearly=np.array(
                [float(current[pid]["pricing"].get("yearly") or 0.0) for pid in self.plan_ids]
            ),
            cap_gb=self.plans.cap_gb,
            download_mbps=self.plans.download_mbps,
            upload_mbps=self.plans.upload_mbps,
        )

    # -- activity shared by several writers

    def activity(self, at_seconds: int) -> np.ndarray:
        """1 normally, falling towards LEAVER_ACTIVITY_FLOOR while a leaver winds down."""
        b = self.book
        decided = b.decline_seconds >= 0
        leave = np.where(b.churn_seconds >= 0, b.churn_seconds, b.nonrenewal_seconds)
        span = np.maximum(leave - b.decline_seconds, SECONDS_PER_DAY)
        progress = np.clip((at_seconds - b.decline_seconds) / span, 0, 1)
        fade = 1.0 - (1.0 - LEAVER_ACTIVITY_FLOOR) * np.sqrt(progress)
        return np.where(decided & (leave >= 0), fade, 1.0)

    # -- the day's steps

    def expiry_service(self, day: _Day, s: int) -> np.ndarray:
        """00:01: renew, move to grace, suspend. Returns customers whose renewal failed."""
        b = self.book
        now = s + EXPIRY_SECONDS
        rng = self.rng(s, "expiry")
        decisions = svc.expiry_decisions(now, b.status, b.end_seconds, b.auto_renew)
        failed_today = []
        renew = decisions.renew
        fail = rng.random(len(renew)) < np.maximum(b.payment_stress[renew], RENEWAL_FAILURE_FLOOR)
        paid_at = now + rng.integers(30, 900, len(renew))
        tx = hex_tokens(rng, len(renew), 14)
        pay_ids = object_ids(rng, paid_at)
        bill_ids = object_ids(rng, np.full(len(renew), now))
        errors = rng.integers(0, len(PAYMENT_ERROR_CODES), len(renew))
        for k, i in enumerate(renew.tolist()):
            old_end = _dt(b.end_seconds[i])
            new_end = svc.add_months(old_end, 12 if b.yearly[i] else 1)
            # A renewal long overdue (a world whose end passed unseen) is caught up at once.
            while _seconds(new_end) < now:
                new_end = svc.add_months(new_end, 12 if b.yearly[i] else 1)
            failed = bool(fail[k])
            amount = float(b.total_amount[i])
            b.failures[i] = b.failures[i] + 1 if failed else 0
            b.end_seconds[i] = _seconds(new_end)
            when = _dt(paid_at[k])
            day.sub_updates.append(
                UpdateOne(
                    {"_id": b.sub_id[i]},
                    {
                        "$set": {
                            "endDate": new_end,
                            "autoRenewal.nextRenewalDate": new_end,
                            "paymentFailures": int(b.failures[i]),
                            "updatedAt": when,
                        },
                        "$push": {
                            "paymentHistory": {
                                "date": when,
                                "amount": amount,
                                "paymentMethod": HISTORY_METHODS[b.method[i]],
                                "transactionId": tx[k],
                                "status": "failed" if failed else "completed",
                            }
                        },
                    },
                )
            )
            payment = {
                "_id": pay_ids[k],
                "user": b.user_id[i],
                "subscription": b.sub_id[i],
                "razorpayOrderId": order_id(pay_ids[k]),
                "razorpayPaymentId": f"pay_{tx[k]}",
                "amount": amount,
                "currency": "INR",
                "status": "failed" if failed else "captured",
                "method": PAYMENT_METHODS[b.method[i]],
                "attemptCount": 1,
                "createdAt": when,
                "updatedAt": when,
            }
            if failed:
                payment |= {
                    "failedAt": when,
                    "errorCode": PAYMENT_ERROR_CODES[errors[k]],
                    "errorDescription": "Payment could not be completed",
                }
                failed_today.append(i)
            else:
                payment["capturedAt"] = when
            day.add("payments", payment)
            day.add("billings", self._invoice(bill_ids[k], i, now, old_end, new_end, when, failed))
        day.count("renewals", len(renew))
        day.count("renewal_payments_failed", len(failed_today))
        for i in decisions.to_grace.tolist():
            b.status[i] = "grace_period"
            day.sub_updates.append(
                UpdateOne(
                    {"_id": b.sub_id[i]},
                    {"$set": {"status": "grace_period", "updatedAt": _dt(now)}},
                )
            )
        day.count("to_grace_period", len(decisions.to_grace))
        for i in decisions.to_suspended.tolist():
            b.status[i] = "suspended"
            day.sub_updates.append(
                UpdateOne(
                    {"_id": b.sub_id[i]},
                    {
                        "$set": {"status": "suspended", "updatedAt": _dt(now)},
                        "$push": {
                            "serviceHistory": {
                                "date": _dt(now),
                                "type": "suspended",
                                "description": "Not renewed: grace period over",
                            }
                        },
                    },
                )
            )
        day.count("suspended", len(decisions.to_suspended))
        return np.asarray(failed_today, dtype=np.int64)

    def _invoice(
        self,
        invoice_id: ObjectId,
        i: int,
        issued: int,
        start: dt.datetime,
        end: dt.datetime,
        paid_at: dt.datetime,
        failed: bool,
    ) -> dict:
        b = self.book
        number = int(self.state["nextInvoiceNumber"])
        self.state["nextInvoiceNumber"] = number + 1
        total = float(b.total_amount[i])
        final = round(total / (1 + GST_RATE), 2)
        doc = {
            "_id": invoice_id,
            "user": b.user_id[i],
            "subscription": b.sub_id[i],
            "invoiceNumber": f"INV-{_dt(issued):%Y%m}-{number:07d}",
            "amount": final,
            "subtotal": final,
            "tax": round(total - final, 2),
            "discount": 0.0,
            "total": total,
            "currency": "INR",
            "status": "pending" if failed else "paid",
            "dueDate": _dt(issued + INVOICE_DUE_DAYS * SECONDS_PER_DAY),
            "billingPeriod": {"start": start, "end": end},
            "paymentMethod": {"type": BILLING_METHODS[b.method[i]]},
            "createdAt": _dt(issued),
            "updatedAt": paid_at if not failed else _dt(issued),
        }
        if not failed:
            doc["paymentDate"] = paid_at
        return doc

    def decide(self, day: _Day, s: int, multiplier: np.ndarray) -> None:
        """Leave decisions of the day, and the price hook's thinning of planned ones."""
        b = self.book
        rng = self.rng(s, "decide")
        n = b.size
        u, thin_u = rng.random(n), rng.random(n)
        wind_down = rng.integers(LEAVER_DECLINE_DAYS[0], LEAVER_DECLINE_DAYS[1] + 1, n)
        at = s + rng.integers(6 * 3600, 22 * 3600, n)
        cancel_at = at + wind_down * SECONDS_PER_DAY
        live = b.status == "active"
        undecided = live & (b.decline_seconds < 0) & (b.churn_seconds < 0)
        undecided &= b.nonrenewal_seconds < 0
        inside_world = b.world_known & (cancel_at < self.world_through)
        factor = np.where(inside_world, np.maximum(multiplier - 1.0, 0.0), multiplier)
        rate = b.daily_hazard * (1 + NONRENEWAL_PER_CANCELLATION) * factor
        decides = undecided & (u < 1 - np.exp(-rate))
        lapse = decides & (thin_u < NONRENEWAL_PER_CANCELLATION / (1 + NONRENEWAL_PER_CANCELLATION))
        cancel = decides & ~lapse
        for i in np.flatnonzero(cancel).tolist():
            b.churn_seconds[i], b.decline_seconds[i] = cancel_at[i], at[i]
            day.truth_updates.append(
                UpdateOne(
                    {"_id": b.user_id[i]},
                    {"$set": {"churnDate": _dt(cancel_at[i]), "declineStart": _dt(at[i])}},
                )
            )
        for i in np.flatnonzero(lapse).tolist():
            b.nonrenewal_seconds[i], b.decline_seconds[i] = b.end_seconds[i], at[i]
            day.truth_updates.append(
                UpdateOne(
                    {"_id": b.user_id[i]},
                    {
                        "$set": {
                            "nonRenewalDate": _dt(b.end_seconds[i]),
                            "declineStart": _dt(at[i]),
                        }
                    },
                )
            )
        day.count("decisions_to_cancel", int(cancel.sum()))
        day.count("decisions_not_to_renew", int(lapse.sum()))
        # A price cut saves planned cancellations whose wind-down starts today.
        planned_today = (
            live
            & b.world_known
            & (b.churn_seconds >= 0)
            & (b.decline_seconds >= s)
            & (b.decline_seconds < s + SECONDS_PER_DAY)
        )
        saved = planned_today & (multiplier < 1.0) & (thin_u >= multiplier)
        for i in np.flatnonzero(saved).tolist():
            b.churn_seconds[i] = b.decline_seconds[i] = -1
            day.truth_updates.append(
                UpdateOne(
                    {"_id": b.user_id[i]}, {"$set": {"churnDate": None, "declineStart": None}}
                )
            )
        day.count("cancellations_averted_by_price", int(saved.sum()))
        # Decided non-renewers switch auto-renewal off during their contract's last period.
        switch = (
            live
            & b.auto_renew
            & (b.nonrenewal_seconds >= 0)
            & (b.nonrenewal_seconds <= b.end_seconds)
            & (b.decline_seconds < s + SECONDS_PER_DAY)
        )
        for i in np.flatnonzero(switch).tolist():
            b.auto_renew[i] = False
            when = _dt(max(int(b.decline_seconds[i]), s + 3600))
            day.sub_updates.append(
                UpdateOne(
                    {"_id": b.sub_id[i]},
                    {
                        "$set": {"autoRenewal.enabled": False, "updatedAt": when},
                        "$unset": {"autoRenewal.nextRenewalDate": ""},
                    },
                )
            )
        day.count("auto_renewal_switched_off", int(switch.sum()))

    def cancel(self, day: _Day, s: int) -> np.ndarray:
        """Planned cancellations of the day. Returns who cancelled and when (seconds)."""
        b = self.book
        rng = self.rng(s, "cancel")
        due = (b.churn_seconds >= s) & (b.churn_seconds < s + SECONDS_PER_DAY)
        due &= np.isin(b.status, ("active", "grace_period"))
        reasons = rng.integers(0, len(CANCELLATION_REASONS), b.size)
        before = rng.integers(60, 1800, b.size)
        login_ids = object_ids(rng, np.maximum(b.churn_seconds - before, s))
        cancelled_at = np.full(b.size, -1, dtype=np.int64)
        for i in np.flatnonzero(due).tolist():
            request = int(b.churn_seconds[i])
            reason, feedback = CANCELLATION_REASONS[reasons[i]]
            b.status[i] = "cancelled"
            b.auto_renew[i] = False
            b.end_seconds[i] = request
            cancelled_at[i] = request
            when = _dt(request)
            day.sub_updates.append(
                UpdateOne(
                    {"_id": b.sub_id[i]},
                    {
                        "$set": {
                            "status": "cancelled",
                            "endDate": when,
                            "autoRenewal.enabled": False,
                            "cancellation": {
                                "requestDate": when,
                                "effectiveDate": when,
                                "reason": reason,
                                "requestedBy": b.user_id[i],
                                "feedback": feedback,
                                "refundEligible": False,
                            },
                            "updatedAt": when,
                        },
                        "$unset": {"autoRenewal.nextRenewalDate": ""},
                        "$push": {
                            "serviceHistory": {
                                "date": when,
                                "type": "cancelled",
                                "description": reason,
                            }
                        },
                    },
                )
            )
            login_at = max(request - int(before[i]), s)
            self._login(day, i, login_ids[i], login_at)
        day.count("cancellations", int(due.sum()))
        return cancelled_at

    def _login(self, day: _Day, i: int, login_id: ObjectId, at: int) -> None:
        b = self.book
        when = _dt(at)
        day.add(
            "auditlogs",
            login_document(login_id, b.user_id[i], b.email[i], self.devices.ip_addresses[i], when),
        )
        if at > b.last_login[i]:
            b.last_login[i] = at
            day.user_updates.append(
                UpdateOne(
                    {"_id": b.user_id[i]},
                    {"$max": {"lastLogin": when, "updatedAt": when}},
                )
            )

    def sign_up(self, day: _Day, s: int, rate: float) -> np.ndarray:
        """New customers of the day (look-alikes of live ones). Returns their indices."""
        b = self.book
        rng = self.rng(s, "signup")
        live = np.flatnonzero(b.status == "active")
        if len(live) == 0:
            return np.zeros(0, dtype=np.int64)
        candidates = rng.poisson(2.0 * rate * len(live))
        template = live[rng.integers(0, len(live), candidates)]
        plan = b.plan[template]
        demand = signup_acceptance(
            b.elasticity[template], self.plans.monthly[plan], self.reference_price[plan]
        )
        accepted = template[rng.random(candidates) < np.minimum(demand / 2.0, 1.0)]
        joined = np.sort(s + rng.integers(8 * 3600, 22 * 3600, len(accepted)))
        names = rng.integers(0, [len(FIRST_NAMES), len(LAST_NAMES)], (len(accepted), 2))
        phones = rng.integers(6_000_000_000, 9_999_999_999, len(accepted))
        house = rng.integers(1, 400, len(accepted))
        street = rng.integers(0, len(STREET_NAMES), len(accepted))
        pin = rng.integers(1, 99, len(accepted))
        hashes = rng.integers(0, len(CUSTOMER_PASSWORD_HASHES), len(accepted))
        age_days = rng.integers(19 * 365, 70 * 365, len(accepted))
        methods = rng.choice(
            len(PAYMENT_METHODS),
            len(accepted),
            p=np.array(PAYMENT_METHOD_WEIGHTS) / sum(PAYMENT_METHOD_WEIGHTS),
        )
        user_ids = object_ids(rng, joined - 600)
        sub_ids = object_ids(rng, joined)
        pay_ids = object_ids(rng, joined + 120)
        bill_ids = object_ids(rng, joined)
        audit_ids = object_ids(rng, joined)
        login_ids = object_ids(rng, joined - 300)
        tx = hex_tokens(rng, len(accepted), 14)
        added = []
        for k, t in enumerate(accepted.tolist()):
            number = int(self.state["nextCustomerNumber"])
            self.state["nextCustomerNumber"] = number + 1
            first, last = FIRST_NAMES[names[k, 0]], LAST_NAMES[names[k, 1]]
            email = customer_email(first, last, number)
            p = int(b.plan[t])
            yearly = bool(b.yearly[t])
            base = float(
                self.plans.yearly[p]
                if yearly and self.plans.yearly[p] > 0
                else self.plans.monthly[p]
            )
            yearly = yearly and self.plans.yearly[p] > 0
            tax = round(base * GST_RATE, 2)
            total = round(base + tax, 2)
            start = _dt(joined[k])
            end = svc.add_months(start, 12 if yearly else 1)
            created = _dt(joined[k] - 600)
            city = CITIES[int(b.city[t])]
            paid = _dt(joined[k] + 120)
            day.add(
                "users",
                {
                    "_id": user_ids[k],
                    "firstName": first,
                    "lastName": last,
                    "email": email,
                    "password": CUSTOMER_PASSWORD_HASHES[hashes[k]],
                    "phone": f"+91{phones[k]}",
                    "role": "customer",
                    "status": "active",
                    "address": {
                        "street": f"{house[k]} {STREET_NAMES[street[k]]}",
                        "city": city.city,
                        "state": city.state,
                        "zipCode": f"{city.pin_prefix}{pin[k]:03d}",
                        "country": "USA",
                    },
                    "dateOfBirth": _dt(joined[k] - age_days[k] * SECONDS_PER_DAY - 43_200),
                    "customerSince": created,
                    "lastLogin": _dt(joined[k] - 300),
                    "npsScore": 7,
                    "emailVerified": True,
                    "createdAt": created,
                    "updatedAt": _dt(joined[k] - 300),
                },
            )
            day.add(
                "subscriptions",
                {
                    "_id": sub_ids[k],
                    "user": user_ids[k],
                    "plan": self.plan_ids[p],
                    "status": "active",
                    "startDate": start,
                    "endDate": end,
                    "billingCycle": "yearly" if yearly else "monthly",
                    "pricing": {
                        "basePrice": round(base, 2),
                        "discountApplied": 0.0,
                        "finalPrice": round(base, 2),
                        "currency": "INR",
                        "taxAmount": tax,
                        "totalAmount": total,
                    },
                    "paymentFailures": 0,
                    "paymentHistory": [
                        {
                            "date": paid,
                            "amount": total,
                            "paymentMethod": HISTORY_METHODS[methods[k]],
                            "transactionId": tx[k],
                            "status": "completed",
                        }
                    ],
                    "serviceHistory": [
                        {"date": start, "type": "created", "description": "Subscription created"},
                        {"date": start, "type": "activated", "description": "Service activated"},
                    ],
                    "autoRenewal": {"enabled": True, "nextRenewalDate": end},
                    "cancellation": {"refundEligible": False},
                    "createdAt": start,
                    "updatedAt": paid,
                },
            )
            day.add(
                "payments",
                {
                    "_id": pay_ids[k],
                    "user": user_ids[k],
                    "subscription": sub_ids[k],
                    "razorpayOrderId": order_id(pay_ids[k]),
                    "razorpayPaymentId": f"pay_{tx[k]}",
                    "amount": total,
                    "currency": "INR",
                    "status": "captured",
                    "method": PAYMENT_METHODS[methods[k]],
                    "attemptCount": 1,
                    "capturedAt": paid,
                    "createdAt": paid,
                    "updatedAt": paid,
                },
            )
            ip = svc.devices_for([user_ids[k]]).ip_addresses[0]
            day.add(
                "auditlogs",
                [
                    login_document(login_ids[k], user_ids[k], email, ip, _dt(joined[k] - 300)),
                    {
                        "_id": audit_ids[k],
                        "userId": user_ids[k],
                        "user": user_ids[k],
                        "userEmail": email,
                        "userRole": "customer",
                        "action": "create",
                        "entity": "Subscription",
                        "entityId": sub_ids[k],
                        "details": {"plan": self.plans.names[p]},
                        "ipAddress": ip,
                        "userAgent": "Mozilla/5.0 (BroadbandX web)",
                        "timestamp": start,
                    },
                ],
            )
            row = {
                "sub_id": sub_ids[k],
                "user_id": user_ids[k],
                "email": email,
                "plan": p,
                "status": "active",
                "start_seconds": int(joined[k]),
                "end_seconds": _seconds(end),
                "yearly": yearly,
                "auto_renew": True,
                "total_amount": total,
                "failures": 0,
                "method": int(methods[k]),
                "city": int(b.city[t]),
                "last_login": int(joined[k] - 300),
                "segment": int(b.segment[t]),
                "elasticity": float(b.elasticity[t]),
                "daily_hazard": float(b.daily_hazard[t]),
                "satisfaction": float(b.satisfaction[t]),
                "payment_stress": float(b.payment_stress[t]),
                "monthly_gb": float(b.monthly_gb[t]),
                "churn_seconds": -1,
                "decline_seconds": -1,
                "nonrenewal_seconds": -1,
                "world_known": False,
                "has_truth": True,
            }
            b.append(row)
            new_devices = svc.devices_for([user_ids[k]])
            self.devices.ids.append(new_devices.ids[0])
            self.devices.types.append(new_devices.types[0])
            self.devices.ip_addresses.append(new_devices.ip_addresses[0])
            i = b.size - 1
            day.add(
                "billings", self._invoice(bill_ids[k], i, int(joined[k]), start, end, paid, False)
            )
            day.add(TRUTH_COLLECTION, self._truth_document(i, t))
            added.append(i)
        day.count("sign_ups", len(added))
        return np.asarray(added, dtype=np.int64)

    def _truth_document(self, i: int, template: int) -> dict:
        b = self.book
        monthly = 1 - np.exp(-30 * b.daily_hazard[i])
        return {
            "_id": b.user_id[i],
            "userId": b.user_id[i],
            "subscriptionId": b.sub_id[i],
            "segment": SEGMENTS[int(b.segment[i])].name,
            "segmentIndex": int(b.segment[i]),
            "elasticity": float(round(b.elasticity[i], 4)),
            "churnDate": None,
            "nonRenewalDate": None,
            "declineStart": None,
            "monthlyChurnHazard": float(round(monthly, 6)),
            "satisfaction": float(round(b.satisfaction[i], 4)),
            "paymentStress": float(round(b.payment_stress[i], 4)),
            "typicalMonthlyGB": float(round(b.monthly_gb[i], 2)),
            "simulatedMonthlyGB": float(round(b.monthly_gb[i], 2)),
            "observedThrough": self.state["observedThrough"],
            "simulatedThrough": self.state["observedThrough"],
            "churnProbability30d": [],
            "continued": True,  # joined in a continuation (the initial world never knew them)
            "lookAlikeOf": b.user_id[template],
        }

    def served(self, joined_at: np.ndarray) -> np.ndarray:
        """Customers with service today who did not just sign up (they did their part)."""
        return np.isin(self.book.status, ("active", "grace_period")) & (joined_at < 0)

    def logins(self, day: _Day, s: int, act: np.ndarray, joined_at: np.ndarray) -> None:
        b = self.book
        rng = self.rng(s, "login")
        rate = np.array([SEGMENTS[k].login_rate for k in range(len(SEGMENTS))])[b.segment]
        served = self.served(joined_at)
        logged = served & (rng.random(b.size) < np.minimum(rate * act, 0.9))
        at = s + rng.integers(1800, SECONDS_PER_DAY - 1800, b.size)
        ids = object_ids(rng, at)
        for i in np.flatnonzero(logged).tolist():
            self._login(day, i, ids[i], int(at[i]))
        day.count("logins", int(logged.sum()))

    def tickets(
        self, day: _Day, s: int, act: np.ndarray, joined_at: np.ndarray, failed: np.ndarray
    ) -> None:
        b = self.book
        rng = self.rng(s, "ticket")
        failed_renewals = failed
        served = self.served(joined_at)
        winding = act < 1.0
        billing = np.zeros(b.size, dtype=bool)
        billing[failed_renewals] = rng.random(len(failed_renewals)) < 0.25
        general = rng.random(b.size) < BASE_TICKET_RATE * np.where(winding, 3.0, 1.0)
        opened = served & (billing | general)
        at = s + rng.integers(2 * 3600, 20 * 3600, b.size)
        ids = object_ids(rng, at)
        category = rng.choice(TICKET_CATEGORIES, b.size, p=[0.35, 0.1, 0.2, 0.1, 0.1, 0.15])
        priority = rng.choice(TICKET_PRIORITIES, b.size, p=[0.35, 0.45, 0.15, 0.05])
        resolve_hours = rng.lognormal(3.0, 0.9, b.size)
        for i in np.flatnonzero(opened).tolist():
            number = int(self.state["nextTicketNumber"])
            self.state["nextTicketNumber"] = number + 1
            cat = "billing" if billing[i] else str(category[i])
            when = _dt(at[i])
            day.add(
                "supporttickets",
                {
                    "_id": ids[i],
                    "ticketNumber": f"TKT-{number:06d}",
                    "customer": b.user_id[i],
                    "subject": f"{cat.capitalize()} issue",
                    "description": "Customer reported an issue through the app.",
                    "category": cat,
                    "priority": str(priority[i]),
                    "status": "open",
                    "sla": {"responseTime": None, "resolutionTime": None, "breached": False},
                    "createdAt": when,
                    "updatedAt": when,
                },
            )
            self.open_tickets.append(
                {
                    "_id": ids[i],
                    "openedAt": when,
                    "resolveAt": _dt(at[i] + int(resolve_hours[i] * 3600)),
                }
            )
        day.count("tickets", int(opened.sum()))
        # Tickets whose resolution time came today are resolved by the support team.
        still_open = []
        for ticket in self.open_tickets:
            resolve = _seconds(ticket["resolveAt"])
            if resolve < s + SECONDS_PER_DAY:
                hours = round((resolve - _seconds(ticket["openedAt"])) / 3600, 2)
                day.ticket_updates.append(
                    UpdateOne(
                        {"_id": ticket["_id"], "status": "open"},
                        {
                            "$set": {
                                "status": "resolved",
                                "sla.responseTime": min(hours, 2.0),
                                "sla.resolutionTime": hours,
                                "sla.breached": hours > 48,
                                "updatedAt": _dt(resolve),
                            }
                        },
                    )
                )
                day.count("tickets_resolved")
            else:
                still_open.append(ticket)
        self.open_tickets = still_open

    def feedback(self, day: _Day, s: int, act: np.ndarray, joined_at: np.ndarray) -> None:
        b = self.book
        rng = self.rng(s, "feedback")
        served = self.served(joined_at)
        sent = served & (rng.random(b.size) < FEEDBACK_RATE)
        raw = (
            3.6 + 0.9 * b.satisfaction - np.where(act < 1.0, 1.0, 0.0) + rng.normal(0, 0.8, b.size)
        )
        overall = np.clip(np.round(raw), 1, 5).astype(int)
        at = s + rng.integers(3600, SECONDS_PER_DAY - 3600, b.size)
        ids = object_ids(rng, at)
        kinds = rng.integers(0, len(FEEDBACK_TYPES), b.size)
        sources = rng.integers(0, len(FEEDBACK_SOURCES), b.size)
        for i in np.flatnonzero(sent).tolist():
            day.add(
                "feedbacks",
                feedback_document(
                    ids[i],
                    b.user_id[i],
                    int(overall[i]),
                    int(kinds[i]),
                    int(sources[i]),
                    int(at[i]),
                ),
            )
        day.count("feedbacks", int(sent.sum()))

    def organic_usage(
        self, day: _Day, s: int, act: np.ndarray, until: np.ndarray, joined_at: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The customers' own sessions, as in the simulated history (fading for leavers)."""
        b = self.book
        rng = self.rng(s, "organic")
        served = np.isin(b.status, ("active", "grace_period")) | (until >= 0)
        per_day = self.sessions_per_day * self.session_weight[b.segment]
        counts = rng.poisson(per_day * act * served)
        owner = np.repeat(np.arange(b.size), counts)
        m = len(owner)
        peak = np.array([SEGMENTS[k].peak_share for k in range(len(SEGMENTS))])[b.segment[owner]]
        in_peak = rng.random(m) < peak
        seconds_of_day = np.where(
            in_peak,
            13 * 3600 + 1800 + rng.integers(0, 4 * 3600, m),
            rng.integers(0, SECONDS_PER_DAY, m),
        )
        at = s + seconds_of_day
        # Nothing before a sign-up or after a cancellation.
        keep = ((until[owner] < 0) | (at <= until[owner])) & (at >= joined_at[owner])
        owner, at, in_peak = owner[keep], at[keep], in_peak[keep]
        m = len(owner)
        mean_bytes = b.monthly_gb * svc.BYTES_PER_GB / (30.0 * np.maximum(per_day, 0.1))
        download = np.round(
            mean_bytes[owner] * rng.lognormal(-0.32, 0.8, m) * (0.4 + 0.6 * act[owner])
        )
        upload = np.round(download * rng.uniform(0.04, 0.15, m))
        delivered = rng.uniform(0.75, 1.0, m) * np.where(in_peak, 0.85, 1.0)
        plan = b.plan[owner]
        latency = np.array([c.latency_ms for c in CITIES])[b.city[owner]] * rng.lognormal(0, 0.3, m)
        device = rng.integers(0, svc.MAX_SESSIONS_PER_HOUR, m)
        order = np.argsort(at, kind="stable")
        ids = object_ids(rng, at[order])
        docs = []
        for k, j in enumerate(order.tolist()):
            i, when = int(owner[j]), _dt(at[j])
            docs.append(
                {
                    "_id": ids[k],
                    "userId": b.user_id[i],
                    "deviceId": self.devices.ids[i][device[j]].replace("gen-", "dev-", 1),
                    "deviceType": self.devices.types[i][device[j]],
                    "timestamp": when,
                    "download": float(download[j]),
                    "upload": float(upload[j]),
                    "downloadSpeed": float(
                        round(self.plans.download_mbps[plan[j]] * delivered[j], 2)
                    ),
                    "uploadSpeed": float(round(self.plans.upload_mbps[plan[j]] * delivered[j], 2)),
                    "latency": float(round(latency[j], 1)),
                    "packetLoss": float(round(rng.exponential(0.4), 3)),
                    "ipAddress": self.devices.ip_addresses[i],
                    "sessionDuration": float(
                        round(rng.lognormal(3.5, 0.7) * (0.5 + 0.5 * act[i]), 1)
                    ),
                    "createdAt": when,
                    "updatedAt": when,
                }
            )
        day.add("usagelogs", docs)
        day.count("organic_sessions", m)
        return owner, at, download + upload

    def app_writers(
        self,
        day: _Day,
        s: int,
        cancelled_at: np.ndarray,
        joined_at: np.ndarray,
        organic: tuple[np.ndarray, np.ndarray, np.ndarray],
        rolling: np.ndarray,
        weekend: bool,
    ) -> np.ndarray:
        """The hourly generator, the 4-hourly analytics and the 6-hourly churn scan.
        Returns the bytes the generator wrote per customer."""
        b = self.book
        used = np.zeros(b.size)
        owner, organic_at, organic_bytes = organic
        factor = svc.daily_factors(self.rng(s, "factor"), b.size, weekend)
        hourly, analytics, scans = (self.rng(s, p) for p in ("hourly", "analytics", "scan"))
        generated = 0
        for hour in range(24):
            now = s + hour * 3600
            live = (np.isin(b.status, svc.LIVE_USAGE_STATUSES) | (cancelled_at >= now)) & (
                joined_at <= now
            )
            live &= (cancelled_at < 0) | (cancelled_at >= now)
            users = np.flatnonzero(live)
            docs, written = svc.hourly_usage_documents(
                hourly,
                now,
                users,
                b.user_id,
                b.plan[users],
                self.plans,
                self.devices,
                factor[users],
            )
            day.add("usagelogs", docs)
            generated += len(docs)
            np.add.at(used, users, written)
            if hour in ANALYTICS_HOURS:
                day.add(
                    "usageanalytics",
                    svc.usage_analytics_documents(
                        analytics,
                        now + 300,
                        [b.user_id[i] for i in users],
                        [b.sub_id[i] for i in users],
                        rolling[users]
                        + used[users]
                        + np.bincount(
                            owner[organic_at < now + 300],
                            weights=organic_bytes[organic_at < now + 300],
                            minlength=b.size,
                        )[users],
                    ),
                )
            if hour in SCAN_HOURS:
                since_login = (
                    now - np.where(b.last_login >= 0, b.last_login, b.start_seconds)
                ) / SECONDS_PER_DAY
                risk = svc.live_risk_scores(
                    b.failures[users],
                    since_login[users],
                    (now - b.start_seconds[users]) / SECONDS_PER_DAY,
                )
                day.add(
                    "churnscanhistories",
                    svc.churn_scan_document(scans, now, [b.user_id[i] for i in users], risk),
                )
        day.count("generated_sessions", generated)
        return used


def _truth_probabilities(world: _World, as_of_seconds: int, multiplier: np.ndarray) -> list:
    """30-day cancel/leave probabilities at `as_of` for the live customers, under the
    continuation's own model (decided: 0 or 1; undecided: a constant daily rate)."""
    b = world.book
    horizon_end = as_of_seconds + HORIZON_DAYS * SECONDS_PER_DAY
    live = np.isin(b.status, ("active",))
    decided = b.decline_seconds >= 0
    cancel_soon = (b.churn_seconds >= as_of_seconds) & (b.churn_seconds < horizon_end)
    lapse_soon = (b.nonrenewal_seconds >= as_of_seconds) & (b.nonrenewal_seconds < horizon_end)
    inside_world = b.world_known & (horizon_end <= world.world_through)
    factor = np.where(inside_world, np.maximum(multiplier - 1.0, 0.0), multiplier)
    rate = b.daily_hazard * factor
    d = np.arange(LEAVER_DECLINE_DAYS[0], LEAVER_DECLINE_DAYS[1] + 1)
    days_left = np.maximum(HORIZON_DAYS - d, 0)[None, :]
    p_cancel = np.mean(1 - np.exp(-rate[:, None] * days_left), axis=1)
    p_leave = np.mean(
        1 - np.exp(-rate[:, None] * (1 + NONRENEWAL_PER_CANCELLATION) * days_left), axis=1
    )
    p_cancel = np.where(decided, cancel_soon.astype(float), p_cancel)
    p_leave = np.where(decided, (cancel_soon | lapse_soon).astype(float), p_leave)
    # Whose next 30 days' outcome the truth will hold: while the world's own future covers
    # the horizon, only the customers it simulated (a sign-up's decisions are drawn day by
    # day); beyond it everyone's, since evaluation then waits for the continued days.
    known = b.world_known | (horizon_end > world.world_through)
    return [
        UpdateOne(
            {"_id": b.user_id[i]},
            {
                "$push": {
                    "churnProbability30d": {
                        "asOf": _dt(as_of_seconds),
                        "cancel": float(p_cancel[i]),
                        "leave": float(p_leave[i]),
                    }
                }
            },
        )
        for i in np.flatnonzero(live & b.has_truth & known).tolist()
    ]


def continue_world(
    db: Database,
    days: int,
    *,
    seed: int = 42,
    app_writers: bool = True,
    signup_rate: float = SIGNUP_RATE,
    progress: Callable[[str], None] | None = None,
    batch_size: int = 20_000,
) -> ContinuationReport:
    """Advance the world in `db` by `days` days after where it ended. `seed` is used only
    if the world has no state document (else the simulation's own seed is kept);
    `signup_rate` is sign-ups per live customer per day at the reference prices."""
    if days < 1:
        raise ValueError("days must be at least 1")
    began = time.perf_counter()
    say = progress or (lambda _message: None)
    state = db[STATE_COLLECTION].find_one({"_id": STATE_ID}) or _infer_state(db, seed)
    world = _World(db, state)
    b = world.book
    first = _seconds(state["observedThrough"])
    first_day = _dt(first).date()
    ledger = _recent_daily_bytes(db, first, world.history_gb)
    rolling_days = np.array([ledger.get(uid, np.zeros(ROLLING_DAYS)) for uid in b.user_id])
    if rolling_days.size == 0:
        rolling_days = np.zeros((0, ROLLING_DAYS))
    inserted: dict[str, int] = {}
    updated: dict[str, int] = {}
    events: dict[str, int] = {}
    say(f"continuing {b.size} customers from {first_day} by {days} day(s)")
    with BatchWriter(db, batch_size) as writer:
        for offset in range(days):
            s = first + offset * SECONDS_PER_DAY
            date = _dt(s).date()
            day = _Day()
            world.refresh_prices()
            multiplier = price_hazard_multiplier(
                b.elasticity, world.plans.monthly[b.plan], world.reference_price[b.plan]
            )
            failed = world.expiry_service(day, s) if app_writers else np.zeros(0, dtype=np.int64)
            world.decide(day, s, multiplier)
            cancelled_at = world.cancel(day, s)
            before = b.size
            joined = world.sign_up(day, s, signup_rate)
            b = world.book
            grow = b.size - before
            cancelled_at = np.concatenate([cancelled_at, np.full(grow, -1, dtype=np.int64)])
            joined_at = np.full(b.size, -1, dtype=np.int64)
            joined_at[joined] = b.start_seconds[joined]
            rolling_days = np.vstack([rolling_days, np.zeros((grow, ROLLING_DAYS))])
            act = world.activity(s + SECONDS_PER_DAY // 2)
            world.logins(day, s, act, joined_at)
            world.tickets(day, s, act, joined_at, failed)
            world.feedback(day, s, act, joined_at)
            organic = world.organic_usage(day, s, act, cancelled_at, joined_at)
            used = np.bincount(organic[0], weights=organic[2], minlength=b.size)
            if app_writers:
                used += world.app_writers(
                    day,
                    s,
                    cancelled_at,
                    joined_at,
                    organic,
                    rolling_days[:, 1:].sum(axis=1),
                    svc.is_weekend(date),
                )
            rolling_days = np.hstack([rolling_days[:, 1:], used[:, None]])
            # Documents first (a sign-up's subscription exists before anyone updates it).
            for collection, documents in day.inserts.items():
                writer.write(collection, documents)
            writer.flush()
            for collection, ops in (
                ("subscriptions", day.sub_updates),
                ("users", day.user_updates),
                ("supporttickets", day.ticket_updates),
                (TRUTH_COLLECTION, day.truth_updates),
            ):
                if ops:
                    db[collection].bulk_write(ops, ordered=True)
                    updated[collection] = updated.get(collection, 0) + len(ops)
            db[DAILY_USAGE_COLLECTION].replace_one(
                {"_id": date.isoformat()},
                {
                    "_id": date.isoformat(),
                    "day": _dt(s),
                    "users": [b.user_id[i] for i in np.flatnonzero(used > 0)],
                    "bytes": used[used > 0].tolist(),
                },
                upsert=True,
            )
            for name, n in day.events.items():
                events[name] = events.get(name, 0) + n
            for collection, documents in day.inserts.items():
                inserted[collection] = inserted.get(collection, 0) + len(documents)
            say(f"{date}: " + ", ".join(f"{k} {v}" for k, v in sorted(day.events.items()) if v))
        end_seconds = first + days * SECONDS_PER_DAY
        multiplier = price_hazard_multiplier(
            b.elasticity, world.plans.monthly[b.plan], world.reference_price[b.plan]
        )
        truth_ops = _truth_probabilities(world, end_seconds, multiplier)
        if truth_ops:
            db[TRUTH_COLLECTION].bulk_write(truth_ops, ordered=False)
        observed = _dt(end_seconds)
        known_through = _dt(max(world.world_through, end_seconds))
        db[TRUTH_COLLECTION].update_many(
            {}, {"$set": {"observedThrough": observed}, "$max": {"simulatedThrough": known_through}}
        )
    state |= {
        "observedThrough": observed,
        "openTickets": world.open_tickets,
        "continuedDays": int(state.get("continuedDays", 0)) + days,
    }
    db[STATE_COLLECTION].replace_one({"_id": STATE_ID}, state, upsert=True)
    return ContinuationReport(
        first_day=first_day,
        last_day=first_day + dt.timedelta(days=days - 1),
        documents=dict(sorted(inserted.items())),
        updates=dict(sorted(updated.items())),
        events=dict(sorted(events.items())),
        seconds=time.perf_counter() - began,
        customers=b.size,
    )


__all__ = [
    "DAILY_USAGE_COLLECTION",
    "STATE_COLLECTION",
    "ContinuationError",
    "ContinuationReport",
    "continue_world",
    "initial_state",
    "price_hazard_multiplier",
    "signup_acceptance",
]
