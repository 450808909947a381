"""simulate(): write a realistic, deterministic BroadbandX history into MongoDB."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pymongo.database import Database

from simulator import documents as docs
from simulator.activity import Identity, monthly_batches
from simulator.encode import (
    SECONDS_PER_DAY,
    STREAM_DOCUMENTS,
    STREAM_IDS,
    STREAM_LOGINS,
    STREAM_POPULATION,
    STREAM_TIMELINE,
    STREAM_USAGE,
    epoch_seconds,
    hex_tokens,
    rng_for,
)
from simulator.population import MAX_DEVICES, draw_population
from simulator.timeline import Window, build_timeline
from simulator.writer import BatchWriter

APP_COLLECTIONS = (
    "users",
    "plans",
    "subscriptions",
    "usagelogs",
    "payments",
    "billings",
    "supporttickets",
    "auditlogs",
    "feedbacks",
)
TRUTH_COLLECTION = "sim_truth"
DEFAULT_BATCH_SIZE = 20_000
CATALOGUE_LEAD_DAYS = 30  # plans and admins exist a month before the first customer

_STREAMS = {"usage": STREAM_USAGE, "logins": STREAM_LOGINS}
_DOC_PARTS = {
    "admins": 1,
    "users": 2,
    "outcomes": 3,
    "payments": 4,
    "billings": 5,
    "tickets": 6,
    "feedbacks": 7,
    "subscriptions": 8,
    "transactions": 9,
    "identity": 10,
}


@dataclass(frozen=True)
class SimulationReport:
    documents: dict[str, int]  # documents written per collection (sim_truth included)
    customers: int
    active_subscriptions: int  # status "active" at the end of the window
    churned: int  # status "cancelled"
    seconds: float


def simulate(
    db: Database,
    *,
    customers: int,
    days: int,
    seed: int,
    end: dt.date,
    sessions_per_day: float = 1.5,
    annual_churn: float = 0.25,
    progress: Callable[[str], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> SimulationReport:
    """Replace the app collections in `db` with `customers` customers' history over the
    `days` days ending on `end` (inclusive). Same arguments, same documents."""
    _check_arguments(customers, days, sessions_per_day, annual_churn, batch_size)
    began = time.perf_counter()
    say = progress or (lambda _message: None)
    for name in (*APP_COLLECTIONS, TRUTH_COLLECTION):
        db.drop_collection(name)

    window = Window(epoch_seconds(end - dt.timedelta(days=days - 1)), days)
    pop = draw_population(
        rng_for(seed, STREAM_POPULATION), customers, days, window.start_seconds, sessions_per_day
    )
    tl = build_timeline(rng_for(seed, STREAM_TIMELINE), pop, window, annual_churn)
    catalogue_seconds = int(pop.start_seconds.min()) - CATALOGUE_LEAD_DAYS * SECONDS_PER_DAY
    keys = docs.draw_keys(rng_for(seed, STREAM_IDS), pop, catalogue_seconds)
    ident = _identity(rng_for(seed, STREAM_DOCUMENTS, _DOC_PARTS["identity"]), keys, customers)

    def doc_rng(part: str) -> np.random.Generator:
        return rng_for(seed, STREAM_DOCUMENTS, _DOC_PARTS[part])

    say(f"simulating {customers} customers over {days} days ending {end.isoformat()}")
    with BatchWriter(db, batch_size) as writer:
        writer.write("plans", docs.plan_documents(keys))
        last_login = np.full(customers, -1, dtype=np.int64)
        usage_gb = np.zeros(customers)
        for collection, batch, summary in monthly_batches(
            lambda name, part: rng_for(seed, _STREAMS[name], part), pop, tl, ident
        ):
            writer.write(collection, batch)
            if collection == "usagelogs":
                usage_gb += summary
            else:
                last_login = np.maximum(last_login, summary)
                counts = writer.counts
                say(f"{counts['usagelogs']} usage sessions, {counts['auditlogs']} logins")
        writer.write("users", docs.admin_documents(doc_rng("admins"), keys, window.end_seconds))
        writer.write("users", docs.user_documents(doc_rng("users"), pop, tl, keys, last_login))
        outcome = docs.payment_outcomes(doc_rng("outcomes"), tl)
        transaction_ids = hex_tokens(doc_rng("transactions"), len(tl.attempts.seconds), 14)
        writer.write(
            "subscriptions",
            docs.subscription_documents(
                doc_rng("subscriptions"), pop, tl, keys, outcome, transaction_ids
            ),
        )
        writer.write(
            "payments",
            docs.payment_documents(doc_rng("payments"), pop, tl, keys, outcome, transaction_ids),
        )
        writer.write("billings", docs.billing_documents(doc_rng("billings"), pop, tl, keys))
        writer.write("supporttickets", docs.ticket_documents(doc_rng("tickets"), pop, tl, keys))
        writer.write("feedbacks", docs.feedback_documents(doc_rng("feedbacks"), pop, tl, keys))
        writer.write(TRUTH_COLLECTION, docs.truth_documents(pop, tl, keys, usage_gb))
    status = docs.subscription_status(tl)
    report = SimulationReport(
        documents=dict(writer.counts),
        customers=customers,
        active_subscriptions=int(np.sum(status == "active")),
        churned=int(np.sum(status == "cancelled")),
        seconds=time.perf_counter() - began,
    )
    say(f"done in {report.seconds:.1f}s: {report.documents}")
    return report


def _identity(rng: np.random.Generator, keys: docs.Keys, customers: int) -> Identity:
    device_tokens = hex_tokens(rng, customers, 10)
    octets = rng.integers(1, 255, size=(customers, 3))
    return Identity(
        user_ids=keys.user_ids,
        device_ids=[[f"dev-{token}-{d}" for d in range(MAX_DEVICES)] for token in device_tokens],
        ip_addresses=[f"49.{a}.{b}.{c}" for a, b, c in octets.tolist()],
    )


def _check_arguments(
    customers: int, days: int, sessions_per_day: float, annual_churn: float, batch_size: int
) -> None:
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be at least 1")
    if sessions_per_day <= 0:
        raise ValueError("sessions_per_day must be positive")
    if not 0 <= annual_churn < 1:
        raise ValueError("annual_churn must be in [0, 1)")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
