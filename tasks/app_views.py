"""What the app's screens read, written after the night's scores are published.

- `churnscanhistories` (the app's admin trends chart): one scan per as-of date, dated
  when the run finished (the chart keeps the latest scan of a day; docs/runbook.md).
- `pricingproposals` (the app's approval screen): plan-level price changes, `pending`,
  inside each plan's anchor band, never for a plan with a proposal in flight or in
  its cool-down after an applied one (models/plan_prices.py).
- `ml_model_metrics`: champions, their metrics, segment profiles, pricing weights, and
  when the last good night finished (so the app can show stale scores as stale).
- `ml_churn_alerts`: customers who crossed into the high band since the last
  published run, plus a Prefect event an automation can notify on.

The documents are built in models/app_documents.py, in the shapes of
../shared/broadbandx-schema.md and docs/data-contract.md. Every write
is an upsert keyed by the as-of date (and scan/proposal type), so rerunning a night
replaces its documents instead of duplicating them. Pipeline-owned marker fields
(`source`, `asOf`, `runId`) sit beside the app's fields; Mongoose ignores them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from prefect import task
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from bbx.lake import SCORES_COLLECTION
from bbx.mongo import MongoUnavailableError, connect, redact
from bbx.settings import Settings
from models.app_documents import (
    PROPOSAL_TYPE,
    SOURCE,
    ScoreDisplay,
    as_of_instant,
    model_metrics_document,
    plan_proposals,
    pricing_weights,
    proposal_document,
    scan_history_document,
)
from models.plan_prices import ProposalState, proposal_blockers
from tasks.publish import read_priced_scores

SCAN_HISTORY_COLLECTION = "churnscanhistories"
PROPOSALS_COLLECTION = "pricingproposals"
MODEL_METRICS_COLLECTION = "ml_model_metrics"
ALERTS_COLLECTION = "ml_churn_alerts"

HIGH_RISK_EVENT = "bbx.churn.high-risk-crossing"


class AppViewsError(RuntimeError):
    """A document for the app's screens cannot be written as the app requires."""


@dataclass(frozen=True)
class AppViewsResult:
    scan_history_id: str
    proposal_id: str | None  # None: no plan moved enough, or the admin already decided
    proposal_plans: int
    proposal_note: str
    alerts: int
    model_metrics_id: str
    proposal_skipped: dict[str, str] = field(default_factory=dict)  # plan name → why not
    # What the proposal holds, per plan: name, current and proposed monthly price, change %.
    proposal_changes: list[dict[str, Any]] = field(default_factory=list)


def configured_weights(settings: Settings) -> dict[str, float]:
    p = settings.pricing
    return {"alpha": p.alpha, "beta": p.beta, "gamma": p.gamma}


def score_display(settings: Settings) -> ScoreDisplay:
    return ScoreDisplay(settings.churn.risk_band_medium, settings.churn.risk_band_high,
                        settings.pricing.min_ratio, settings.pricing.max_ratio,
                        settings.pricing.currency, configured_weights(settings))


def proposal_admin(db: Database, email: str | None) -> ObjectId:
    """The admin user named as createdBy: by email if configured, else the earliest admin."""
    query: dict[str, Any] = {"role": "admin"}
    if email:
        query["email"] = email
    admin = db.users.find_one(query, {"_id": 1}, sort=[("createdAt", ASCENDING), ("_id", 1)])
    if admin is None:
        wanted = f"with email {email!r} " if email else ""
        raise AppViewsError(
            f"no admin user {wanted}in '{db.name}.users' (role: admin): pricingproposals need "
            "createdBy to be an admin of the app; create one in the app or set "
            "publish.proposal_admin_email"
        )
    return admin["_id"]


def proposal_states(db: Database, plan_ids: list[str], tonight: dict[str, Any]
                    ) -> list[ProposalState]:
    """The proposals (any author) that may hold tonight's plans: pending, approved or
    applied ones naming them, except tonight's own (a rerun replaces it)."""
    found = db[PROPOSALS_COLLECTION].find(
        {"changes.plan": {"$in": [ObjectId(p) for p in plan_ids]},
         "status": {"$in": ["pending", "approved", "applied"]}},
        {"status": 1, "updatedAt": 1, "changes.plan": 1, "source": 1, "proposalType": 1,
         "asOf": 1},
    )
    return [
        ProposalState(str(d["_id"]), str(d.get("status")), d.get("updatedAt"),
                      frozenset(str(c.get("plan")) for c in d.get("changes") or []
                                if isinstance(c, dict)))
        for d in found
        if not all(d.get(k) == v for k, v in tonight.items())
    ]


def upsert_scan_history(db: Database, document: dict[str, Any], now: dt.datetime) -> str:
    key = {"source": SOURCE, "scanType": document["scanType"], "asOf": document["asOf"]}
    result = db[SCAN_HISTORY_COLLECTION].find_one_and_update(
        key,
        {"$set": document | {"updatedAt": now}, "$setOnInsert": {"createdAt": now}},
        upsert=True, return_document=True, projection={"_id": 1},
    )
    return str(result["_id"])


def upsert_proposal(
    db: Database, document: dict[str, Any], now: dt.datetime
) -> tuple[str | None, str]:
    """Replace tonight's pending proposal; never touch one an admin already decided on."""
    key = {"source": SOURCE, "proposalType": document["proposalType"], "asOf": document["asOf"]}
    existing = db[PROPOSALS_COLLECTION].find_one(key, {"_id": 1, "status": 1})
    if existing is not None and existing.get("status") != "pending":
        return None, (f"left proposal {existing['_id']} as it is: an admin already set it "
                      f"to {existing.get('status')}")
    result = db[PROPOSALS_COLLECTION].find_one_and_update(
        key | {"status": "pending"},
        {"$set": document | {"updatedAt": now}, "$setOnInsert": {"createdAt": now}},
        upsert=True, return_document=True, projection={"_id": 1},
    )
    return str(result["_id"]), f"proposal {result['_id']} pending"


def upsert_model_metrics(db: Database, document: dict[str, Any], now: dt.datetime) -> str:
    collection = db[MODEL_METRICS_COLLECTION]
    collection.create_index([("asOf", DESCENDING)], unique=True, name="asOf_unique")
    result = collection.find_one_and_update(
        {"asOf": document["asOf"]},
        {"$set": document | {"updatedAt": now}, "$setOnInsert": {"createdAt": now}},
        upsert=True, return_document=True, projection={"_id": 1},
    )
    return str(result["_id"])


def high_risk_crossings(db: Database, as_of: dt.date) -> list[dict[str, Any]]:
    """Published customers now high whose previous published score was low or medium.

    `previous` is stamped on each score by the publish step (tasks/publish.py), so
    this is a plain read of the app-visible collection and can be repeated safely.
    """
    return list(db[SCORES_COLLECTION].find(
        {"asOf": as_of_instant(as_of), "riskBand": "high",
         "previous.riskBand": {"$in": ["low", "medium"]}},
        {"userId": 1, "riskScore": 1, "churnProbability": 1, "previous": 1, "churnReasons": 1,
         "segment": 1, "price": 1, "runId": 1},
    ).sort([("riskScore", DESCENDING), ("userId", ASCENDING)]))


def upsert_alerts(
    db: Database, crossings: list[dict[str, Any]], as_of: dt.date, now: dt.datetime
) -> int:
    collection = db[ALERTS_COLLECTION]
    collection.create_index([("userId", ASCENDING), ("asOf", DESCENDING)], unique=True,
                            name="userId_asOf_unique")
    collection.create_index([("asOf", DESCENDING)], name="asOf")
    operations = [
        UpdateOne(
            {"userId": s["userId"], "asOf": as_of_instant(as_of)},
            {"$set": {
                "runId": s.get("runId"),
                "previousRiskScore": s["previous"].get("riskScore"),
                "previousRiskBand": s["previous"].get("riskBand"),
                "previousAsOf": s["previous"].get("asOf"),
                "currentRiskScore": s["riskScore"],
                "currentRiskBand": "high",
                "churnProbability": s.get("churnProbability"),
                "reasons": s.get("churnReasons", []),
                "segment": s.get("segment"),
                "plan": (s.get("price") or {}).get("plan"),
                "updatedAt": now,
            }, "$setOnInsert": {"createdAt": now, "status": "new"}},
            upsert=True,
        )
        for s in crossings
    ]
    if operations:
        collection.bulk_write(operations, ordered=False)
    return len(operations)


def emit_high_risk_event(
    as_of: dt.date, run_id: str, crossings: list[dict[str, Any]], max_users: int
) -> None:
    """One Prefect event per night with crossings; automations match on its name."""
    if not crossings:
        return
    from prefect.events import emit_event

    emit_event(
        event=HIGH_RISK_EVENT,
        resource={"prefect.resource.id": f"bbx.churn-alerts.{as_of.isoformat()}",
                  "prefect.resource.name": f"high-risk crossings {as_of.isoformat()}"},
        payload={
            "as_of": as_of.isoformat(),
            "run_id": run_id,
            "customers": len(crossings),
            "collection": ALERTS_COLLECTION,
            "user_ids": [str(s["userId"]) for s in crossings[:max_users]],
        },
    )


def champion_metrics(settings: Settings, versions: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The registered versions that scored tonight, with their MLflow run metrics."""
    from mlflow import MlflowClient

    from tasks import registry

    names = {"churn": registry.CHURN_MODEL, "segmentation": registry.SEGMENT_MODEL}
    if not (settings.home / "mlflow.db").exists():
        return {role: {"registeredName": names[role], "version": version, "metrics": {},
                       "note": "no MLflow registry under home"}
                for role, version in versions.items()}
    client = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    champions: dict[str, dict[str, Any]] = {}
    for role, version in versions.items():
        entry: dict[str, Any] = {"registeredName": names[role], "version": version}
        try:
            model_version = client.get_model_version(names[role], version)
            run = client.get_run(model_version.run_id)
            entry |= {"mlflowRunId": model_version.run_id,
                      "aliases": list(model_version.aliases),
                      "metrics": {k: float(v) for k, v in sorted(run.data.metrics.items())}}
        except Exception as exc:  # noqa: BLE001 - the registry is advisory here
            entry |= {"metrics": {}, "note": f"registry lookup failed: {type(exc).__name__}"}
        champions[role] = entry
    return champions


def write_app_views(
    uri: str,
    settings: Settings,
    as_of: dt.date,
    run_id: str,
    scores_file: str,
    run_started_at: dt.datetime,
    projected_impact: dict[str, float | None] | None = None,
    propose_prices: bool = True,
    prices_file: str | None = None,
) -> AppViewsResult:
    """propose_prices=False (a backfilled past night the app does not see): no proposal."""
    scores = read_priced_scores(scores_file, prices_file)
    versions = {"churn": str(scores["churn_model_version"].iloc[0]),
                "segmentation": str(scores["segment_model_version"].iloc[0])} if len(scores) \
        else {}
    champions = champion_metrics(settings, versions)
    now = dt.datetime.now(dt.UTC)
    publish = settings.publish
    client = connect(uri, settings)
    try:
        db = client[settings.mongo.database]
        scan = scan_history_document(
            scores, as_of, run_id, int((now - run_started_at).total_seconds() * 1000),
            publish.top_at_risk, versions, finished_at=now,
        )
        for entry in scan["topAtRiskCustomers"]:
            entry["userId"] = ObjectId(entry["userId"])
        scan_id = upsert_scan_history(db, scan, now)

        changes: list[dict[str, Any]] = []
        skipped: dict[str, str] = {}
        if propose_prices and len(scores):
            tonight = {"source": SOURCE, "proposalType": PROPOSAL_TYPE,
                       "asOf": as_of_instant(as_of)}
            plan_ids = sorted(scores["plan_id"].astype(str).unique())
            blocked = proposal_blockers(plan_ids, proposal_states(db, plan_ids, tonight), now,
                                        settings.pricing.proposal_cooldown_days)
            changes, skipped = plan_proposals(scores, publish.proposal_min_change_percent,
                                              as_of.isoformat(), blocked)
        proposal_id, note = None, ("no plan's price is proposed tonight"
                                   if propose_prices else "no proposal for a past night")
        if changes:
            admin = proposal_admin(db, publish.proposal_admin_email)
            weights = pricing_weights(scores, configured_weights(settings))
            proposal = proposal_document(
                changes, as_of, run_id, admin,
                now + dt.timedelta(days=publish.proposal_expiry_days), weights, versions,
                projected_impact,
            )
            proposal["changes"] = [c | {"_id": ObjectId(c["_id"]), "plan": ObjectId(c["plan"])}
                                   for c in proposal["changes"]]
            proposal_id, note = upsert_proposal(db, proposal, now)

        crossings = high_risk_crossings(db, as_of)
        alerts = upsert_alerts(db, crossings, as_of, now)
        metrics_id = upsert_model_metrics(
            db, model_metrics_document(scores, as_of, run_id, now, champions,
                                       score_display(settings)), now
        )
    except PyMongoError as exc:
        raise MongoUnavailableError(
            f"writing the app's views on {redact(uri)} failed: {type(exc).__name__}; the "
            "scores are published, rerun the night to complete the views"
        ) from None
    finally:
        client.close()
    emit_high_risk_event(as_of, run_id, crossings, publish.alert_event_max_users)
    if skipped:
        note += "; not proposed: " + "; ".join(f"{n} ({why})" for n, why in skipped.items())
    proposed = [{"planName": c["planName"], "currentPrice": float(c["currentPrice"]),
                 "proposedPrice": float(c["proposedPrice"]),
                 "changePercent": float(c["changePercent"])} for c in changes]
    return AppViewsResult(scan_id, proposal_id, len(changes), note, alerts, metrics_id,
                          skipped, proposed)


@task(name="write-app-views")  # retries: set by the flow
def write_app_views_task(
    uri: str,
    settings: Settings,
    as_of: dt.date,
    run_id: str,
    scores_file: str,
    run_started_at: dt.datetime,
    propose_prices: bool = True,
    projected_impact: dict[str, float | None] | None = None,
    prices_file: str | None = None,
) -> AppViewsResult:
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact

    result = write_app_views(uri, settings, as_of, run_id, scores_file, run_started_at,
                             projected_impact=projected_impact, propose_prices=propose_prices,
                             prices_file=prices_file)
    logger = get_run_logger()
    logger.info("pricing proposal: %s", result.proposal_note)
    lines = [f"# Price proposal {as_of}", "", f"{result.proposal_plans} plan(s) proposed"
             + (f" in proposal {result.proposal_id}" if result.proposal_id else "") + "."]
    if result.proposal_skipped:
        lines += ["", "| plan | not proposed because |", "|---|---|"]
        lines += [f"| {name} | {why} |" for name, why in result.proposal_skipped.items()]
    create_markdown_artifact("\n".join(lines), key="pricing-proposal",
                             description=f"The plan price proposal written to the app for "
                                         f"{as_of}, and why other plans are not in it")
    return result


def finished_nights(uri: str, settings: Settings, dates: list[dt.date]) -> set[dt.date]:
    """The dates among `dates` whose night finished (ml_model_metrics has it)."""
    client = connect(uri, settings)
    try:
        found = client[settings.mongo.database][MODEL_METRICS_COLLECTION].find(
            {"asOf": {"$in": [as_of_instant(d) for d in dates]}}, {"asOf": 1})
        return {doc["asOf"].date() for doc in found}
    finally:
        client.close()


@task(name="finished-nights")
def finished_nights_task(uri: str, settings: Settings, dates: list[dt.date]) -> set[dt.date]:
    return finished_nights(uri, settings, dates)
