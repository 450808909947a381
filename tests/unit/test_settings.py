"""configs/default.yaml is the one source of every default; overrides merge into it."""

from __future__ import annotations

import pydantic
import pytest
import yaml
from pydantic import BaseModel

from bbx.settings import DEFAULT_CONFIG, Settings, load_settings, redact_uri

# Fields that are not settings an operator writes: an env shortcut and a plan's optional
# bounds (absent means "from the ratios"), which is why they alone keep a default.
NOT_IN_YAML = {"mongodb_uri"}
DEFAULTED = {"mongodb_uri", "PlanAnchorSettings.min_price", "PlanAnchorSettings.max_price"}


def _section_model(annotation: object) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
        else None


def _field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted paths of every leaf setting, sections (nested models) walked into."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        section = _section_model(field.annotation)
        if section is not None:
            paths |= _field_paths(section, f"{prefix}{name}.")
        else:
            paths.add(f"{prefix}{name}")
    return paths


def _yaml_paths(data: dict, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, value in data.items():
        section = _section_model(Settings.model_fields[key].annotation) if not prefix else None
        if section is not None and isinstance(value, dict):
            paths |= _yaml_paths(value, f"{prefix}{key}.")
        else:
            paths.add(f"{prefix}{key}")
    return paths


def test_default_yaml_covers_every_setting_and_nothing_else() -> None:
    written = _yaml_paths(yaml.safe_load(DEFAULT_CONFIG.read_text()))
    fields = _field_paths(Settings) - NOT_IN_YAML
    assert fields - written == set(), "settings without a default in configs/default.yaml"
    assert written - fields == set(), "keys in configs/default.yaml that no setting reads"


def test_the_code_writes_no_default_of_its_own() -> None:
    def defaulted(model: type[BaseModel]) -> set[str]:
        found = set()
        for name, field in model.model_fields.items():
            if not field.is_required():
                found.add(name if model is Settings else f"{model.__name__}.{name}")
            section = _section_model(field.annotation)
            if section is not None:
                found |= defaulted(section)
        return found

    from bbx.settings import PlanAnchorSettings

    assert defaulted(Settings) | defaulted(PlanAnchorSettings) == DEFAULTED


def test_the_elasticity_prior_is_in_the_yaml() -> None:
    prior = yaml.safe_load(DEFAULT_CONFIG.read_text())["segmentation"]["elasticity_prior"]
    assert load_settings().segmentation.elasticity_prior == prior
    assert len(prior) == 5 and all(value < 0 for value in prior.values())


def test_nested_overrides_merge_with_env_and_yaml(monkeypatch) -> None:
    monkeypatch.delenv("BBX_CONFIG", raising=False)  # the suite's own file (conftest)
    monkeypatch.setenv("BBX_CHURN__SEED", "11")
    written = yaml.safe_load(DEFAULT_CONFIG.read_text())
    settings = load_settings(churn={"horizon_days": 60}, pricing=None, as_of=None)
    assert settings.churn.horizon_days == 60  # the override
    assert settings.churn.seed == 11  # the environment, same section
    assert settings.churn.tuning_trials == written["churn"]["tuning_trials"]  # the YAML
    assert settings.pricing.alpha == written["pricing"]["alpha"]  # None did not erase it
    assert settings.as_of is None


def test_an_override_beats_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("BBX_CHURN__SEED", "11")
    assert load_settings(churn={"seed": 3}).churn.seed == 3


def test_an_operators_file_overlays_the_defaults(tmp_path, monkeypatch) -> None:
    own = tmp_path / "prod.yaml"
    own.write_text("churn:\n  horizon_days: 45\nscale:\n  customers_per_bucket: 100\n")
    monkeypatch.setenv("BBX_CONFIG", str(own))
    settings = load_settings()
    assert settings.churn.horizon_days == 45
    assert settings.scale.customers_per_bucket == 100
    written = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert settings.churn.seed == written["churn"]["seed"]
    assert settings.scale.keep_idle_splits_hours == written["scale"]["keep_idle_splits_hours"]


def test_a_setting_without_a_value_is_an_error_not_a_silent_default(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr("bbx.settings.DEFAULT_CONFIG", tmp_path / "missing.yaml")
    with pytest.raises(pydantic.ValidationError, match="churn"):
        load_settings()


def test_a_retired_or_misspelt_key_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BBX_EXTRACT__FULL_SNAPSHOT_EVERY_DAYS", "2")
    with pytest.raises(pydantic.ValidationError, match="full_snapshot_every_days"):
        load_settings()
    monkeypatch.delenv("BBX_EXTRACT__FULL_SNAPSHOT_EVERY_DAYS")
    own = tmp_path / "typo.yaml"
    own.write_text("churn:\n  horizon_dayz: 45\n")
    monkeypatch.setenv("BBX_CONFIG", str(own))
    with pytest.raises(pydantic.ValidationError, match="horizon_dayz"):
        load_settings()


def test_the_uri_password_never_reaches_json(tmp_path) -> None:
    """JSON is how Prefect stores a subflow's parameters; in Python the URI stays whole."""
    uri = "mongodb://pipeline:p%40ss-Wd@db.example:27017/app?authSource=admin"
    settings = load_settings(home=tmp_path, mongo={"uri": uri})
    assert settings.mongo.uri == uri
    dumped = settings.model_dump_json()
    assert "p%40ss-Wd" not in dumped
    assert "mongodb://pipeline:***@db.example:27017/app?authSource=admin" in dumped
    assert redact_uri("mongodb://127.0.0.1:27017") == "mongodb://127.0.0.1:27017"
    assert redact_uri("mongodb+srv://u:x@c.net/") == "mongodb+srv://u:***@c.net/"
    assert redact_uri(None) is None
