"""The one typed settings object.

Precedence, highest first: explicit overrides (CLI flags, flow parameters) >
environment (`MONGODB_URI`, `BBX_*`, nested with `__`, e.g.
`BBX_CHURN__HORIZON_DAYS=60`) > `configs/default.yaml` (or the file named by
`BBX_CONFIG`) > the defaults below. Nothing here touches disk or network at
import time; `load_settings()` reads the YAML when called.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"


class MongoSettings(BaseModel):
    uri: str | None = Field(
        default=None,
        description="Production MongoDB URI. Empty: start the embedded SecantusDB server.",
    )
    database: str = "broadbandx"
    server_selection_timeout_ms: int = Field(default=5000, ge=100)
    retries: int = Field(default=3, ge=0, description="Retries of a Mongo task before it fails.")
    retry_backoff_seconds: float = Field(default=2.0, ge=0)
    embedded_storage: str = Field(
        default="mongo",
        description="Embedded server data folder, relative to home; ':memory:' for throwaway.",
    )
    batch_size: int = Field(default=50_000, ge=1000, description="Documents per write batch.")


class ChurnSettings(BaseModel):
    horizon_days: int = Field(default=30, ge=1, description="Label: churn within this many days.")
    definition: Literal["cancelled", "cancelled_or_nonrenewal"] = Field(
        default="cancelled",
        description=(
            "cancelled: only subscriptions the customer/admin cancelled count as churn. "
            "cancelled_or_nonrenewal: also grace_period/suspended/expired non-renewals."
        ),
    )
    training_cutoffs: int = Field(
        default=4, ge=1, description="Monthly cutoffs (ending one horizon before as-of)."
    )
    risk_score_horizon_days: int = Field(
        default=365,
        ge=1,
        description="riskScore = chance (0..100) of leaving within this many days at the "
        "customer's current hazard; churnProbability stays the horizon_days probability.",
    )
    risk_band_medium: float = Field(default=40.0, ge=0, le=100)
    risk_band_high: float = Field(default=70.0, ge=0, le=100)
    n_estimators: int = Field(default=300, ge=10)
    max_depth: int = Field(default=4, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    subsample: float = Field(default=0.9, gt=0, le=1)
    colsample_bytree: float = Field(default=0.9, gt=0, le=1)
    early_stopping_rounds: int = Field(default=30, ge=1)
    validation_share: float = Field(default=0.2, gt=0, lt=0.5)
    seed: int = 7

    @model_validator(mode="after")
    def _bands_ordered(self) -> ChurnSettings:
        if self.risk_band_medium > self.risk_band_high:
            raise ValueError("churn.risk_band_medium must not exceed churn.risk_band_high")
        return self


class SegmentationSettings(BaseModel):
    k: int = Field(default=5, ge=2)
    seed: int = 7
    # The paper's Table III: elasticity per named segment, used as the prior.
    elasticity_prior: dict[str, float] = Field(
        default_factory=lambda: {
            "Premium Power Users": -0.3,
            "Price-Conscious Power": -1.8,
            "Value-Seekers": -1.2,
            "Budget Users": -2.0,
            "Casual Premium": -0.5,
        }
    )


class PricingSettings(BaseModel):
    """P = P_base × (1 + α·D + β·E + γ·R), clamped to [min_ratio, max_ratio] × P_base."""

    alpha: float = Field(default=0.10, description="Weight of demand D (0..1).")
    beta: float = Field(default=0.05, description="Weight of elasticity E (negative number).")
    gamma: float = Field(default=-0.15, description="Weight of churn risk R (0..1).")
    min_ratio: float = Field(default=0.8, gt=0)
    max_ratio: float = Field(default=1.2, gt=0)
    currency: str = "INR"
    demand_window_days: int = Field(default=7, ge=1, description="Recent load window for D.")
    demand_baseline_days: int = Field(default=90, ge=7, description="Window D is normalised on.")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> PricingSettings:
        if self.min_ratio > 1.0 or self.max_ratio < 1.0:
            raise ValueError("pricing bounds must satisfy min_ratio <= 1 <= max_ratio")
        return self


class ValidationSettings(BaseModel):
    max_quarantine_share: float = Field(default=0.01, ge=0, le=1)


class SimulationSettings(BaseModel):
    customers: int = Field(default=3000, ge=1)
    days: int = Field(default=180, ge=1)
    seed: int = 42
    sessions_per_day: float = Field(default=1.5, gt=0, description="Mean usage sessions/day.")
    annual_churn: float = Field(default=0.25, ge=0, lt=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BBX_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        default=PROJECT_ROOT / ".bbx",
        description="Lake, MLflow store, data docs and embedded Mongo data live here.",
    )
    as_of: dt.date | None = Field(default=None, description="Scoring date; empty means today.")
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    churn: ChurnSettings = Field(default_factory=ChurnSettings)
    segmentation: SegmentationSettings = Field(default_factory=SegmentationSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    simulation: SimulationSettings = Field(default_factory=SimulationSettings)

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
        config_file = Path(os.environ.get("BBX_CONFIG", DEFAULT_CONFIG))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.exists():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    # Derived locations: one place that says where things live under home.
    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def data_docs_dir(self) -> Path:
        return self.home / "data_docs"

    def resolved_as_of(self) -> dt.date:
        return self.as_of or dt.datetime.now(dt.UTC).date()


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(**overrides: Any) -> Settings:
    """Build settings; `overrides` (nested dicts allowed) win over env and YAML.

    None values are ignored so CLI flags that were not given do not erase config.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    if not any(isinstance(v, dict) for v in clean.values()):
        return Settings(**clean)
    # Nested overrides must merge with env/YAML rather than replace whole sections.
    base = Settings().model_dump(exclude={"mongodb_uri"})
    return Settings(**_deep_merge(base, clean))
