"""The pricing engine: formula check, learned weights, elasticity, and the pricing task
end to end on a small lake (real MongoDB, MLflow and Prefect)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.elasticity import estimate_segment_elasticity
from models.price_optimizer import (
    PricingBook,
    book_prices,
    expected_churn,
    fit_pricing_weights,
    fit_weights_to_prices,
    revenue_and_churn,
)
from models.pricing import PricingWeights, dynamic_price

BOUNDS = {"alpha": (-0.5, 0.5), "beta": (-0.5, 0.5), "gamma": (-1.0, 0.5)}

# ILLUSTRATIVE customers, not the seed's: the issue asks for "the seed's four example
# customers", but no document available here gives them (../shared/broadbandx-schema.md
# states only the formula and the ₹400-₹600 bounds on a ₹500 plan). These four were made
# up for this test: prices written by the formula with weights (0.12, 0.04, -0.20),
# rounded to whole rupees as a person would quote them, each in its own pricing period
# (its own D) so the three weights are identifiable.
ILLUSTRATIVE = pd.DataFrame(
    {
        "base": [500.0, 499.0, 1199.0, 799.0],
        "demand": [0.8, 0.2, 0.5, 0.9],
        "elasticity": [-2.0, -1.2, -0.3, -1.8],
        "churn": [0.10, 0.60, 0.05, 0.30],
    },
    index=["budget, busy evening", "value-seeker at risk", "casual premium", "power user"],
)
ILLUSTRATIVE["quoted"] = np.round(
    ILLUSTRATIVE["base"]
    * (1 + 0.12 * ILLUSTRATIVE["demand"] + 0.04 * ILLUSTRATIVE["elasticity"]
       - 0.20 * ILLUSTRATIVE["churn"])
)


def test_fitted_weights_reproduce_illustrative_prices_within_two_percent() -> None:
    c = ILLUSTRATIVE
    weights = fit_weights_to_prices(c["quoted"], c["base"], c["demand"], c["elasticity"],
                                    c["churn"])
    price = dynamic_price(c["base"].to_numpy(), c["demand"].to_numpy(),
                          c["elasticity"].to_numpy(), c["churn"].to_numpy(), weights,
                          0.8, 1.2, np.zeros(4, bool))
    np.testing.assert_allclose(price, c["quoted"], rtol=0.02)
    assert weights.alpha == pytest.approx(0.12, abs=0.01)
    assert weights.gamma == pytest.approx(-0.20, abs=0.01)


def _book(n: int = 600, seed: int = 0) -> PricingBook:
    rng = np.random.default_rng(seed)
    elastic = rng.random(n) < 0.5
    churn = rng.uniform(0.005, 0.05, n)
    return PricingBook(
        base=rng.choice([399.0, 799.0, 1199.0], n),
        demand=np.full(n, 0.6),
        elasticity=np.where(elastic, -2.0, -0.3) + rng.normal(0, 0.05, n),
        churn_probability=churn,
        high_risk=churn > 0.045,
    )


def test_churn_rises_with_price_and_never_leaves_zero_one() -> None:
    base = np.full(5, 500.0)
    prices = np.array([400.0, 450.0, 500.0, 550.0, 600.0])
    churn = expected_churn(prices, base, np.full(5, 0.03), np.full(5, -1.5), periods=6)
    assert np.all(np.diff(churn) > 0)
    assert churn[2] == pytest.approx(1 - 0.97**6)
    extreme = expected_churn(np.array([100.0]), np.array([500.0]), np.array([0.5]),
                             np.array([-5.0]), 6)
    assert 0.0 <= extreme[0] <= 1.0


def test_learned_weights_raise_revenue_within_bounds_and_churn_ceiling() -> None:
    book = _book()
    fit = fit_pricing_weights(book, 0.8, 1.2, periods=6, bounds=BOUNDS, seed=3)
    assert fit.feasible
    assert fit.revenue_dynamic >= fit.revenue_static
    assert fit.churn_dynamic <= fit.churn_static + 1e-6  # default ceiling: static churn
    price = book_prices(book, fit.weights, 0.8, 1.2)
    assert np.all(price >= 0.8 * book.base - 1e-9) and np.all(price <= 1.2 * book.base + 1e-9)
    assert np.all(price[book.high_risk] <= book.base[book.high_risk])
    # The revenue-maximising direction: inelastic customers pay relatively more.
    ratio = price / book.base
    assert ratio[book.elasticity > -1].mean() > ratio[book.elasticity < -1].mean()
    # The reported objective is the objective at the reported weights.
    assert revenue_and_churn(book, price, 6)[0] == pytest.approx(fit.revenue_dynamic)
    for name, (lo, hi) in BOUNDS.items():
        assert lo - 1e-9 <= getattr(fit.weights, name) <= hi + 1e-9


def test_impossible_churn_ceiling_keeps_base_prices() -> None:
    book = _book(200)
    fit = fit_pricing_weights(book, 0.95, 1.05, periods=6, bounds=BOUNDS, churn_ceiling=0.0)
    assert not fit.feasible
    assert fit.weights == PricingWeights(0.0, 0.0, 0.0)
    assert fit.revenue_dynamic == pytest.approx(fit.revenue_static)


def _history(n: int, slope: float, discounted_share: float, seed: int = 0) -> pd.DataFrame:
    """Customers of one segment whose monthly hazard is 0.03·(final/base)^slope."""
    rng = np.random.default_rng(seed)
    discount = np.where(rng.random(n) < discounted_share, rng.choice([0.1, 0.2, 0.3], n), 0.0)
    ratio = 1 - discount
    exposure = np.full(n, 6.0)
    events = rng.poisson(0.03 * exposure * ratio**slope)
    return pd.DataFrame({
        "segment_name": "Budget Users", "plan_id": rng.choice(["p1", "p2"], n),
        "base_price": 499.0, "final_price": 499.0 * ratio,
        "exposure_months": exposure, "churned": events > 0,
    })


def test_elasticity_moves_from_the_prior_only_as_far_as_the_data_supports() -> None:
    prior = {"Budget Users": -2.0, "Casual Premium": -0.5}
    history = _history(60_000, 6.0, 0.5)
    strong = estimate_segment_elasticity(history, prior, 0.5, 6, 50)
    budget = next(e for e in strong if e.segment == "Budget Users")
    # Planted: b = ∂log hazard/∂log price = 6, so ε = -h̄·H·b with h̄ the observed hazard.
    hazard = history["churned"].sum() / history["exposure_months"].sum()
    assert budget.source == "posterior"
    assert budget.data_estimate == pytest.approx(-hazard * 6 * 6.0, rel=0.2)
    assert abs(budget.posterior - budget.data_estimate) < abs(budget.posterior - budget.prior)
    assert budget.posterior_low < budget.posterior < budget.posterior_high
    casual = next(e for e in strong if e.segment == "Casual Premium")
    assert casual.posterior == -0.5 and casual.source.startswith("prior")

    thin = estimate_segment_elasticity(_history(30, 6.0, 0.5), prior, 0.5, 6, 50)[0]
    assert thin.posterior == -2.0 and "customers" in thin.source
    # The data says dearer customers stay more (wrong sign): never above the ceiling.
    perverse = estimate_segment_elasticity(_history(60_000, -6.0, 0.5), prior, 0.5, 6, 50,
                                           ceiling=-0.05)[0]
    assert perverse.data_estimate > 0
    assert perverse.posterior == -0.05 and perverse.posterior_high == -0.05
    assert "clipped" in perverse.source
    flat = estimate_segment_elasticity(_history(5000, 6.0, 0.0), prior, 0.5, 6, 50)[0]
    assert flat.posterior == -2.0 and "no price variation" in flat.source
    assert flat.posterior_high - flat.posterior_low == pytest.approx(2 * 1.96 * 0.5, rel=1e-3)


def test_fairness_report_flags_only_large_enough_gaps() -> None:
    from models.ab import age_band, fairness_report

    as_of = dt.date(2026, 6, 1)
    born = pd.Series(pd.to_datetime(["2002-06-02", "1980-01-01", None, "2030-01-01"], utc=True))
    assert list(age_band(born, as_of, [25, 35, 45])) == ["<25", "45+", "unknown", "unknown"]
    n = 300
    city = np.array(["Mumbai"] * 100 + ["Delhi"] * 100 + ["Pune"] * 90 + ["Goa"] * 10)
    ratio = pd.Series(np.where(city == "Pune", 1.15, np.where(city == "Goa", 0.8, 1.0)))
    groups = pd.DataFrame({"city": city, "age_band": ["35-44"] * n})
    report = fairness_report(ratio, groups, max_gap=0.05, min_group=30)
    flagged = report[report["flagged"]]
    assert list(flagged["group"]) == ["Pune"]  # Goa differs more but is too small to judge
    assert report.attrs["overall_mean_ratio"] == pytest.approx(ratio.mean())
    assert not report[report["dimension"] == "age_band"]["flagged"].any()


# --- the tasks, end to end -------------------------------------------------------------


@pytest.fixture()
def priced_lake(flow_env, tmp_path):
    """A small synthetic lake, a registered segmentation champion and a scores file."""
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff
    from features.segmentation import build_segmentation_features
    from models.scoring import assemble_scores
    from tasks import registry
    from tasks.extract import write_parquet_atomically
    from tasks.score import scoring_policy
    from tasks.train import train_segmentation_task
    from tests.unit.synthetic import make_tables

    settings = flow_env
    as_of = dt.date(2026, 6, 1)
    tables = make_tables(n_customers=400, days=200, as_of=pd.Timestamp(as_of, tz="UTC"), seed=4)
    rng = np.random.default_rng(1)
    users = tables.users.copy()
    users["city"] = rng.choice(["Mumbai", "Delhi", "Pune"], len(users))
    users["date_of_birth"] = pd.Timestamp("1990-01-01", tz="UTC") - pd.to_timedelta(
        rng.integers(0, 40 * 365, len(users)), unit="D")
    tables.users = users
    paths = {}
    for name in tables.__dataclass_fields__:
        path = tmp_path / "lake" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        getattr(tables, name).to_parquet(path)
        paths[name] = str(path)
    train_segmentation_task.fn(settings, as_of, paths)
    registry.configure(settings, registry.SEGMENT_MODEL)
    segment_model, version = registry.load_by_alias(registry.SEGMENT_MODEL)
    cutoff = as_of_cutoff(as_of)
    customers = build_churn_features(tables, cutoff)
    probability = rng.uniform(0.0, 0.2, len(customers))
    segments = segment_model.assign(build_segmentation_features(tables, cutoff))
    scores = assemble_scores(customers, probability, segments, tables.plans, 0.7,
                             scoring_policy(settings))
    scores["churn_model_version"] = "1"
    scores["segment_model_version"] = version
    scores_file = tmp_path / "scores.parquet"
    write_parquet_atomically(pa.Table.from_pandas(scores.reset_index(), preserve_index=False),
                             scores_file)
    return settings, as_of, paths, str(scores_file)


def test_pricing_task_prices_logs_and_records(priced_lake, mongo_client) -> None:
    import mlflow
    from prefect import flow
    from prefect.artifacts import Artifact

    from tasks import registry
    from tasks.pricing import (
        DEMAND_PROFILE_COLLECTION,
        PRICING_LOG_COLLECTION,
        SEGMENTS_COLLECTION,
        PricingResult,
        price_customers_task,
        record_pricing,
    )

    settings, as_of, paths, scores_file = priced_lake

    @flow(name="pricing-under-test")
    def pricing_flow() -> PricingResult:
        return price_customers_task(settings, as_of, paths, scores_file)

    result = pricing_flow()
    assert Artifact.get("pricing-weights") is not None
    assert Artifact.get("pricing-elasticity") is not None
    priced = pd.read_parquet(scores_file)
    p = settings.pricing
    assert result.learned and result.churn_dynamic <= result.churn_static + 1e-6
    control = priced["pricing_arm"] == "control"
    assert control.any() and (~control).any()
    assert (priced.loc[control, "dynamic_price"] == priced.loc[control, "base_price"]).all()
    assert np.allclose(priced.loc[~control, "dynamic_price"],
                       priced.loc[~control, "formula_price"])
    ratio = priced["formula_price"] / priced["base_price"]
    assert ratio.between(p.min_ratio - 1e-9, p.max_ratio + 1e-9).all()
    high = priced["risk_band"] == "high"
    assert (priced.loc[high, "formula_price"] <= priced.loc[high, "base_price"] + 1e-9).all()
    for name in ("alpha", "beta", "gamma"):
        assert (priced[f"price_weight_{name}"] == result.weights[name]).all()
    # Explanation: the terms add up to the unclamped multiplier.
    terms = priced[["price_term_demand", "price_term_elasticity", "price_term_risk"]].sum(axis=1)
    unclamped = (1 + terms).clip(p.min_ratio, p.max_ratio)
    free = ~high & (ratio > p.min_ratio + 1e-6) & (ratio < p.max_ratio - 1e-6)
    assert np.allclose(unclamped[free], ratio[free])

    registry.configure(settings, "pricing")
    run = mlflow.get_run(result.mlflow_run_id)
    assert run.data.metrics["weight_alpha"] == pytest.approx(result.weights["alpha"])
    assert "objective_revenue_dynamic" in run.data.metrics
    assert any(k.startswith("elasticity_Budget_Users") for k in run.data.metrics)

    written = record_pricing(settings.mongo.uri, settings, as_of, "run-1", result)
    again = record_pricing(settings.mongo.uri, settings, as_of, "run-1", result)  # a retry
    db = mongo_client[settings.mongo.database]
    assert written == again
    assert db[PRICING_LOG_COLLECTION].count_documents({}) == len(priced)
    doc = db[PRICING_LOG_COLLECTION].find_one({"arm": "treatment"})
    assert set(doc) >= {"userId", "asOf", "plan", "base", "dynamic", "D", "E", "R", "weights",
                        "arm", "modelVersions"}
    segments = list(db[SEGMENTS_COLLECTION].find({"runId": "run-1"}))
    assert sum(s["size"] for s in segments) == len(priced)
    assert sum(s["share"] for s in segments) == pytest.approx(1.0)
    assert {"name", "size", "share", "usageGbPerMonth", "price", "elasticity",
            "asOf"} <= set(segments[0])
    assert db[DEMAND_PROFILE_COLLECTION].count_documents({"runId": "run-1"}) == 24
    db.client.drop_database(settings.mongo.database)
