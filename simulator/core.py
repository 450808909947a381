"""simulate(): write a realistic, deterministic BroadbandX history into MongoDB."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pymongo.database import Database

from simulator import documents as docs
from simulator.activity import Identity, monthly_batches
from simulator.continuation import DAILY_USAGE_COLLECTION, STATE_COLLECTION, initial_state
from simulator.dirty import Dirt
from simulator.encode import (
    STREAM_DOCUMENTS,
    STREAM_LOGINS,
    STREAM_USAGE,
    hex_tokens,
    rng_for,
)
from simulator.population import MAX_DEVICES
from simulator.truth import TRUTH_COLLECTION, truth_documents
from simulator.world import SimulationSpec, build_world
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
DIRTY_ONLY_COLLECTIONS = ("usageanalytics",)  # written in dirty mode only
DEFAULT_BATCH_SIZE = 20_000

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
    active_subscriptions: int  # status "active" at the end of the written history
    churned: int  # status "cancelled" at the end of the written history
    seconds: float
    future_cancellations: int = 0  # cancellations in the hidden future (truth only)
    dirt: dict[str, int] = field(default_factory=dict)  # injected dirt by kind (dirty mode)


def simulate(
    db: Database,
    *,
    customers: int,
    days: int,
    seed: int,
    end: dt.date,
    sessions_per_day: float = 1.5,
    annual_churn: float = 0.25,
    future_days: int = 60,
    dirty: bool = False,
    scenario: str = "default",
    history_days: int | None = None,
    progress: Callable[[str], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> SimulationReport:
    """Replace the app collections in `db` with `customers` customers' history over the
    `days` days ending on `end` (inclusive), simulate `future_days` more days whose
    outcomes go only into the truth, and (if `dirty`) inject the app's usual dirt.
    `scenario` picks another churn population (simulator/scenarios.py).
    Same arguments, same documents."""
    spec = SimulationSpec(
        customers=customers,
        days=days,
        seed=seed,
        end=end,
        sessions_per_day=sessions_per_day,
        annual_churn=annual_churn,
        future_days=future_days,
        scenario=scenario,
        history_days=history_days,
    )
    spec.check()
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    began = time.perf_counter()
    say = progress or (lambda _message: None)
    for name in (
        *APP_COLLECTIONS,
        *DIRTY_ONLY_COLLECTIONS,
        TRUTH_COLLECTION,
        STATE_COLLECTION,
        DAILY_USAGE_COLLECTION,
    ):
        db.drop_collection(name)
    # The app's own scans from an earlier world's continued days (the pipeline's stay).
    db["churnscanhistories"].delete_many({"scanType": "automatic", "source": {"$exists": False}})

    world = build_world(spec)
    pop, tl, keys = world.pop, world.seen, world.keys
    window = tl.window
    ident = _identity(
        rng_for(seed, STREAM_DOCUMENTS, _DOC_PARTS["identity"]),
        keys,
        [email for _, _, email in docs.customer_names(doc_rng_users(seed), customers)],
    )
    dirt = Dirt(seed, end) if dirty else None

    def doc_rng(part: str) -> np.random.Generator:
        return rng_for(seed, STREAM_DOCUMENTS, _DOC_PARTS[part])

    def dirtied(collection: str, documents):
        return dirt.apply(collection, documents) if dirt else documents

    say(
        f"simulating {customers} customers over {days} days ending {end.isoformat()}"
        f" (+{future_days} hidden days){' with dirt' if dirty else ''}"
    )
    with BatchWriter(db, batch_size) as writer:
        writer.write("plans", docs.plan_documents(keys))
        last_login = np.full(customers, -1, dtype=np.int64)
        daily_gb = np.zeros((days, customers), dtype=np.float32) if dirty else None
        usage_gb = np.zeros(customers)
        for collection, batch, summary, chunk_days in monthly_batches(
            lambda name, part: rng_for(seed, _STREAMS[name], part), pop, tl, ident
        ):
            writer.write(collection, dirtied(collection, batch))
            if collection == "usagelogs":
                usage_gb += summary.sum(axis=0)
                if daily_gb is not None:
                    daily_gb[chunk_days] = summary
            else:
                last_login = np.maximum(last_login, summary)
                counts = writer.counts
                say(f"{counts['usagelogs']} usage sessions, {counts['auditlogs']} logins")
        writer.write("users", docs.admin_documents(doc_rng("admins"), keys, window.end_seconds))
        writer.write(
            "users",
            dirtied("users", docs.user_documents(doc_rng("users"), pop, tl, keys, last_login)),
        )
        outcome = docs.payment_outcomes(doc_rng("outcomes"), tl)
        transaction_ids = hex_tokens(doc_rng("transactions"), len(tl.attempts.seconds), 14)
        writer.write(
            "subscriptions",
            dirtied(
                "subscriptions",
                docs.subscription_documents(
                    doc_rng("subscriptions"), pop, tl, keys, outcome, transaction_ids
                ),
            ),
        )
        writer.write(
            "payments",
            docs.payment_documents(doc_rng("payments"), pop, tl, keys, outcome, transaction_ids),
        )
        writer.write("billings", docs.billing_documents(doc_rng("billings"), pop, tl, keys))
        writer.write(
            "supporttickets",
            dirtied("supporttickets", docs.ticket_documents(doc_rng("tickets"), pop, tl, keys)),
        )
        writer.write(
            "feedbacks",
            dirtied("feedbacks", docs.feedback_documents(doc_rng("feedbacks"), pop, tl, keys)),
        )
        if dirt is not None and daily_gb is not None:
            served = tl.activity(pop.start_day, np.arange(days)) > 0
            writer.write(
                "usageanalytics",
                dirt.usage_rollups(
                    daily_gb, served, window.start_seconds, keys.user_ids, keys.subscription_ids
                ),
            )
        writer.write(TRUTH_COLLECTION, truth_documents(world, usage_gb))
    # Where the world ends, for a later `continue_world`.
    db[STATE_COLLECTION].insert_one(
        initial_state(
            seed=seed,
            end=end,
            sessions_per_day=sessions_per_day,
            annual_churn=annual_churn,
            future_days=future_days,
            plans=docs.plan_documents(keys),
            customers=customers,
            invoices=len(tl.invoices.day),
            tickets=len(tl.tickets.seconds),
        )
    )
    status = docs.subscription_status(tl)
    future = world.full.cancel_day >= days
    report = SimulationReport(
        documents=dict(writer.counts),
        customers=customers,
        active_subscriptions=int(np.sum(status == "active")),
        churned=int(np.sum(status == "cancelled")),
        seconds=time.perf_counter() - began,
        future_cancellations=int(future.sum()),
        dirt=dict(sorted(dirt.counts.items())) if dirt else {},
    )
    say(f"done in {report.seconds:.1f}s: {report.documents}")
    return report


def doc_rng_users(seed: int) -> np.random.Generator:
    """The users' document stream (customers' names and e-mails come first in it)."""
    return rng_for(seed, STREAM_DOCUMENTS, _DOC_PARTS["users"])


def _identity(rng: np.random.Generator, keys: docs.Keys, emails: list[str]) -> Identity:
    customers = len(emails)
    device_tokens = hex_tokens(rng, customers, 10)
    octets = rng.integers(1, 255, size=(customers, 3))
    return Identity(
        user_ids=keys.user_ids,
        device_ids=[[f"dev-{token}-{d}" for d in range(MAX_DEVICES)] for token in device_tokens],
        ip_addresses=[f"49.{a}.{b}.{c}" for a, b, c in octets.tolist()],
        emails=emails,
    )
