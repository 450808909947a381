"""Revenue simulation: static vs dynamic prices on the same simulated customers.

    python -m bench revenue [--customers=3000] [--days=180] [--seed=42] [--months=6]
                            [--replications=20] [--home=.bbx/bench-revenue]

1. Simulates a population into a throwaway embedded MongoDB and runs the real
   nightly flow on it (dry run: trains, scores, prices; publishes nothing).
2. Takes the priced scores: for every scored customer the dynamic multiplier
   formula_price / base_price (the price the treatment arm would pay; the whole
   book is compared here, not the A/B split).
3. With the simulator's price-response model (simulator/price_response.py),
   simulates the next `months` months twice per replication, once at today's
   prices (static) and once at today's price × the multiplier (dynamic), with
   common random numbers; `replications` independent seeds.
4. Prints revenue, churn rate and ARPU per policy and their difference with 95%
   intervals (2.5-97.5 percentiles over replications: the simulation's luck on
   these customers, not sampling of new customers), and logs the table to MLflow
   (experiment "pricing-evaluation" under --home) and as a Prefect table artifact.

Only a bench may do this: it reads the simulator, which pipeline code never does.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULTS = {"customers": 3000, "days": 180, "seed": 42, "months": 6, "replications": 20,
            "home": ".bbx/bench-revenue"}


def parse(argv: list[str]) -> dict:
    options = dict(DEFAULTS)
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key not in options:
            raise SystemExit(f"unknown option --{key}; options: {', '.join(DEFAULTS)}")
        options[key] = type(DEFAULTS[key])(value)
    return options


def policy_table(static: list, dynamic: list) -> pd.DataFrame:
    """Per metric (revenue, churn_rate, arpu): mean and 95% interval for static, dynamic
    and their paired difference, from per-replication PriceResponse pairs."""
    def metrics(r) -> dict[str, float]:
        customers = len(r.revenue)
        served = float(np.sum(r.months_served))
        return {"revenue": float(np.sum(r.revenue)), "churn_rate": float(np.mean(r.churned)),
                "arpu": float(np.sum(r.revenue)) / served if served else float("nan"),
                "customers": float(customers)}

    s = pd.DataFrame([metrics(r) for r in static])
    d = pd.DataFrame([metrics(r) for r in dynamic])
    rows = []
    for metric in ("revenue", "churn_rate", "arpu"):
        diff = d[metric] - s[metric]
        rel = d[metric] / s[metric] - 1.0
        row = {"metric": metric}
        for name, values in (("static", s[metric]), ("dynamic", d[metric]), ("difference", diff),
                             ("relative", rel)):
            row[name] = float(values.mean())
            row[f"{name}_low"] = float(np.percentile(values, 2.5))
            row[f"{name}_high"] = float(np.percentile(values, 97.5))
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


def segment_agreement(scores: pd.DataFrame, world) -> tuple[float, float]:
    """(adjusted Rand index, share named as their latent segment) of the scored customers."""
    from sklearn.metrics import adjusted_rand_score

    from simulator.catalog import SEGMENTS

    latent = pd.Series([SEGMENTS[s].name for s in world.pop.segment], index=world.user_ids)
    truth = latent.reindex(scores["user_id"].astype(str)).to_numpy()
    given = scores["segment_name"].to_numpy()
    return float(adjusted_rand_score(truth, given)), float(np.mean(truth == given))


def _run_nightly(as_of: dt.date) -> None:
    from flows.nightly import nightly

    wanted = {"as_of": as_of, "train": True, "force_train": True, "dry_run": True}
    accepted = inspect.signature(nightly.fn).parameters
    nightly(**{k: v for k, v in wanted.items() if k in accepted})


def main(argv: list[str]) -> None:
    options = parse(argv)
    from prefect.testing.utilities import prefect_test_harness
    from pymongo import MongoClient

    from bbx import lake
    from bbx.lake import prices_path
    from bbx.mongo import start_embedded, stop_process
    from bbx.settings import load_settings
    from simulator import simulate
    from simulator.price_response import population_state, simulate_price_response
    from simulator.world import SimulationSpec, build_world
    from tasks.publish import read_priced_scores

    home = Path(options["home"]).resolve()
    home.mkdir(parents=True, exist_ok=True)
    run_home = Path(tempfile.mkdtemp(prefix="run-", dir=home))
    as_of = dt.date(2026, 11, 1)
    end = as_of - dt.timedelta(days=1)
    settings = load_settings(home=run_home, mongo={"embedded_storage": ":memory:"})
    server, process = start_embedded(settings)
    started = time.perf_counter()
    try:
        client = MongoClient(server.uri, tz_aware=True)
        simulate(client["broadbandx"], customers=options["customers"], days=options["days"],
                 seed=options["seed"], end=end)
        client.close()
        print(f"simulated {options['customers']} customers × {options['days']} days "
              f"in {time.perf_counter() - started:.0f}s", flush=True)
        os.environ.update({"BBX_HOME": str(run_home), "MONGODB_URI": server.uri,
                           "BBX_MONGO__DATABASE": "broadbandx",
                           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
        with prefect_test_harness(server_startup_timeout=120):
            _run_nightly(as_of)
            scores = read_priced_scores(
                str(lake.scores_path(run_home / "lake", as_of)),
                str(prices_path(load_settings(home=run_home).lake_dir, as_of)))
            print(f"nightly dry run done at {time.perf_counter() - started:.0f}s", flush=True)

            spec = SimulationSpec(customers=options["customers"], days=options["days"],
                                  seed=options["seed"], end=end)
            world = build_world(spec)
            state = population_state(spec, as_of, world)
            ari, named = segment_agreement(scores, world)
            print(f"segments vs the simulator's latent ones: ARI {ari:.3f}, "
                  f"{named:.1%} given their latent segment's name", flush=True)
            multiplier = dict(zip(scores["user_id"].astype(str),
                                  scores["formula_price"] / scores["base_price"], strict=True))
            ratio = np.array([multiplier.get(u, 1.0) for u in state.user_ids])
            static_price = state.monthly_price
            dynamic_price = static_price * ratio
            static, dynamic = [], []
            for rep in range(options["replications"]):
                static.append(simulate_price_response(state, static_price,
                                                      months=options["months"], seed=rep))
                dynamic.append(simulate_price_response(state, dynamic_price,
                                                       months=options["months"], seed=rep))
            table = policy_table(static, dynamic)
            by_segment = (scores.assign(ratio=scores["formula_price"] / scores["base_price"])
                          .groupby("segment_name")["ratio"].agg(["size", "mean", "min", "max"]))
            weights = {k: float(scores[f"price_weight_{k}"].iloc[0])
                       for k in ("alpha", "beta", "gamma")}
            _report(options, table, by_segment, weights, len(state.user_ids),
                    float(np.mean(np.isin(state.user_ids, scores["user_id"].astype(str)))))
            _log(home, options, table, by_segment, weights, ari)
    finally:
        stop_process(process)
    print(f"total {time.perf_counter() - started:.0f}s")


def _report(options: dict, table: pd.DataFrame, by_segment: pd.DataFrame,
            weights: dict[str, float], customers: int, matched: float) -> None:
    print(f"\nfitted weights: {json.dumps({k: round(v, 4) for k, v in weights.items()})}")
    print(f"customers live at as-of: {customers}, priced by the pipeline: {matched:.1%}")
    print("\ndynamic/base multiplier by segment:")
    print(by_segment.round(3).to_string())
    print(f"\n{options['months']} months, {options['replications']} replications "
          "(mean [95% interval]):")
    for metric, row in table.iterrows():
        fmt = "{:.4f}" if metric == "churn_rate" else "{:,.0f}" if metric == "revenue" \
            else "{:,.1f}"
        cells = [f"{name} " + fmt.format(row[name]) + " [" + fmt.format(row[f"{name}_low"])
                 + ", " + fmt.format(row[f"{name}_high"]) + "]"
                 for name in ("static", "dynamic", "difference")]
        cells.append(f"relative {row['relative']:+.2%} [{row['relative_low']:+.2%}, "
                     f"{row['relative_high']:+.2%}]")
        print(f"  {metric:10s} " + " | ".join(cells))


def _log(home: Path, options: dict, table: pd.DataFrame, by_segment: pd.DataFrame,
         weights: dict[str, float], ari: float) -> None:
    import mlflow
    from prefect import flow
    from prefect.artifacts import create_table_artifact

    from bbx.settings import load_settings
    from tasks import registry

    registry.configure(load_settings(home=home), "pricing-evaluation")
    with mlflow.start_run(run_name=f"revenue-simulation-{options['months']}m"):
        mlflow.log_params(options | {f"weight_{k}": v for k, v in weights.items()})
        mlflow.log_metric("segment_ari", ari)
        mlflow.log_metrics({f"{m}_{c}": float(v) for m, row in table.iterrows()
                            for c, v in row.items() if np.isfinite(v)})
        mlflow.log_table(table.reset_index(), "revenue_simulation.json")
        mlflow.log_table(by_segment.reset_index(), "multiplier_by_segment.json")

    @flow(name="revenue-simulation")
    def publish_artifact() -> None:
        create_table_artifact(table.reset_index().round(6).to_dict("records"),
                              key="revenue-simulation",
                              description="Static vs dynamic prices, simulated (95% intervals)")

    publish_artifact()
