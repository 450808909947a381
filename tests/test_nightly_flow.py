"""The whole nightly flow, end to end, on real components.

Real embedded MongoDB (SecantusDB), a real Prefect test API, a real MLflow
SQLite store in a temp folder. One simulated population and its first night are
prepared once per session (tests/conftest.py) and only read; a test works on a
copy of them where it runs the flow again.
"""

from __future__ import annotations

import datetime as dt

import pytest
from mlflow import MlflowClient

from bbx.lake import SCORES_COLLECTION
from bbx.settings import Settings
from flows.nightly import nightly
from tasks.gate import DataValidationError
from tests.conftest import PreparedWorld, copy_world

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 6, 1)
CUSTOMERS = 250
DAYS = 120


@pytest.fixture()
def first_night(prepared_world) -> PreparedWorld:
    """The population after its first nightly run for AS_OF (shared: read only), on the
    unmodified default settings: the one night of the suite that runs them."""
    return prepared_world(customers=CUSTOMERS, days=DAYS, seed=11,
                          end=AS_OF - dt.timedelta(days=1), as_of=AS_OF, config=None)


@pytest.fixture()
def copied(first_night: PreparedWorld, flow_env: Settings, mongo_client) -> Settings:
    """This test's copy of the first night's database and home."""
    copy_world(first_night, flow_env, mongo_client)
    return flow_env


def _active_users(db) -> set:
    return set(db.subscriptions.distinct("user", {"status": "active"}))


def test_nightly_scores_every_active_customer_and_registers_champions(
    first_night: PreparedWorld, mongo_client
) -> None:
    simulated, summary = first_night.settings, first_night.summary
    db = mongo_client[simulated.mongo.database]

    scores = list(db[SCORES_COLLECTION].find())
    active = _active_users(db)
    assert len(scores) == len(active) > 0
    assert {s["userId"] for s in scores} == active
    assert summary["scores"]["customers"] == len(active)
    pricing = simulated.pricing
    for s in scores:
        assert 0.0 <= s["churnProbability"] <= 1.0
        assert 0.0 <= s["riskScore"] <= 100.0
        assert s["riskBand"] in {"low", "medium", "high"}
        base, price = s["price"]["base"], s["price"]["dynamic"]
        assert base * pricing.min_ratio - 0.01 <= price <= base * pricing.max_ratio + 0.01
        if s["riskBand"] == "high":
            assert price <= base + 0.01
        assert s["asOf"] == dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
        assert s["segment"]["name"]
    # Churn must depend on behaviour: the model separates held-out customers (pooled over
    # the cutoffs: a world this small leaves about one churner to the latest cutoff's test).
    churn_metrics = summary["models"]["churn"]["metrics"]
    assert churn_metrics["pooled_roc_auc"] > 0.6

    client = MlflowClient(tracking_uri=simulated.mlflow_uri, registry_uri=simulated.mlflow_uri)
    for name in ("churn", "segmentation"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert str(champion.version) == summary["models"][name]["version"]
    assert {s["modelVersions"]["churn"] for s in scores} == {summary["models"]["churn"]["version"]}


def test_a_rerun_replaces_the_night_and_a_failed_critical_expectation_publishes_nothing(
    copied: Settings, mongo_client
) -> None:
    """Two runs on one copy of the first night (copying costs a simulation)."""
    db = mongo_client[copied.mongo.database]
    active = _active_users(db)
    assert db[SCORES_COLLECTION].count_documents({}) == len(active) > 0

    # A rerun for the same date replaces the night: same customers, no duplicates.
    again = nightly(as_of=AS_OF, train=False)
    assert db[SCORES_COLLECTION].count_documents({}) == len(active)
    assert db[SCORES_COLLECTION].distinct("runId") == [again["run_id"]]
    before = {d["userId"]: d["runId"] for d in db[SCORES_COLLECTION].find()}

    # A failed critical expectation stops the next run before anything is published.
    # Bad rows above the quarantine limit: negative bytes and a missing userId.
    sessions = db.usagelogs.count_documents({})
    template = db.usagelogs.find_one({}, {"_id": 0})
    bad = max(10, sessions // 20)
    db.usagelogs.insert_many([template | {"download": -5_000_000} for _ in range(bad)])
    db.usagelogs.insert_many([{k: v for k, v in template.items() if k != "userId"}
                              for _ in range(bad)])

    with pytest.raises(DataValidationError) as info:
        nightly(as_of=AS_OF)
    message = str(info.value)
    assert "usagelogs" in message
    assert "download_gb" in message or "user_id" in message
    assert {d["userId"]: d["runId"] for d in db[SCORES_COLLECTION].find()} == before
