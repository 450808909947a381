"""The one typed settings object.

Precedence, highest first: explicit overrides (CLI flags, flow parameters) >
environment (`MONGODB_URI`, `BBX_*`, nested with `__`, e.g.
`BBX_CHURN__HORIZON_DAYS=60`) > the file named by `BBX_CONFIG` (any subset of
keys) > `configs/default.yaml`. The fields below carry types, bounds and meaning
but no default values: `configs/default.yaml` is the one place a default is
written, and a missing key there is a validation error, not a silent fallback.
Nothing here touches disk or network at import time; `load_settings()` reads the
YAML when called.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


def redact_uri(uri: str | None) -> str | None:
    """The URI with its password replaced by ***: what a log, a report or the Prefect UI
    (which stores a flow run's parameters as JSON) may show."""
    return uri if uri is None else re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", uri)


class _Section(BaseModel):
    # A misspelt or retired key (in a YAML file or a BBX_* variable) is an error, not ignored.
    model_config = ConfigDict(extra="forbid")


class MongoSettings(_Section):
    uri: str | None = Field(
        description="Production MongoDB URI. Empty: start the embedded SecantusDB server.",
    )
    database: str
    server_selection_timeout_ms: int = Field(ge=100)
    retries: int = Field(ge=0, description="Retries of a Mongo task before it fails.")
    retry_backoff_seconds: float = Field(ge=0)
    embedded_storage: str = Field(
        description="Embedded server data folder, relative to home; ':memory:' for throwaway.",
    )
    batch_size: int = Field(ge=1000, description="Documents per write batch.")

    @field_serializer("uri", when_used="json")
    def _redacted(self, uri: str | None) -> str | None:
        # JSON is how Prefect stores a subflow's parameters: the password never reaches it.
        return redact_uri(uri)


class ChurnSettings(_Section):
    horizon_days: int = Field(ge=1, description="Label: churn within this many days.")
    definition: Literal["cancelled", "cancelled_or_nonrenewal"] = Field(
        description=(
            "cancelled: only subscriptions the customer/admin cancelled count as churn. "
            "cancelled_or_nonrenewal: also grace_period/suspended/expired non-renewals."
        ),
    )
    training_cutoffs: int = Field(
        ge=1,
        description="Training cutoffs, cutoff_spacing_days apart (ending one horizon before "
        "as-of).",
    )
    cutoff_spacing_days: int = Field(
        ge=1,
        description="Days between training cutoffs. Weekly (closer than the horizon) lets the "
        "model see leavers' wind-downs at every stage, not only where a monthly one falls.",
    )
    cutoff_candidates: list[tuple[int, int]] = Field(
        description="(count, every): candidate training sets of `count` built cutoffs before "
        "the latest labelled one, every `every`-th; the one whose booster ranks the latest "
        "labelled cutoff best (out of time) is trained on.",
    )
    partly_labelled_cutoffs: bool = Field(
        description="Also train on the cutoffs after the latest labelled one, "
        "cutoff_spacing_days apart, whose label window has happened for at least that many "
        "days: labelled over those days, with the window's share of the horizon as an offset "
        "(features/cutoffs.py). They carry the newest leavers and the most usage history.",
    )
    refit_with_latest_cutoff: bool = Field(
        description="After the calibration is fitted on the latest labelled cutoff (on "
        "boosters that never saw it), refit the winning booster with the train customers' "
        "rows at that cutoff added, and keep the calibration. The test customers there "
        "are still never trained on; the headline is the refitted model's.",
    )
    risk_score_horizon_days: int = Field(
        ge=1,
        description="riskScore = chance (0..100) of leaving within this many days at the "
        "customer's current hazard; churnProbability stays the horizon_days probability.",
    )
    risk_band_medium: float = Field(ge=0, le=100)
    risk_band_high: float = Field(ge=0, le=100)
    n_estimators: int = Field(ge=10)
    max_depth: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    subsample: float = Field(gt=0, le=1)
    colsample_bytree: float = Field(gt=0, le=1)
    min_child_weight: float = Field(
        ge=0, description="Least hessian weight in a leaf: larger keeps rare patterns out.")
    early_stopping_rounds: int = Field(ge=1)
    threads: int = Field(
        ge=0, description="CPU threads XGBoost trains with; 0: every core of the machine.")
    validation_share: float = Field(
        gt=0, lt=0.5, description="Share of customers held out for validation."
    )
    test_share: float = Field(
        gt=0, lt=0.5,
        description="Share of customers held out for the test (scored at the latest cutoffs).",
    )
    test_cutoffs: int = Field(
        ge=1,
        description="The latest training cutoffs form the out-of-time test (test customers "
        "only); earlier cutoffs feed train/validation.",
    )
    tuning_trials: int = Field(
        ge=1,
        description="Random-search budget: XGBoost configurations tried (early-stopped on "
        "validation); 1 = only the parameters above.",
    )
    baseline_max_rows: int = Field(
        ge=1000,
        description="The logistic-regression baseline is fitted on at most this many "
        "training rows (a seeded draw); it is a yardstick, and all rows cost memory.",
    )
    promotion_metric: Literal["pr_auc", "roc_auc", "f1"] = Field(
        description="A challenger becomes champion only if it beats the champion on this "
        "test metric (both scored on the same held-out rows).",
    )
    promotion_brier_tolerance: float = Field(
        ge=0, description="Largest Brier-score increase a promotion may bring."
    )
    promotion_ece_tolerance: float = Field(
        ge=0,
        description="Largest expected-calibration-error increase a promotion may bring.",
    )
    retrain_every_days: int = Field(
        ge=1,
        description="The nightly run retrains when the last training is this old (or forced).",
    )
    reasons_per_customer: int = Field(
        ge=1, le=10, description="churnReasons published per customer."
    )
    seed: int

    @model_validator(mode="after")
    def _bands_ordered(self) -> ChurnSettings:
        if self.risk_band_medium > self.risk_band_high:
            raise ValueError("churn.risk_band_medium must not exceed churn.risk_band_high")
        return self


class SegmentationSettings(_Section):
    k: int = Field(ge=2)
    seed: int
    elasticity_prior: dict[str, float] = Field(
        description="Price elasticity per named segment before the data speaks (the paper's "
        "Table III); estimates shrink towards it.",
    )
    clustering_weights: dict[str, float] = Field(
        description="Segmentation feature -> weight after robust scaling (0 or absent: kept "
        "for profiles, not clustered). Usage and price weigh most: they are what tell the "
        "paper's segments apart; peak share, devices, yearly billing, logins and activity "
        "separate Value-Seekers from Budget Users; tenure is noise for segments. Chosen by "
        "adjusted Rand index against the simulator's latent segments on three simulated "
        "books (seeds 11, 23, 42; 3k-10k customers, 180-365 days).",
    )
    log_features: list[str] = Field(
        description="Features taken as log1p before scaling (skewed volumes, prices, rates).",
    )
    k_sweep: list[int] = Field(
        description="k values whose silhouette is logged with each segmentation run.",
    )
    silhouette_sample: int = Field(ge=100, description="Customers per silhouette.")
    elasticity_prior_sd: float = Field(
        gt=0,
        description="Prior standard deviation around each Table III elasticity: how far the "
        "data must pull to move an estimate (normal-normal shrinkage).",
    )
    elasticity_min_customers: int = Field(
        ge=1, description="Below this many customers a segment keeps its prior."
    )
    elasticity_ceiling: float = Field(
        le=0,
        description="Highest elasticity an estimate may take: the data cannot make a price "
        "rise attract customers (a positive estimate is noise or confounding).",
    )
    elasticity_followup_days: int = Field(
        ge=7,
        description="Elasticity follows the cohort live this many days before as-of to as-of "
        "(later if the lake lacks the 90 days of history its segments need).",
    )


class PlanAnchorSettings(_Section):
    """An admin-owned anchor for one plan (monthly, in the plan's currency)."""

    anchor: float = Field(gt=0, description="The plan's anchor monthly price (P_base).")
    min_price: float | None = Field(
        default=None, ge=0, description="Lowest monthly price; empty: anchor × min_ratio.")
    max_price: float | None = Field(
        default=None, gt=0, description="Highest monthly price; empty: anchor × max_ratio.")

    @model_validator(mode="after")
    def _ordered(self) -> PlanAnchorSettings:
        low = self.min_price if self.min_price is not None else self.anchor
        high = self.max_price if self.max_price is not None else self.anchor
        if not low <= self.anchor <= high:
            raise ValueError("a plan anchor must satisfy min_price <= anchor <= max_price")
        return self


class PricingSettings(_Section):
    """P = P_base × (1 + α·D + β·E + γ·R), clamped to the plan's band around its anchor:
    [min_ratio, max_ratio] × anchor, or a plan's own bounds in `plan_anchors`."""

    alpha: float = Field(description="Weight of demand D (0..1).")
    beta: float = Field(description="Weight of elasticity E (negative number).")
    gamma: float = Field(description="Weight of churn risk R (0..1).")
    min_ratio: float = Field(gt=0)
    max_ratio: float = Field(gt=0)
    plan_anchors: dict[str, PlanAnchorSettings] = Field(
        description="Per plan (key: plan name or plan id) an anchor and optional bounds the "
        "admin owns; they win over the anchor the pipeline recorded when it first saw the "
        "plan (collection ml_price_anchors).",
    )
    proposal_cooldown_days: float = Field(
        ge=0,
        description="No new price proposal for a plan this many days after one of its "
        "proposals was applied (one billing cycle, so the change shows in renewals first).",
    )
    currency: str
    demand_window_days: int = Field(ge=1, description="Recent load window for D.")
    demand_baseline_days: int = Field(ge=7, description="Window D is normalised on.")
    learn_weights: bool = Field(
        description="Fit α, β, γ each run (maximise horizon revenue under the bounds and the "
        "churn ceiling); false: use alpha/beta/gamma above as they are.",
    )
    horizon_months: int = Field(ge=1, description="Revenue horizon of the fit.")
    churn_ceiling: float | None = Field(
        ge=0, le=1,
        description="Highest expected churn share over the horizon the fit may accept; "
        "empty: the churn the static prices would give (never lose more customers).",
    )
    weight_bounds: dict[str, tuple[float, float]] = Field(
        description="Search box of the fitted weights. γ ≤ 0 is a policy, not a fit: a "
        "customer is never charged more for being likely to leave (unbounded, the fit did "
        "that on a simulated book when its elasticities said churn barely responds).",
    )
    experiment: str = Field(description="A/B experiment name.")
    treatment_share: float = Field(
        ge=0, le=1, description="Share of customers in the dynamic-price arm."
    )
    fairness_max_gap: float = Field(
        ge=0,
        description="Warn when a city's or age band's mean dynamic/base ratio differs from "
        "the overall by more than this.",
    )
    fairness_min_group: int = Field(ge=1, description="Smaller groups not judged.")
    age_band_edges: list[int] = Field(
        description="Age band boundaries, years."
    )
    seed: int

    @model_validator(mode="after")
    def _bounds_ordered(self) -> PricingSettings:
        if self.min_ratio > 1.0 or self.max_ratio < 1.0:
            raise ValueError("pricing bounds must satisfy min_ratio <= 1 <= max_ratio")
        return self


class ExtractSettings(_Section):
    """How the app's collections are copied into the lake (tasks/extract.py)."""

    overlap_hours: float = Field(
        ge=0,
        description="Incremental extracts re-read this far before the stored watermark, so "
        "late-arriving events are caught; the overlap is de-duplicated by key.",
    )
    full_refresh_days: int = Field(
        ge=0,
        description="Read a collection in full when its last full read is this many days "
        "old (0: only the first run). Append-only collections: bounds the partitions a read "
        "spans and catches documents whose time field was missing or malformed. Users and "
        "subscriptions: between full reads only the documents whose updatedAt is after the "
        "previous snapshot's watermark (minus the overlap) are read and merged onto it by "
        "key; the full read drops deleted documents and repairs anything an increment missed.",
    )
    batch_rows: int = Field(
        ge=100,
        description="Documents per cursor batch; memory is bounded by one batch, not the "
        "collection.",
    )
    retries: int = Field(ge=0, description="Retries of a failed collection read.")
    retry_backoff_seconds: float = Field(
        ge=0, description="First retry delay; doubles each retry."
    )


class ValidationSettings(_Section):
    max_quarantine_share: float = Field(ge=0, le=1)
    freshness_max_lag_hours: float = Field(
        gt=0,
        description="The newest event of a time-critical collection (suite expectations with "
        "$PARAMETER fresh_since) must be at most this old at the end of the as-of day.",
    )
    volume_tolerance: float = Field(
        ge=0,
        description="Warn when rows (snapshots) or new rows per day (append-only) differ from "
        "the previous validated run by more than this share.",
    )
    data_docs_listed_results: int = Field(
        ge=1,
        description="GX's Data Docs index lists the newest this many validation results "
        "(about ten a night); older pages stay in the site, linked from their night's report. "
        "Every table's Checkpoint rebuilds the index, reading each listed result.",
    )


class PublishSettings(_Section):
    """What the nightly run writes for the app besides the per-customer scores."""

    proposal_expiry_days: int = Field(
        ge=1,
        description="pricingproposals.expiresAt = publish time + this many days (the app's "
        "TTL index deletes the proposal then).",
    )
    proposal_min_change_percent: float = Field(
        ge=0,
        description="A plan enters a pricing proposal only if its proposed price moves at "
        "least this much (percent of the plan's monthly price).",
    )
    proposal_admin_email: str | None = Field(
        description="Email of the admin user named as pricingproposals.createdBy; empty: the "
        "earliest admin (role admin) in users.",
    )
    top_at_risk: int = Field(
        ge=1, le=100,
        description="churnscanhistories.topAtRiskCustomers length (the app shows ten).",
    )
    alert_event_max_users: int = Field(
        ge=0,
        description="userIds listed in one high-risk-crossing Prefect event's payload.",
    )
    swap_method: Literal["auto", "rename", "transaction"] = Field(
        description="How tonight's scores replace ml_customer_scores. rename: staging "
        "collection + renameCollection(dropTarget) (MongoDB). transaction: one multi-"
        "document transaction (the embedded SecantusDB, whose rename is a copy that a "
        "crash can interrupt). auto: transaction on SecantusDB, rename elsewhere.",
    )


class ScheduleSettings(_Section):
    """When the deployments run (read by `bbx up` when it deploys prefect.yaml)."""

    timezone: str = Field(description="Timezone of every cron below.")
    nightly_cron: str = Field(
        description="The nightly run; it retrains when churn.retrain_every_days is reached.")
    work_pool: str = Field(description="The process work pool.")


class ReportsSettings(_Section):
    """Where a browser opens the reports a run links to (`bbx up` serves and sets these)."""

    data_docs_url: str | None = Field(
        description="HTTP root serving home/data_docs; empty = links are file:// paths.",
    )
    mlflow_ui_url: str | None = Field(
        description="An MLflow UI on this home's store; empty = no links.")
    data_docs_port: int = Field(description="`bbx up`: the Data Docs server.")
    mlflow_port: int = Field(description="`bbx up`: the MLflow UI.")


class SimulationSettings(_Section):
    customers: int = Field(ge=1)
    days: int = Field(ge=1)
    seed: int
    sessions_per_day: float = Field(gt=0, description="Mean usage sessions/day.")
    annual_churn: float = Field(ge=0, lt=1)
    future_days: int = Field(
        ge=0,
        description="Days simulated after the written history; their outcomes go only to "
        "the truth, so `bbx evaluate` can judge today's scores (>= 42 for the as-of "
        "after the history: 30-day horizon plus the longest wind-down).",
    )
    dirty: bool = Field(
        description="Inject the app's usual dirt (counted in the report)."
    )
    scenario: Literal["default", "contract-driven", "short-history", "drift"] = Field(
        description="Churn population (simulator/scenarios.py): default; contract-driven "
        "(hazard from what the documents show, no wind-down); short-history (usage logs "
        "and logins only for the last history_days days); drift (one segment's hazard "
        "rises inside the history).",
    )
    history_days: int = Field(
        ge=1, description="short-history: days of usage logs and logins kept."
    )


class ScaleSettings(_Section):
    """Customers in hash buckets, and where the buckets run (docs/scale-out.md)."""

    buckets: int | None = Field(
        ge=1, le=999,
        description="Hash buckets of customers: features and scoring hold one bucket's raw "
        "events in memory at a time. None: one bucket per customers_per_bucket users.",
    )
    customers_per_bucket: int = Field(
        ge=1,
        description="Users per bucket when `buckets` is not set (the count follows the "
        "customer base, so a bucket's memory and time stay the same as it grows).",
    )
    dask_address: str | None = Field(
        description="Dask scheduler (e.g. tcp://10.0.0.5:8786): buckets run on that cluster "
        "through prefect-dask and the churn model trains with xgboost.dask. None: locally.",
    )
    keep_idle_splits_hours: float = Field(
        ge=0,
        description="A new split removes earlier nights' bucket splits that no run has used "
        "for this long; a backfill running beside the nightly keeps the split it reads.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BBX_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    home: Path = Field(
        description="Lake, MLflow store, data docs and embedded Mongo data live here.",
    )
    as_of: dt.date | None = Field(description="Scoring date; empty means today.")
    dry_run_id: str | None = Field(
        description="Set for a dry run (by the flow): its lake and Data Docs go under "
        "dry-runs/<id>, so the lake's validated state that later nights read is untouched.",
    )
    mongo: MongoSettings
    churn: ChurnSettings
    segmentation: SegmentationSettings
    pricing: PricingSettings
    extract: ExtractSettings
    validation: ValidationSettings
    simulation: SimulationSettings
    publish: PublishSettings
    schedule: ScheduleSettings
    scale: ScaleSettings
    reports: ReportsSettings

    mongodb_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MONGODB_URI", "mongodb_uri"),
        exclude=True,
        description="Shortcut for mongo.uri read from the MONGODB_URI variable.",
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value if value.is_absolute() else (PROJECT_ROOT / value)

    @model_validator(mode="after")
    def _apply_uri_shortcut(self) -> Settings:
        if self.mongodb_uri and not self.mongo.uri:
            self.mongo.uri = self.mongodb_uri
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The defaults first, then an operator's file on top of them (later files win).
        config_files = [DEFAULT_CONFIG]
        if os.environ.get("BBX_CONFIG"):
            config_files.append(Path(os.environ["BBX_CONFIG"]))
        yaml_settings = YamlConfigSettingsSource(settings_cls, yaml_file=config_files,
                                                 deep_merge=True)
        return init_settings, env_settings, yaml_settings

    # Derived locations: one place that says where things live under home.
    @property
    def lake_dir(self) -> Path:
        if self.dry_run_id:
            return self.home / "dry-runs" / self.dry_run_id / "lake"
        return self.home / "lake"

    @property
    def live_lake_dir(self) -> Path:
        """The lake the nights build on (a dry run reads it but writes elsewhere)."""
        return self.home / "lake"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def data_docs_dir(self) -> Path:
        if self.dry_run_id:
            return self.home / "data_docs" / "dry-runs" / self.dry_run_id
        return self.home / "data_docs"

    @property
    def gx_dir(self) -> Path:
        """Great Expectations' stores (the validation results the Data Docs index lists)."""
        if self.dry_run_id:
            return self.home / "dry-runs" / self.dry_run_id / "gx"
        return self.home / "gx"

    @property
    def data_docs_root(self) -> Path:
        """What `bbx up` serves over HTTP (every night's and every dry run's pages)."""
        return self.home / "data_docs"

    def resolved_as_of(self) -> dt.date:
        return self.as_of or dt.datetime.now(dt.UTC).date()


def load_settings(**overrides: Any) -> Settings:
    """Build settings; `overrides` (nested dicts allowed) win over env and YAML.

    Nested overrides merge into their section (pydantic-settings deep-merges its
    sources), so `churn={"seed": 1}` changes one key. None values are ignored so CLI
    flags that were not given do not erase config.
    """
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
