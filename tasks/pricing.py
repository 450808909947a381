"""Pricing tasks: elasticity from history, learned weights, A/B arms, fairness, audit log.

`price_customers_task` runs between scoring and publishing: it writes the night's
prices file beside the scores (one row per customer; publishing joins the two,
models/pricing_engine.py) and tracks the fit in MLflow (experiment "pricing").
`record_pricing_task` runs after a successful publish and appends the audit trail
and the admin views: `ml_pricing_log` (one document per priced customer), `ml_segments` (one per
segment per run, the admin pie chart) and `ml_demand_profile` (24 hours per run).
Each of those writes first removes the same run's documents, so a retried task
does not duplicate them.

`plan_anchors_task` runs before pricing: it records in `ml_price_anchors` the list
price of each plan the pipeline sees for the first time (never moved afterwards,
and kept when the lake is wiped) and returns every plan's band (models/plan_prices.py).
Customers are priced from the anchor, inside the band, per billing cycle.

The rules and the documents are models/pricing_engine.py's; this module does the I/O.
Pricing reads the lake bucket by bucket (bbx/lake/buckets.py), one bucket's raw
events in memory at a time: per bucket the per-customer pieces (price history,
segmentation features, users' city and birth date) and the bucket's share of the
network-wide sums (load per hour, first usage) are kept, then combined with
features/buckets.py, so the result is the whole-lake one (tests/test_partitions.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from bson import ObjectId
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pymongo.errors import PyMongoError

from bbx import lake
from bbx.lake import TABLES
from bbx.lake.buckets import LakePartitions, read_bucket
from bbx.lake.files import write_parquet as write_parquet_atomically
from bbx.lake.history import newest_copies, read_table
from bbx.mongo import MongoUnavailableError, connect, redact
from bbx.settings import Settings
from features.buckets import (
    combine_segmentation_features,
    first_usage,
    hourly_network_load,
    segmentation_population_terms,
)
from features.customer import LakeTables
from features.cutoffs import as_of_cutoff
from features.demand import hourly_profile_from_load
from features.price_history import price_response_history
from features.segmentation import build_segmentation_features
from models.ab import TREATMENT, assign_arms, fairness_report
from models.elasticity import ElasticityEstimate, estimate_segment_elasticity, estimates_table
from models.plan_prices import (
    AnchorOverride,
    PlanBand,
    customer_bands,
    paid_per_cycle,
    plan_bands,
)
from models.price_optimizer import WeightFit, fit_pricing_weights
from models.pricing import PricingWeights
from models.pricing_engine import (
    apply_prices,
    cohort_cutoff,
    demand_profile_documents,
    elasticity_rows,
    fairness_groups,
    fairness_warning,
    horizon_periods,
    price_table,
    pricing_book,
    pricing_log_documents,
    segment_documents,
    tracked_metrics,
    tracked_params,
    weights_text,
)
from tasks import registry
from tasks.publish import read_priced_scores

PRICING_LOG_COLLECTION = "ml_pricing_log"
SEGMENTS_COLLECTION = "ml_segments"
DEMAND_PROFILE_COLLECTION = "ml_demand_profile"
ANCHORS_COLLECTION = "ml_price_anchors"
PRICING_EXPERIMENT = "pricing"


@dataclass(frozen=True)
class PricingResult:
    path: str  # the prices file (user_id + models.pricing_engine.PRICE_COLUMNS)
    scores_path: str  # the scores it priced
    weights: dict[str, float]
    learned: bool
    revenue_uplift: float  # expected over the horizon, model-based (not a measurement)
    churn_static: float
    churn_dynamic: float
    treatment_customers: int
    control_customers: int
    fairness_flags: int
    elasticity: dict[str, float]
    segments: list[dict] = field(default_factory=list)  # ml_segments documents, minus ids
    demand_profile: list[dict] = field(default_factory=list)  # 24 rows
    mlflow_run_id: str = ""

    @property
    def projected_impact(self) -> dict[str, float | None] | None:
        """`pricingproposals.projectedImpact` from the fitted pricing model: expected over
        the pricing horizon, model-based (elasticity × calibrated churn), not a measurement.
        revenueChange in % of static revenue; churnReduction in percentage points;
        customersSaved among the treated customers. None when weights were not learned."""
        if not self.learned:
            return None
        saved_share = self.churn_static - self.churn_dynamic
        return {
            "revenueChange": round(100.0 * self.revenue_uplift, 2),
            "churnReduction": round(100.0 * saved_share, 2),
            "customersSaved": round(saved_share * self.treatment_customers),
        }


HISTORY_COLUMNS = ["segment_name", "plan_id", "base_price", "final_price",
                   "exposure_months", "churned"]


def _bucket_first_usage(partitions: LakePartitions, bucket: int) -> pd.Timestamp:
    """Earliest usage of one bucket, reading only the key and timestamp columns (the
    newest copy of each session, as `read_bucket` keeps it)."""
    path = partitions.bucket_paths(bucket)["usagelogs"]
    columns = [c for c in (TABLES["usagelogs"].key, "timestamp") if c in pq.read_schema(path).names]
    frame = pq.read_table(path, columns=columns).to_pandas()
    return first_usage(newest_copies("usagelogs", frame, partitions.overlapping["usagelogs"]))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-bucket per-customer frames as one, in user_id order (the whole-lake order)."""
    return pd.concat([f for f in frames if len(f)] or frames[:1]).sort_index()


@dataclass
class LakePieces:
    """What pricing keeps of the lake: per-customer rows and network-wide sums."""

    history: list[pd.DataFrame] = field(default_factory=list)
    cohort_features: list[pd.DataFrame] = field(default_factory=list)
    cohort_terms: list[pd.DataFrame] = field(default_factory=list)
    features: list[pd.DataFrame] = field(default_factory=list)
    terms: list[pd.DataFrame] = field(default_factory=list)
    users: list[pd.DataFrame] = field(default_factory=list)
    subscriptions: list[pd.DataFrame] = field(default_factory=list)
    hourly_load: np.ndarray = field(default_factory=lambda: np.zeros(24))

    def add(self, tables: LakeTables, cutoff: pd.Timestamp, cohort_cutoff: pd.Timestamp | None,
            customers: pd.Index, baseline_days: int,
            subscriptions: pd.Index | None = None) -> None:
        """One bucket's pieces (the follow-up of the cohort ends at `cutoff`)."""
        if cohort_cutoff is not None:
            self.history.append(price_response_history(tables, cohort_cutoff, cutoff))
            self.cohort_features.append(build_segmentation_features(tables, cohort_cutoff))
            self.cohort_terms.append(segmentation_population_terms(tables, cohort_cutoff))
        self.features.append(build_segmentation_features(tables, cutoff))
        self.terms.append(segmentation_population_terms(tables, cutoff))
        users = tables.users.drop_duplicates("user_id").set_index("user_id")
        self.users.append(users.loc[users.index.isin(customers), ["city", "date_of_birth"]])
        if subscriptions is not None:
            subs = tables.subscriptions.drop_duplicates("subscription_id", keep="last")
            subs = subs[subs["subscription_id"].astype(str).isin(subscriptions)]
            self.subscriptions.append(subs.set_index(subs["subscription_id"].astype(str))
                                      .reindex(columns=["final_price", "total_amount"]))
        self.hourly_load = self.hourly_load + hourly_network_load(tables.usagelogs, cutoff,
                                                                  baseline_days)


def _elasticity_history(pieces: LakePieces, segment_model) -> pd.DataFrame:
    """The cohort with its segment then and what followed (empty without a cohort)."""
    if not pieces.history:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    history = _concat(pieces.history)
    features = combine_segmentation_features(pieces.cohort_features, pieces.cohort_terms)
    segments = segment_model.assign(features)
    return history.join(segments[["segment_name"]], how="inner")


def anchor_overrides(settings: Settings) -> dict[str, AnchorOverride]:
    return {key: AnchorOverride(a.anchor, a.min_price, a.max_price)
            for key, a in settings.pricing.plan_anchors.items()}


@dataclass(frozen=True)
class PricedNight:
    """What pricing decided for a night's scores, before anything is written."""

    scores: pd.DataFrame  # the scores with bands, paid price, elasticity and prices
    weights: PricingWeights
    fit: WeightFit | None
    estimates: list[ElasticityEstimate]  # one per segment
    arms: np.ndarray
    fairness: pd.DataFrame
    hourly: pd.DataFrame
    segments: list[dict]


def price_from_pieces(settings: Settings, as_of: dt.date, scores: pd.DataFrame,
                      pieces: LakePieces, plans: pd.DataFrame,
                      bands: Mapping[str, PlanBand] | None, segment_model) -> PricedNight:
    """Price the scores from what was kept of the lake (`pieces`, however it was read):
    elasticity per segment, learned weights, prices and arms, fairness, demand by hour
    and segment profiles. No I/O."""
    p = settings.pricing
    # The band each plan's prices keep to, and what each customer pays per cycle today.
    if bands is None:
        bands = plan_bands(plans, {}, anchor_overrides(settings), p.min_ratio, p.max_ratio)
    scores = customer_bands(scores, bands, plans)
    scores["paid_price"] = paid_per_cycle(scores, pieces.subscriptions)

    # 1. Elasticity per segment: the data where it speaks, the paper's prior where not.
    history = _elasticity_history(pieces, segment_model)
    estimates = estimate_segment_elasticity(
        history, segment_model.elasticity, settings.segmentation.elasticity_prior_sd,
        p.horizon_months, settings.segmentation.elasticity_min_customers,
        settings.segmentation.elasticity_ceiling,
    )
    posterior = {e.segment: e.posterior for e in estimates}
    scores["elasticity"] = scores["segment_name"].map(posterior).fillna(scores["elasticity"])

    # 2. Weights: learned to maximise horizon revenue under the bounds and churn ceiling.
    book = pricing_book(scores)
    fit: WeightFit | None = None
    weights = PricingWeights(p.alpha, p.beta, p.gamma)
    if p.learn_weights and len(scores):
        periods = horizon_periods(p.horizon_months, settings.churn.horizon_days)
        fit = fit_pricing_weights(book, p.min_ratio, p.max_ratio, periods,
                                  p.weight_bounds, p.churn_ceiling, p.seed)
        weights = fit.weights

    # 3. Prices (monthly, from the anchor, in the band), terms, arms: control always
    # pays the static price (the list price, held to the band). Then per billing cycle.
    arms = assign_arms(scores["user_id"].astype(str), p.experiment, p.treatment_share)
    formula = apply_prices(scores, book, weights, arms, p.experiment, p.min_ratio, p.max_ratio)

    # 4. Fairness: what the dynamic formula does to each city and age band.
    groups = fairness_groups(scores["user_id"], _concat(pieces.users), as_of, p.age_band_edges)
    ratio = pd.Series(formula / book.anchor, index=groups.index)
    fairness = fairness_report(ratio, groups, p.fairness_max_gap, p.fairness_min_group)

    # 5. Demand by hour and segment profiles for the admin screens.
    hourly = hourly_profile_from_load(pieces.hourly_load, p.demand_baseline_days)
    features = combine_segmentation_features(pieces.features, pieces.terms)
    return PricedNight(scores, weights, fit, estimates, arms, fairness, hourly,
                       segment_documents(features, scores, as_of))


def add_lake_pieces(pieces: LakePieces, tables: LakeTables, settings: Settings,
                    as_of: dt.date, first_seen: pd.Timestamp, scores: pd.DataFrame) -> None:
    """Add one part of the lake (a bucket, or the whole lake) to `pieces`; `first_seen` is
    the whole lake's first usage (the cohort's start depends on it)."""
    cutoff = as_of_cutoff(as_of)
    cohort = cohort_cutoff(cutoff, first_seen, settings.segmentation.elasticity_followup_days)
    subscriptions = (pd.Index(scores["subscription_id"].astype(str))
                     if "subscription_id" in scores.columns else None)
    pieces.add(tables, cutoff, cohort, pd.Index(scores["user_id"].astype(str)),
               settings.pricing.demand_baseline_days, subscriptions)


def price_scores(settings: Settings, as_of: dt.date, partitions: LakePartitions,
                 scores_file: str, bands: Mapping[str, PlanBand] | None = None,
                 segment_version: str | None = None,
                 prices_file: str | None = None) -> PricingResult:
    """`bands` from plan_anchors_task; None: bands from the settings' anchors, else
    around tonight's list price (anchor source "list": nothing recorded).
    `segment_version`: the segmentation version the scores used (default @champion).
    `prices_file`: where the prices go (default `prices_path`)."""
    p = settings.pricing
    scores = pd.read_parquet(scores_file)
    registry.configure(settings, registry.SEGMENT_MODEL)
    if segment_version is None:
        segment_model, _ = registry.load_by_alias(registry.SEGMENT_MODEL)
    else:
        segment_model = registry.load_version(registry.SEGMENT_MODEL, segment_version)

    # The lake bucket by bucket (one bucket's raw events in memory at a time); the
    # cohort cutoff needs the first usage over all buckets first (a key+timestamp pass).
    first_seen = pd.Series([_bucket_first_usage(partitions, b)
                            for b in range(partitions.buckets)]).min()
    pieces = LakePieces()
    for b in range(partitions.buckets):
        add_lake_pieces(pieces, read_bucket(partitions, b), settings, as_of, first_seen, scores)
    plans = read_table("plans", partitions.shared["plans"])
    night = price_from_pieces(settings, as_of, scores, pieces, plans, bands, segment_model)

    prices = Path(prices_file) if prices_file else lake.prices_path(settings.lake_dir, as_of)
    write_parquet_atomically(pa.Table.from_pandas(price_table(night.scores),
                                                  preserve_index=False), prices)
    weights, fit, arms = night.weights, night.fit, night.arms
    run_id = _track(settings, as_of, weights, fit, night.estimates, night.fairness,
                    night.hourly, arms)
    _artifacts(as_of, weights, fit, night.estimates, night.fairness, p.fairness_max_gap)
    return PricingResult(
        path=str(prices),
        scores_path=scores_file,
        weights={k: float(v) for k, v in asdict(weights).items()},
        learned=fit is not None,
        revenue_uplift=float(fit.revenue_uplift) if fit else 0.0,
        churn_static=float(fit.churn_static) if fit else float("nan"),
        churn_dynamic=float(fit.churn_dynamic) if fit else float("nan"),
        treatment_customers=int((arms == TREATMENT).sum()),
        control_customers=int((arms != TREATMENT).sum()),
        fairness_flags=int(night.fairness["flagged"].sum()),
        elasticity={e.segment: e.posterior for e in night.estimates},
        segments=night.segments,
        demand_profile=demand_profile_documents(night.hourly),
        mlflow_run_id=run_id,
    )


def _track(settings: Settings, as_of: dt.date, weights: PricingWeights, fit: WeightFit | None,
           estimates, fairness: pd.DataFrame, hourly: pd.DataFrame, arms: np.ndarray) -> str:
    p = settings.pricing
    registry.configure(settings, PRICING_EXPERIMENT)
    with mlflow.start_run(run_name=f"pricing-{as_of.isoformat()}") as run:
        mlflow.log_params(tracked_params(
            p.learn_weights, p.horizon_months, p.churn_ceiling, p.min_ratio, p.max_ratio,
            p.weight_bounds, p.experiment, p.treatment_share,
            settings.segmentation.elasticity_prior_sd))
        mlflow.log_metrics(tracked_metrics(weights, fit, estimates, fairness, arms))
        mlflow.log_table(estimates_table(estimates).reset_index(), "elasticity_estimates.json")
        mlflow.log_table(fairness, "fairness_report.json")
        mlflow.log_table(hourly.reset_index(), "demand_by_hour.json")
        if fairness["flagged"].any():
            mlflow.log_text(fairness_warning(fairness, p.fairness_max_gap), "FAIRNESS_WARNING.md")
        return run.info.run_id


def _artifacts(as_of: dt.date, weights: PricingWeights, fit: WeightFit | None, estimates,
               fairness: pd.DataFrame, max_gap: float) -> None:
    create_table_artifact(
        elasticity_rows(estimates),
        key="pricing-elasticity",
        description=f"Price elasticity per segment, as-of {as_of}: the prior, the data's "
                    "estimate and the posterior used for pricing",
    )
    create_markdown_artifact(
        weights_text(as_of, weights, fit),
        key="pricing-weights",
        description=f"Dynamic price weights for {as_of} (demand α, elasticity β, risk γ)",
    )
    if fairness["flagged"].any():
        create_markdown_artifact(fairness_warning(fairness, max_gap),
                                 key="pricing-fairness-warning",
                                 description=f"Groups priced unusually for {as_of}")


@task(name="price", cache_policy=NONE)  # tracks a new MLflow run each time: never cached
def price_customers_task(settings: Settings, as_of: dt.date, partitions: LakePartitions,
                         scores_file: str,
                         bands: Mapping[str, PlanBand] | None = None,
                         segment_version: str | None = None,
                         prices_file: str | None = None) -> PricingResult:
    return price_scores(settings, as_of, partitions, scores_file, bands, segment_version,
                        prices_file)


def record_plan_anchors(uri: str, settings: Settings, as_of: dt.date, plans_path: str,
                        run_id: str, record: bool = True) -> dict[str, PlanBand]:
    """Record the list price of every plan seen for the first time (insert-only: an
    anchor once recorded is never moved by the pipeline), then every plan's band.
    record=False (a dry run writes nothing to MongoDB): read the recorded anchors only;
    a plan without one is banded around tonight's list price."""
    plans = read_table("plans", plans_path).drop_duplicates("plan_id")
    now = dt.datetime.now(dt.UTC)
    client = connect(uri, settings)
    try:
        collection = client[settings.mongo.database][ANCHORS_COLLECTION]
        if record:
            collection.create_index([("planId", 1)], unique=True, name="planId_unique")
        for plan in plans.itertuples(index=False) if record else ():
            monthly = float(plan.monthly_price)
            if not np.isfinite(monthly) or monthly <= 0:
                continue  # nothing to anchor on; scoring refuses its customers
            yearly = float(getattr(plan, "yearly_price", np.nan))
            collection.update_one(
                {"planId": ObjectId(str(plan.plan_id))},
                {"$setOnInsert": {
                    "planName": str(plan.plan_name), "monthly": monthly,
                    "yearly": yearly if np.isfinite(yearly) and yearly > 0 else None,
                    "currency": settings.pricing.currency,
                    "firstSeenAt": now, "firstSeenAsOf": dt.datetime.combine(
                        as_of, dt.time(), tzinfo=dt.UTC), "firstSeenRunId": run_id}},
                upsert=True,
            )
        recorded = {str(d["planId"]): {"monthly": d.get("monthly"), "yearly": d.get("yearly")}
                    for d in collection.find({}, {"planId": 1, "monthly": 1, "yearly": 1})}
    except PyMongoError as exc:
        raise MongoUnavailableError(
            f"plan anchors on {redact(uri)} failed: {type(exc).__name__}") from None
    finally:
        client.close()
    p = settings.pricing
    return plan_bands(plans, recorded, anchor_overrides(settings), p.min_ratio, p.max_ratio)


@task(name="plan-anchors", cache_policy=NONE)  # reads what the database holds tonight
def plan_anchors_task(uri: str, settings: Settings, as_of: dt.date, plans_path: str,
                      run_id: str, record: bool = True) -> dict[str, PlanBand]:
    bands = record_plan_anchors(uri, settings, as_of, plans_path, run_id, record)
    create_table_artifact(
        [{"plan": b.plan_name or b.plan_id, "anchor ₹": f"{b.anchor:,.0f}",
          "band ₹": f"{b.low:,.0f} – {b.high:,.0f}", "anchor from": b.source,
          "yearly / 12 × monthly": round(b.yearly_factor, 3)}
         for b in bands.values()],
        key="pricing-bands", description=f"Plan price bands, as-of {as_of}",
    )
    return bands


def record_pricing(uri: str, settings: Settings, as_of: dt.date, run_id: str,
                   priced: PricingResult) -> dict[str, int]:
    scores = read_priced_scores(priced.scores_path, priced.path)
    now = dt.datetime.now(dt.UTC)
    as_of_instant = dt.datetime.combine(as_of, dt.time(), tzinfo=dt.UTC)
    batches = {
        PRICING_LOG_COLLECTION: [
            d | {"userId": ObjectId(d["userId"]), "planId": ObjectId(d["planId"])}
            for d in pricing_log_documents(scores, as_of, run_id, now, priced.mlflow_run_id)],
        SEGMENTS_COLLECTION: [d | {"runId": run_id, "createdAt": now} for d in priced.segments],
        DEMAND_PROFILE_COLLECTION: [d | {"asOf": as_of_instant, "runId": run_id,
                                         "createdAt": now} for d in priced.demand_profile],
    }
    client = connect(uri, settings)
    try:
        db = client[settings.mongo.database]
        written = {}
        for collection, documents in batches.items():
            db[collection].delete_many({"runId": run_id})  # a retry replaces, never duplicates
            for start in range(0, len(documents), settings.mongo.batch_size):
                db[collection].insert_many(documents[start: start + settings.mongo.batch_size],
                                           ordered=False)
            written[collection] = len(documents)
        db[PRICING_LOG_COLLECTION].create_index([("userId", 1), ("asOf", -1)])
        db[SEGMENTS_COLLECTION].create_index([("asOf", -1)])
    except PyMongoError as exc:
        raise MongoUnavailableError(
            f"pricing records to {redact(uri)} failed: {type(exc).__name__}"
        ) from None
    finally:
        client.close()
    return written


@task(name="record-pricing", cache_policy=NONE)
def record_pricing_task(uri: str, settings: Settings, as_of: dt.date, run_id: str,
                        priced: PricingResult) -> dict[str, int]:
    return record_pricing(uri, settings, as_of, run_id, priced)
