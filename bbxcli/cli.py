"""`bbx`: the command line for data engineers.

Global flags override settings by setting the matching environment variables
before anything reads them, so the flows (which build their own settings, as a
Prefect deployment does) see the same values.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from bbx.settings import load_settings, redact_uri
from bbxcli.model_cli import model_app

app = typer.Typer(help="BroadbandX nightly ML pipeline.", no_args_is_help=True)
mongo_app = typer.Typer(help="The embedded MongoDB (SecantusDB) server.", no_args_is_help=True)
run_app = typer.Typer(help="Run a pipeline flow in this process.", no_args_is_help=True)
app.add_typer(mongo_app, name="mongo")
app.add_typer(run_app, name="run")
publish_app = typer.Typer(help="What the app sees: ml_customer_scores.", no_args_is_help=True)
app.add_typer(publish_app, name="publish")
app.add_typer(model_app, name="model")


def _say(message: str) -> None:
    typer.echo(f"[{time.strftime('%H:%M:%S')}] {message}")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.callback()
def main(
    home: Annotated[Path | None, typer.Option(help="Home (lake, MLflow, docs).")] = None,
    mongodb_uri: Annotated[
        str | None, typer.Option("--mongodb-uri", help="MongoDB URI; default: embedded server.")
    ] = None,
    database: Annotated[str | None, typer.Option(help="Database name.")] = None,
) -> None:
    overrides = {"BBX_HOME": home and str(home.resolve()), "MONGODB_URI": mongodb_uri,
                 "BBX_MONGO__DATABASE": database}
    for name, value in overrides.items():
        if value:
            os.environ[name] = value
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Before Prefect is imported: the run log's format and levels (bbx/logs.py).
    from bbxcli.up import RUN_LOG_ENV

    for name, value in RUN_LOG_ENV.items():
        os.environ.setdefault(name, value)


def _known_errors() -> tuple[type[BaseException], ...]:
    from bbx.mongo import MongoUnavailableError
    from tasks.gate import DataValidationError
    from tasks.lake_source import LakeSourceMismatchError
    from tasks.publish import PublishCheckError
    from tasks.registry import MlflowStoreMovedError
    from tasks.train import NotEnoughTrainingDataError

    return (MongoUnavailableError, DataValidationError, PublishCheckError,
            NotEnoughTrainingDataError, LookupError, LakeSourceMismatchError, MlflowStoreMovedError)


# --- mongo ---------------------------------------------------------------------


@mongo_app.command("start")
def mongo_start(port: Annotated[int | None, typer.Option(help="Port; default a free one.")] = None):
    """Start a persistent embedded server for a Prefect worker or the app to share."""
    from bbx.mongo import start_persistent

    server = start_persistent(load_settings(), port)
    typer.echo(f"embedded MongoDB running: {server.uri} (pid {server.pid}, data {server.storage})")
    typer.echo(f"point other processes at it with: export MONGODB_URI={server.uri}")


@mongo_app.command("stop")
def mongo_stop() -> None:
    """Stop the persistent embedded server."""
    from bbx.mongo import stop_persistent

    typer.echo("stopped" if stop_persistent(load_settings()) else "no embedded server was running")


@mongo_app.command("status")
def mongo_status() -> None:
    """Say whether the persistent embedded server is running, and where."""
    from bbx.mongo import persistent_server

    server = persistent_server(load_settings())
    if server is None:
        typer.echo("not running")
        raise typer.Exit(code=3)
    typer.echo(f"running: {server.uri} (pid {server.pid}, data {server.storage})")


# --- publish and the local stack ---------------------------------------------------


@publish_app.command("rollback")
def publish_rollback() -> None:
    """Swap the previous night back into ml_customer_scores (run again to undo)."""
    from bbx.mongo import mongo_uri
    from tasks.publish import rollback_scores

    settings = load_settings()
    try:
        with mongo_uri(settings) as uri:
            result = rollback_scores(uri, settings)
    except _known_errors() as exc:
        _fail(str(exc))
    _say(f"ml_customer_scores now holds the night of {result.restored_as_of} "
         f"({result.restored_documents:,} customers); the night of {result.replaced_as_of} "
         "is kept as ml_customer_scores_previous (`bbx publish rollback` again to undo)")


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Port of the Prefect server (UI and API).")] = 4200,
) -> None:
    """Bring the pipeline up locally: MongoDB, Prefect server, work pool, deployments, worker."""
    from bbxcli.up import BringUpError, bring_up

    settings = load_settings()
    _say("starting MongoDB, the Prefect server, the work pool, the deployments and a worker")
    try:
        stack = bring_up(settings, port)
    except (BringUpError, *_known_errors()) as exc:
        _fail(str(exc))
    typer.echo(f"Prefect UI     : {stack.ui_url}  (deployments: nightly, train, score, backfill)")
    typer.echo(f"Data Docs      : {stack.data_docs_url}  (Great Expectations results per night)")
    typer.echo(f"MLflow UI      : {stack.mlflow_ui_url}  (model runs, plots, registry)")
    typer.echo(f"MongoDB        : {redact_uri(stack.mongodb_uri)}")
    typer.echo(f"worker         : pid {stack.worker_pid}, pool {settings.schedule.work_pool}, "
               f"log {stack.logs['worker']}")
    typer.echo(f"use the API    : export PREFECT_API_URL={stack.api_url}")
    typer.echo("stop it all    : bbx down")


@app.command()
def down(
    keep_mongo: Annotated[bool, typer.Option(help="Leave the embedded MongoDB running.")] = False,
) -> None:
    """Stop what `bbx up` started."""
    from bbxcli.up import bring_down

    stopped = bring_down(load_settings(), stop_mongo=not keep_mongo)
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


# --- simulate ------------------------------------------------------------------


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _simulate(customers: int, days: int, seed: int, end: dt.date, dirty: bool | None = None,
              future_days: int | None = None, scenario: str | None = None,
              history_days: int | None = None) -> None:
    from bbx.mongo import connect, mongo_uri
    from simulator import SimulationSpec, simulate

    settings = load_settings()
    sim = settings.simulation
    scenario = scenario or sim.scenario
    spec = SimulationSpec(
        customers=customers, days=days, seed=seed, end=end,
        sessions_per_day=sim.sessions_per_day, annual_churn=sim.annual_churn,
        future_days=sim.future_days if future_days is None else future_days,
        scenario=scenario,
        history_days=(history_days or sim.history_days) if scenario == "short-history" else None,
    )
    with mongo_uri(settings) as uri:
        client = connect(uri, settings)
        try:
            report = simulate(
                client[settings.mongo.database], customers=customers, days=days, seed=seed,
                end=end, sessions_per_day=spec.sessions_per_day,
                annual_churn=spec.annual_churn, future_days=spec.future_days,
                dirty=sim.dirty if dirty is None else dirty, progress=_say,
                scenario=spec.scenario, history_days=spec.history_days,
            )
        finally:
            client.close()
    # What was simulated, so the price-response API can rebuild the same world.
    spec.save(settings.home / "simulation" / "spec.json")
    _say(f"simulated {report.customers} customers over {days} days ending {end} "
         f"in {report.seconds:.0f}s: {report.active_subscriptions} active, "
         f"{report.churned} cancelled (+{report.future_cancellations} in the hidden "
         f"{spec.future_days} days after)")
    for collection, count in report.documents.items():
        typer.echo(f"  {collection:<16} {count:>10,}")
    for kind, count in report.dirt.items():
        typer.echo(f"  dirt {kind:<40} {count:>8,}")
    _print_logins()


def _print_logins() -> None:
    from simulator.credentials import (
        ADMIN_EMAILS,
        ADMIN_PASSWORD,
        CUSTOMER_PASSWORD,
    )

    typer.echo(f"  app login (admin)     {ADMIN_EMAILS[0]} / {ADMIN_PASSWORD}")
    typer.echo(f"  app login (customers) any customer's e-mail / {CUSTOMER_PASSWORD}")


def _continue(days: int, seed: int, app_writers: bool) -> None:
    from bbx.mongo import connect, mongo_uri
    from simulator.continuation import ContinuationError, continue_world

    settings = load_settings()
    with mongo_uri(settings) as uri:
        client = connect(uri, settings)
        try:
            report = continue_world(
                client[settings.mongo.database], days, seed=seed, app_writers=app_writers,
                progress=_say,
            )
        except ContinuationError as exc:
            _fail(str(exc))
            raise  # unreachable: _fail exits
        finally:
            client.close()
    _say(f"continued the world by {days} day(s), {report.first_day} .. {report.last_day}, "
         f"in {report.seconds:.0f}s: {report.customers:,} customers")
    for collection, count in report.documents.items():
        typer.echo(f"  {collection:<18} +{count:>9,}")
    for collection, count in report.updates.items():
        typer.echo(f"  {collection:<18} ~{count:>9,} updated")
    typer.echo("  " + ", ".join(f"{k} {v:,}" for k, v in report.events.items() if v))
    _print_logins()


@app.command()
def simulate(
    customers: Annotated[int | None, typer.Option(help="Customers to simulate.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of history.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    end: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"],
                                                    help="Last day (default yesterday).")] = None,
    dirty: Annotated[bool | None, typer.Option(
        "--dirty/--clean", help="Inject the app's usual dirt (default: simulation.dirty).")] = None,
    future_days: Annotated[int | None, typer.Option(
        help="Days simulated after `end`, kept only in the truth.")] = None,
    scenario: Annotated[str | None, typer.Option(
        help="Churn population: default, contract-driven, short-history or drift "
        "(default: simulation.scenario).")] = None,
    history_days: Annotated[int | None, typer.Option(
        help="short-history: days of usage logs and logins kept "
        "(default: simulation.history_days).")] = None,
    continue_days: Annotated[int | None, typer.Option(
        "--continue-days", min=1,
        help="Continue the world already in the database by this many days (the app's "
             "own writers and customer activity) instead of simulating a new one.")] = None,
    app_writers: Annotated[bool, typer.Option(
        "--app-writers/--no-app-writers",
        help="With --continue-days: run the app's hourly usage, analytics, expiry and "
             "churn-scan writers.")] = True,
) -> None:
    """Write a simulated BroadbandX population into the app's collections, or continue it."""
    sim = load_settings().simulation
    if continue_days is not None:
        _continue(continue_days, sim.seed if seed is None else seed, app_writers)
        return
    try:
        from simulator.scenarios import check

        check(scenario or sim.scenario, history_days)
    except ValueError as exc:
        _fail(str(exc))
    _simulate(customers or sim.customers, days or sim.days,
              sim.seed if seed is None else seed, end.date() if end else _yesterday(),
              dirty=dirty, future_days=future_days, scenario=scenario,
              history_days=history_days)


# --- evaluate ------------------------------------------------------------------


@app.command()
def evaluate(
    as_of: Annotated[list[str], typer.Option(
        "--as-of", help="Scored date YYYY-MM-DD, or a range FROM..TO of scored dates; "
        "repeat to pool.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Compare the pipeline's scores with the simulation's ground truth."""
    import json

    from bbx.mongo import connect, mongo_uri
    from bbxcli.evaluate import evaluate as evaluate_scores
    from bbxcli.evaluate import expand_as_of, format_table

    settings = load_settings()
    try:
        dates = expand_as_of(as_of, settings.lake_dir)
        with mongo_uri(settings) as uri:
            client = connect(uri, settings)
            try:
                figures = evaluate_scores(settings, client[settings.mongo.database], dates)
            finally:
                client.close()
    except (*_known_errors(), ValueError) as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits
    typer.echo(json.dumps(figures) if json_output else format_table(figures, dates))


# --- run -----------------------------------------------------------------------


def _run_nightly(
    as_of: dt.date | None, train: bool, dry_run: bool, force_train: bool = False
) -> dict:
    from flows.nightly import nightly

    try:
        return nightly(as_of=as_of, train=train, force_train=force_train, dry_run=dry_run)
    except _known_errors() as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


@run_app.command("nightly")
def run_nightly(
    as_of: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"],
                                                      help="Scoring date (default today).")] = None,
    train: Annotated[bool, typer.Option(
        help="Retrain when due (churn.retrain_every_days); --no-train never retrains.")] = True,
    force_train: Annotated[bool, typer.Option(help="Retrain now, due or not.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Do everything but publish.")] = False,
    dask: Annotated[str | None, typer.Option(
        "--dask", metavar="ADDRESS",
        help="Dask scheduler to run the customer buckets on (scale.dask_address).")] = None,
) -> None:
    """Run the nightly flow once, in this process."""
    if dask:  # the flow reads its settings itself: hand the address over like any setting
        os.environ["BBX_SCALE__DASK_ADDRESS"] = dask
    summary = _run_nightly(as_of.date() if as_of else None, train, dry_run, force_train)
    scores = summary["scores"]
    _say(f"scored {scores['customers']} customers for {summary['as_of']}: {scores['band_counts']}")


@run_app.command("backfill")
def run_backfill(
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"],
                                               help="First UTC date, inclusive.")],
    end: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"],
                                             help="Last UTC date, inclusive.")],
    train: Annotated[bool, typer.Option(help="Retrain when due for each date.")] = True,
    dry_run: Annotated[bool, typer.Option(help="Change nothing anyone else sees.")] = False,
    skip_done: Annotated[bool, typer.Option(help="Skip nights that already finished.")] = True,
) -> None:
    """Run the nightly work for every date of a range, oldest first, in this process."""
    from flows.backfill import BackfillNightsFailedError, BackfillRangeError, backfill, nights

    try:
        nights(start.date(), end.date())  # refused here, before a flow run exists
        result = backfill(start_date=start.date(), end_date=end.date(), train=train,
                          dry_run=dry_run, skip_done=skip_done)
    except (BackfillRangeError, BackfillNightsFailedError, *_known_errors()) as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits
    _say(f"backfill {start:%Y-%m-%d}..{end:%Y-%m-%d}: ran {', '.join(result['ran']) or 'none'}; "
         f"skipped {', '.join(result['skipped']) or 'none'}")


# --- demo ----------------------------------------------------------------------


@app.command()
def demo(
    customers: Annotated[int | None, typer.Option(help="Customers to simulate.")] = None,
    days: Annotated[int | None, typer.Option(help="Days of history.")] = None,
) -> None:
    """Simulate a population, run the nightly flow on it, and summarise what it published."""
    from bbx.mongo import connect, mongo_uri

    settings = load_settings()
    started = time.perf_counter()
    with mongo_uri(settings) as uri:
        os.environ["MONGODB_URI"] = uri  # the flow and the simulator share this server
        _say(f"MongoDB: {'configured' if settings.mongo.uri else 'embedded'} server up")
        _simulate(customers or settings.simulation.customers,
                  days or settings.simulation.days, settings.simulation.seed, _yesterday())
        _say("running the nightly flow (Prefect starts a temporary API server first)")
        summary = _run_nightly(None, train=True, dry_run=False)
        client = connect(uri, settings)
        try:
            _print_demo_summary(client[settings.mongo.database], summary, settings)
        finally:
            client.close()
    _say(f"demo finished in {time.perf_counter() - started:.0f}s")


def _print_demo_summary(db, summary: dict, settings) -> None:
    from bbx.lake import SCORES_COLLECTION

    scores = db[SCORES_COLLECTION]
    active_users = len(db.subscriptions.distinct("user", {"status": "active"}))
    typer.echo("")
    typer.echo(f"customers scored       {scores.count_documents({}):,} "
               f"(active subscriptions' users: {active_users:,})")
    bands = {d["_id"]: d["n"] for d in scores.aggregate(
        [{"$group": {"_id": "$riskBand", "n": {"$sum": 1}}}])}
    typer.echo("risk bands             " + ", ".join(
        f"{b} {bands.get(b, 0):,}" for b in ("low", "medium", "high")))
    segments = scores.aggregate([{"$group": {"_id": "$segment.name", "n": {"$sum": 1}}},
                                 {"$sort": {"n": -1}}])
    typer.echo("segments               " + ", ".join(f"{s['_id']} {s['n']:,}" for s in segments))
    prices = next(scores.aggregate([{"$group": {
        "_id": None, "static": {"$avg": "$price.base"}, "dynamic": {"$avg": "$price.dynamic"}}}]))
    typer.echo(f"mean monthly price     static ₹{prices['static']:.0f} → "
               f"dynamic ₹{prices['dynamic']:.0f}")
    for name, model in summary["models"].items():
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in model["metrics"].items()
                            if k in ("roc_auc", "pr_auc", "f1", "brier"))
        typer.echo(f"model {name:<16} v{model['version']}  {metrics}")
    typer.echo("")
    typer.echo("where to look:")
    typer.echo(f"  MLflow UI   : {sys.executable} -m mlflow ui --backend-store-uri "
               f"{settings.mlflow_uri}")
    typer.echo(f"  data docs   : {settings.data_docs_dir}/index.html")
    typer.echo(f"  lake        : {settings.lake_dir}")
    typer.echo("  Prefect UI  : .venv/bin/prefect server start  (then http://127.0.0.1:4200)")


if __name__ == "__main__":
    app()
