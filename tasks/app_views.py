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

Shapes follow ../shared/broadbandx-schema.md and docs/data-contract.md. Every write
is an upsert keyed by the as-of date (and scan/proposal type), so rerunning a night
replaces its documents instead of duplicating them. Pipeline-owned marker fields
(`source`, `asOf`, `runId`) sit beside the app's fields; Mongoose ignores them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from bson import ObjectId
from prefect import task
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from bbx.lake import SCORES_COLLECTION
from bbx.mongo import MongoUnavailableError, connect, redact
from bbx.settings import Settings
from models.plan_prices import (
    PlanBand,
    ProposalState,
    banded_proposal,
    change_id,
    proposal_blockers,
    proposed_yearly_price,
)

SCAN_HISTORY_COLLECTION = "churnscanhistories"
PROPOSALS_COLLECTION = "pricingproposals"
MODEL_METRICS_COLLECTION = "ml_model_metrics"
ALERTS_COLLECTION = "ml_churn_alerts"

SOURCE = "bbx-ml-pipeline"  # marks documents this pipeline wrote in the app's collections
SCAN_TYPE = "scheduled"
PROPOSAL_TYPE = "plan-price"
PRICING_FORMULA = "P = P_base × (1 + α·D + β·E + γ·R)"
PRICING_MODEL_NAME = "bbx-dynamic-pricing"
HIGH_RISK_EVENT = "bbx.churn.high-risk-crossing"
# The app's riskLevel enum has no low level: the top list holds only these bands.
RISK_LEVEL = {"high": "High", "medium": "Medium"}


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


def as_of_instant(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)


def scan_instant(as_of: dt.date, finished_at: dt.datetime) -> dt.datetime:
    """When the scan happened: the time the run finished, kept inside the as-of day
    (UTC) so a backfilled past night or a future-dated test night is charted on its
    own day, never on the day it happened to be written."""
    start = as_of_instant(as_of)
    last = start + dt.timedelta(days=1) - dt.timedelta(milliseconds=1)
    return min(max(finished_at, start), last)


# --- documents (pure) ----------------------------------------------------------------


def scan_history_document(
    scores: pd.DataFrame,
    as_of: dt.date,
    run_id: str,
    scan_duration_ms: int,
    top_n: int,
    model_versions: dict[str, str],
    finished_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """One `churnscanhistories` scan: band counts, risk statistics, the riskiest customers.

    `probability` in the top list is the published riskScore (0..100), the number
    the bands are cut on, so the chart and the list agree. `finished_at` (default now)
    dates the scan.
    """
    bands = scores["risk_band"].value_counts()
    at_risk = scores[scores["risk_band"].isin(list(RISK_LEVEL))]
    top = at_risk.sort_values(["risk_score", "user_id"], ascending=[False, True]).head(top_n)
    risk = scores["risk_score"].astype(float)
    return {
        "scanDate": scan_instant(as_of, finished_at or dt.datetime.now(dt.UTC)),
        "scanType": SCAN_TYPE,
        "totalCustomers": int(len(scores)),
        "highRisk": int(bands.get("high", 0)),
        "mediumRisk": int(bands.get("medium", 0)),
        "lowRisk": int(bands.get("low", 0)),
        "averageRiskScore": round(float(risk.mean()), 2) if len(scores) else 0.0,
        "highestRiskScore": round(float(risk.max()), 2) if len(scores) else 0.0,
        "topAtRiskCustomers": [
            {
                "userId": ObjectId(row.user_id),
                "probability": round(float(row.risk_score), 2),
                "riskLevel": RISK_LEVEL[str(row.risk_band)],
            }
            for row in top.itertuples(index=False)
        ],
        "scanDuration": int(scan_duration_ms),
        "notes": (
            f"ML pipeline run {run_id} for as-of {as_of.isoformat()}: churn model "
            f"v{model_versions.get('churn', '?')}, segmentation "
            f"v{model_versions.get('segmentation', '?')}; riskScore is the chance (0..100) "
            "of cancelling within the risk-score horizon"
        ),
        "status": "completed",
        "source": SOURCE,
        "asOf": as_of_instant(as_of),
        "runId": run_id,
    }


def _plan_band(plan: pd.DataFrame, plan_id: str) -> PlanBand:
    """The band the pricing step priced the plan in (columns of the scores file); scores
    priced without one are bounded by nothing and have no known yearly discount."""
    first = plan.iloc[0]
    if {"anchor_price", "band_low", "band_high", "yearly_factor"} <= set(plan.columns):
        return PlanBand(plan_id, float(first["anchor_price"]), float(first["band_low"]),
                        float(first["band_high"]), str(first.get("anchor_source", "")),
                        float(first["yearly_factor"]))
    current = float(first["base_price"])
    return PlanBand(plan_id, current, 0.0, float("inf"), "list", float("nan"))


def plan_proposals(
    scores: pd.DataFrame,
    min_change_percent: float,
    night: str = "",
    blocked: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Per plan: the plan's monthly price → the mean dynamic price of its customers,
    in whole rupees inside the plan's band, and the yearly price that keeps the plan's
    yearly discount. Returns (changes, plan name → why it is not proposed).

    `blocked`: plan id → reason no proposal may be made (models.plan_prices.
    proposal_blockers). Customers in a pricing control arm (column `pricing_arm` ==
    "control", when the scores carry one) keep the static price by design, so they are
    left out of the mean. Each change's `_id` derives from the night (its as-of date)
    and the plan, so a retried write or a rerun of the night gives the same ids.
    """
    blocked = blocked or {}
    changes, skipped = [], {}
    treated = pd.Series(True, index=scores.index)
    if "pricing_arm" in scores.columns:
        treated = scores["pricing_arm"].astype(str) != "control"
    for plan_id, everyone in scores.groupby("plan_id", sort=True):
        plan_id = str(plan_id)
        name = str(everyone["plan_name"].iloc[0])
        if plan_id in blocked:
            skipped[name] = blocked[plan_id]
            continue
        plan = everyone[treated.loc[everyone.index]]
        if plan.empty:
            skipped[name] = "no customer of the plan is in the dynamic-price arm"
            continue
        band = _plan_band(plan, plan_id)
        current = round(float(plan["base_price"].iloc[0]), 2)
        proposed = banded_proposal(float(plan["dynamic_price"].mean()), band)
        change_percent = round((proposed - current) / current * 100.0, 2) if current else 0.0
        if abs(change_percent) < min_change_percent or proposed == current:
            skipped[name] = (f"proposed {proposed:g} is within {min_change_percent:g}% of the "
                             f"list price {current:g}")
            continue
        terms = {
            "demand": float(plan["price_term_demand"].mean()),
            "elasticity": float(plan["price_term_elasticity"].mean()),
            "churn risk": float(plan["price_term_risk"].mean()),
        }
        term_text = ", ".join(f"{term} {value * 100:+.1f}%" for term, value in terms.items())
        change: dict[str, Any] = {
            "_id": ObjectId(change_id(night, plan_id)),
            "plan": ObjectId(plan_id),
            "planName": name,
            "currentPrice": current,
            "proposedPrice": proposed,
            "changePercent": change_percent,
            "reason": (
                f"Mean dynamic price of the plan's {len(plan)} dynamically priced customers "
                f"(mean terms: {term_text}; high-risk share "
                f"{float((plan['risk_band'] == 'high').mean()) * 100:.0f}%)"
                + (f", inside the band {band.low:.0f}-{band.high:.0f} around the anchor "
                   f"{band.anchor:g} ({band.source})" if np.isfinite(band.high) else "")
            ),
            "customers": int(len(plan)),
        }
        if np.isfinite(band.high):
            change |= {"anchorPrice": band.anchor, "bandMin": round(band.low, 2),
                       "bandMax": round(band.high, 2)}
        if np.isfinite(band.yearly_factor):
            change["proposedYearlyPrice"] = proposed_yearly_price(proposed, band)
        changes.append(change)
    return changes, skipped


def plan_price_changes(scores: pd.DataFrame, min_change_percent: float,
                       run_id: str = "") -> list[dict[str, Any]]:
    """The changes of `plan_proposals`, with no plan blocked."""
    return plan_proposals(scores, min_change_percent, run_id)[0]


def first_order_revenue_change(changes: list[dict[str, Any]]) -> float:
    """Monthly revenue change if every current customer paid the proposed price and none
    reacted: Σ (proposed − current) × customers. A placeholder until the revenue
    simulation provides projectedImpact (docs/data-contract.md)."""
    return round(sum((c["proposedPrice"] - c["currentPrice"]) * c["customers"]
                     for c in changes), 2)


def proposal_document(
    changes: list[dict[str, Any]],
    as_of: dt.date,
    run_id: str,
    created_by: ObjectId,
    expires_at: dt.datetime,
    weights: dict[str, float],
    model_versions: dict[str, str],
    projected_impact: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """One `pricingproposals` document (status pending) for the plans in `changes`."""
    impact = projected_impact or {
        "revenueChange": first_order_revenue_change(changes),
        "churnReduction": None,
        "customersSaved": None,
    }
    names = ", ".join(f"{c['planName']} {c['changePercent']:+.1f}%" for c in changes)
    return {
        "title": f"ML price proposal for {as_of.isoformat()} ({len(changes)} plans)",
        "description": (
            "Plan prices moved to the mean dynamic price the pricing engine set for each "
            f"plan's customers on {as_of.isoformat()}: {names}. Review before applying."
        ),
        "model": {
            "name": PRICING_MODEL_NAME,
            "version": f"churn v{model_versions.get('churn', '?')}, "
                       f"segmentation v{model_versions.get('segmentation', '?')}",
            "formula": PRICING_FORMULA,
            "weights": {k: float(weights[k]) for k in ("alpha", "beta", "gamma")},
        },
        "changes": [{k: v for k, v in c.items() if k != "customers"} for c in changes],
        "status": "pending",
        "createdBy": created_by,
        "expiresAt": expires_at,
        "projectedImpact": impact,
        "source": SOURCE,
        "proposalType": PROPOSAL_TYPE,
        "asOf": as_of_instant(as_of),
        "runId": run_id,
    }


def pricing_weights(scores: pd.DataFrame, settings: Settings) -> dict[str, float]:
    """The weights that priced tonight: learned ones stamped on the scores
    (price_weight_* columns) when present, else the configured ones."""
    if len(scores) and {"price_weight_alpha", "price_weight_beta",
                        "price_weight_gamma"} <= set(scores.columns):
        return {k: float(scores[f"price_weight_{k}"].iloc[0]) for k in ("alpha", "beta", "gamma")}
    p = settings.pricing
    return {"alpha": p.alpha, "beta": p.beta, "gamma": p.gamma}


def segment_profiles(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """Per segment of tonight's scored customers: size, share, risk and price."""
    profiles = []
    total = max(len(scores), 1)
    for (segment_id, name), seg in scores.groupby(["segment_id", "segment_name"], sort=True):
        profiles.append({
            "id": int(segment_id),
            "name": str(name),
            "customers": int(len(seg)),
            "share": round(len(seg) / total, 4),
            "elasticity": round(float(seg["elasticity"].mean()), 4),
            "meanRiskScore": round(float(seg["risk_score"].mean()), 2),
            "highRiskShare": round(float((seg["risk_band"] == "high").mean()), 4),
            "meanBasePrice": round(float(seg["base_price"].mean()), 2),
            "meanDynamicPrice": round(float(seg["dynamic_price"].mean()), 2),
        })
    return profiles


def model_metrics_document(
    scores: pd.DataFrame,
    as_of: dt.date,
    run_id: str,
    finished_at: dt.datetime,
    champions: dict[str, dict[str, Any]],
    settings: Settings,
) -> dict[str, Any]:
    bands = scores["risk_band"].value_counts()
    pricing = settings.pricing
    return {
        "asOf": as_of_instant(as_of),
        "runId": run_id,
        "lastGoodRunFinishedAt": finished_at,
        "customersScored": int(len(scores)),
        "riskBands": {
            "counts": {b: int(bands.get(b, 0)) for b in ("low", "medium", "high")},
            "mediumFrom": settings.churn.risk_band_medium,
            "highAbove": settings.churn.risk_band_high,
        },
        "models": champions,
        "segments": segment_profiles(scores),
        "pricing": {
            "formula": PRICING_FORMULA,
            "weights": pricing_weights(scores, settings),
            "minRatio": pricing.min_ratio,
            "maxRatio": pricing.max_ratio,
            "demand": round(float(scores["demand"].mean()), 4) if len(scores) else None,
            "currency": pricing.currency,
        },
    }


# --- reads and writes ------------------------------------------------------------------


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
) -> AppViewsResult:
    """propose_prices=False (a backfilled past night the app does not see): no proposal."""
    scores = pd.read_parquet(scores_file)
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
            weights = pricing_weights(scores, settings)
            proposal = proposal_document(
                changes, as_of, run_id, admin,
                now + dt.timedelta(days=publish.proposal_expiry_days), weights, versions,
                projected_impact,
            )
            proposal_id, note = upsert_proposal(db, proposal, now)

        crossings = high_risk_crossings(db, as_of)
        alerts = upsert_alerts(db, crossings, as_of, now)
        metrics_id = upsert_model_metrics(
            db, model_metrics_document(scores, as_of, run_id, now, champions, settings), now
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
) -> AppViewsResult:
    from prefect import get_run_logger
    from prefect.artifacts import create_markdown_artifact

    result = write_app_views(uri, settings, as_of, run_id, scores_file, run_started_at,
                             projected_impact=projected_impact, propose_prices=propose_prices)
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
