"""What a data engineer sees in the Prefect UI after a run: summary, tables, links,
and, when a run fails, a clear message and a Prefect event."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from bbx.schedule import as_of_note, schedule_note
from bbx.settings import Settings
from models.app_documents import plan_price_changes, segment_profiles
from tasks.app_views import AppViewsResult
from tasks.extract import ExtractResult
from tasks.gate import warning_explanation
from tasks.links import CHURN_PLOTS, data_docs_link, mlflow_artifact_link, mlflow_run_link
from tasks.publish import PublishResult, read_priced_scores
from tasks.score import ScoreResult
from tasks.train import TrainResult
from tasks.validate import DataDocsSite

FAILURE_EVENT = "bbx.flow-run.failed"
BANDS = ("low", "medium", "high")


class RefusedBeforeStartError(ValueError):
    """A run refused its parameters before doing any work (nothing to recover)."""


def run_summary(
    as_of: dt.date,
    run_id: str,
    extracts: list[ExtractResult],
    validations: list[Any],
    trained: list[TrainResult],
    scores: ScoreResult,
    published: PublishResult | None,
    app_views: AppViewsResult | None = None,
    dry_run: bool = False,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "as_of": as_of.isoformat(),
        "run_id": run_id,
        "dry_run": dry_run,
        "source": source,
        "rows_extracted": {e.collection: e.rows for e in extracts},
        "rows_quarantined": {v.collection: v.quarantined for v in validations},
        "quarantine_reasons": {v.collection: dict(v.quarantine_reasons) for v in validations
                               if v.quarantine_reasons},
        "repeated_reads": {v.collection: v.repeated_reads for v in validations
                           if v.repeated_reads},
        "warnings": {v.collection: list(v.warnings) for v in validations if v.warnings},
        "data_docs_pages": {v.collection: v.docs_page for v in validations if v.docs_page},
        "models": {t.model: {"version": t.version, "run_id": t.run_id, "metrics": t.metrics,
                             "promoted": t.promoted}
                   for t in trained},
        "scores": asdict(scores),
        "published": asdict(published) if published else None,
        "app_views": asdict(app_views) if app_views else None,
    }


def band_text(band_counts: dict[str, int]) -> str:
    """`low 1,234 · medium 56 · high 7`, in risk order."""
    order = [b for b in BANDS if b in band_counts] + sorted(set(band_counts) - set(BANDS))
    return " · ".join(f"{band} {band_counts[band]:,}" for band in order)


def _experiment_id(run_id: str) -> str | None:
    try:
        from mlflow import MlflowClient

        return MlflowClient().get_run(run_id).info.experiment_id
    except Exception:  # noqa: BLE001 - a missing link must not fail the report
        return None


def _links(settings: Settings | None, summary: dict[str, Any]) -> list[str]:
    if settings is None:
        return []
    lines = ["", "## Where to look", ""]
    docs = DataDocsSite.of(settings).index_page
    lines.append(f"- Data Docs (Great Expectations results, this run's beside earlier "
                 f"nights'): [Data Docs {summary['as_of']}]({data_docs_link(settings, docs)})")
    pages = summary.get("data_docs_pages") or {}
    if pages:  # they stay in the site after the index has moved past this night
        lines.append("- This run's result pages: " + " · ".join(
            f"[{collection}]({data_docs_link(settings, Path(page))})"
            for collection, page in pages.items()))
    for name, model in summary["models"].items():
        experiment = _experiment_id(model["run_id"])
        run_link = mlflow_run_link(settings, experiment, model["run_id"]) if experiment else None
        if run_link is None:
            lines.append(f"- MLflow run of {name} v{model['version']}: `{model['run_id']}` "
                         f"(store `{settings.mlflow_uri}`; `bbx up` serves an MLflow UI)")
            continue
        plots = ""
        if name == "churn":
            plots = "; plots: " + ", ".join(
                f"[{plot.replace('_', ' ')}]"
                f"({mlflow_artifact_link(settings, model['run_id'], f'plots/{plot}.png')})"
                for plot in CHURN_PLOTS)
        lines.append(f"- MLflow: [{name} v{model['version']} run]({run_link}){plots}")
    if settings.reports.mlflow_ui_url and not summary["models"]:
        lines.append(f"- MLflow UI: [{settings.reports.mlflow_ui_url}]"
                     f"({settings.reports.mlflow_ui_url}) (no model trained this run)")
    lines.append(f"- Lake: `{settings.lake_dir}`" + (" (removed after the dry run)"
                                                     if summary["dry_run"] else ""))
    return lines


def _source_lines(source: dict[str, Any] | None) -> list[str]:
    if not source:
        return []
    lines = [f"- read from: {source['detail']}"]
    if source.get("unrewound"):
        lines.append("- **not rewound**: these fields hold the app's current state, not the "
                     f"night's: {', '.join(f'`{f}`' for f in source['unrewound'])}")
    return lines


def _markdown(summary: dict[str, Any], settings: Settings | None = None,
              title: str | None = None) -> str:
    scores = summary["scores"]
    as_of = dt.date.fromisoformat(summary["as_of"])
    label = f"{summary['as_of']} (dry run)" if summary["dry_run"] else summary["as_of"]
    lines = [f"# {title or 'Nightly run'} for {label}", ""]
    if settings is not None:
        lines.append(f"- {as_of_note(as_of, settings.schedule.timezone)}")
    lines += _source_lines(summary.get("source"))
    lines += [
        f"- customers scored: **{scores['customers']:,}**; risk bands: "
        f"{band_text(scores['band_counts'])}",
        f"- models: churn v{scores['churn_model_version']}, "
        f"segmentation v{scores['segment_model_version']}; demand factor {scores['demand']:.3f}",
    ]
    published = summary["published"]
    if summary["dry_run"]:
        lines.append("- published: no (dry run: the app, the registry's aliases and the "
                     "lake's validated state are as they were)")
    elif published is None:
        lines.append("- published: no (this flow does not publish)")
    elif published.get("swapped", True):
        lines.append(f"- published: {published['documents']:,} documents to "
                     f"`{published['collection']}`")
    else:
        lines.append(f"- published: no; {published.get('note')}")
    views = summary.get("app_views")
    if views:
        lines.append(f"- app screens: scan `{views['scan_history_id']}` in churnscanhistories; "
                     f"{views['proposal_note']} ({views['proposal_plans']} plans); "
                     f"{views['alerts']} high-risk alerts")
    for name, model in summary["models"].items():
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in model["metrics"].items()
                            if k in ("roc_auc", "pr_auc", "f1", "brier", "ece", "inertia"))
        verdict = ""
        if name == "churn":
            verdict = (" (would be promoted; not in a dry run)" if summary["dry_run"]
                       and model["promoted"] else " (promoted to champion)" if model["promoted"]
                       else " (not promoted)")
        lines.append(f"- trained {name} v{model['version']}{verdict}: {metrics}")
    quarantined = {c: n for c, n in summary["rows_quarantined"].items() if n}
    lines += ["", "## Quarantined rows", ""]
    if not quarantined:
        lines.append("- none in any table")
    for collection, n in quarantined.items():
        reasons = summary["quarantine_reasons"].get(collection, {})
        lines.append(f"- {collection}: {n} rows; " + ", ".join(
            f"{label} ({count})" for label, count in reasons.items()))
    for collection, n in summary.get("repeated_reads", {}).items():
        lines.append(f"- {collection}: {n} repeated reads of a document kept once")
    if summary["warnings"]:
        lines += ["", "## Data warnings (the run went on)", ""]
        for collection, warnings in summary["warnings"].items():
            for warning in warnings:
                why = warning_explanation(collection, warning)
                lines.append(f"- **{collection}** {warning}" + (f"  \n  _Why it matters:_ {why}"
                                                                 if why else ""))
    lines += _links(settings, summary)
    if settings is not None:
        schedule = settings.schedule
        lines += ["", f"_{schedule_note(schedule.nightly_cron, schedule.timezone)}_"]
    return "\n".join(lines)


def _segment_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Narrow rows (fit the UI): name, size, risk, elasticity, mean price static → dynamic."""
    return [
        {"segment": p["name"], "customers": p["customers"], "share": f"{p['share']:.1%}",
         "high risk": f"{p['highRiskShare']:.1%}", "elasticity": round(p["elasticity"], 2),
         "mean price ₹": f"{p['meanBasePrice']:,.0f} → {p['meanDynamicPrice']:,.0f}"}
        for p in segment_profiles(frame)
    ]


def _price_change_rows(frame: pd.DataFrame, min_change: float,
                       app_views: AppViewsResult | None) -> list[dict[str, Any]]:
    """What the app's proposal holds, and why each other plan is not in it; without app
    views (dry run, train flow) what the prices alone would propose."""
    changes = app_views.proposal_changes if app_views else plan_price_changes(frame, min_change)
    rows = [
        {"plan": c["planName"], "current ₹": f"{c['currentPrice']:,.0f}",
         "proposed ₹": f"{c['proposedPrice']:,.0f}", "change": f"{c['changePercent']:+.1f}%"}
        for c in changes
    ]
    if app_views:
        rows += [{"plan": plan, "current ₹": "", "proposed ₹": "", "change": f"not proposed: {why}"}
                 for plan, why in app_views.proposal_skipped.items()]
    return rows


@task(name="report")
def report_run_task(
    as_of: dt.date,
    run_id: str,
    extracts: list[ExtractResult],
    validations: list[Any],
    trained: list[TrainResult],
    scores: ScoreResult,
    published: PublishResult | None,
    app_views: AppViewsResult | None = None,
    settings: Settings | None = None,
    dry_run: bool = False,
    source: dict[str, Any] | None = None,
    prices_path: str | None = None,
) -> dict[str, Any]:
    summary = run_summary(as_of, run_id, extracts, validations, trained, scores, published,
                          app_views, dry_run, source)
    label = f"{as_of} (dry run)" if dry_run else str(as_of)
    create_markdown_artifact(
        _markdown(summary, settings), key="nightly-summary",
        description=f"What the night {label} did: scores, models, publishing, data "
                    "warnings with their reasons, links to Data Docs and MLflow")
    create_table_artifact(
        [{"collection": e.collection, "rows read": f"{e.rows:,}",
          "quarantined": f"{summary['rows_quarantined'].get(e.collection, 0):,}"}
         for e in extracts],
        key="nightly-rows",
        description=f"Rows per app collection for {label}, and rows the data gate quarantined",
    )
    create_table_artifact(
        [{"band": band, "customers": f"{n:,}"} for band, n in sorted(
            scores.band_counts.items(), key=lambda item: BANDS.index(item[0])
            if item[0] in BANDS else len(BANDS))],
        key="nightly-risk-bands",
        description=f"Customers per churn risk band for {label}",
    )
    frame = read_priced_scores(scores.path, prices_path)
    create_table_artifact(
        _segment_rows(frame), key="nightly-segments",
        description=f"Customer segments for {label}: size, high-risk share, price elasticity, "
                    "mean monthly price static → dynamic",
    )
    min_change = settings.publish.proposal_min_change_percent if settings else 0.0
    changes = _price_change_rows(frame, min_change, app_views)
    create_table_artifact(
        changes or [{"plan": "-", "change": "no plan price moved enough to propose"}],
        key="nightly-price-changes",
        description=(f"Plan price changes proposed to the app for {label}, and why the other "
                     "plans are not" if app_views else
                     f"Plan price changes the prices of {label} would propose (nothing was "
                     "proposed: not checked against proposals pending in the app)"),
    )
    return summary


@task(name="backfill-report")
def report_backfill_task(
    start_date: dt.date, end_date: dt.date, dry_run: bool,
    ran: list[dict[str, Any]], skipped: list[str], failed: list[dict[str, Any]],
) -> str:
    """The `backfill-summary` artifact: every night of the range and what happened to it."""
    label = f"{start_date}..{end_date}" + (" (dry run)" if dry_run else "")
    rows = ([(r["as_of"], "ran", _source_text(r.get("source"))) for r in ran]
            + [(d, "skipped", "already finished (ml_model_metrics has it)") for d in skipped]
            + [(f["as_of"], "**failed**", f["error"]) for f in failed])
    lines = [f"# Backfill {label}", "",
             f"{len(ran)} ran · {len(skipped)} skipped · {len(failed)} failed. Dates are UTC "
             "days; the app keeps showing its newest night.", "",
             "| night | result | read from / why |", "|---|---|---|"]
    lines += [f"| {day} | {result} | {detail} |" for day, result, detail in sorted(rows)]
    unrewound = sorted({f for r in ran for f in (r.get("source") or {}).get("unrewound", [])})
    if unrewound:
        from_app = [r["as_of"] for r in ran if (r.get("source") or {}).get("unrewound")]
        lines += ["", f"**Not rewound** for {', '.join(from_app)} (the lake held no validated "
                  "state of those nights, so they were read from the app as it is now): "
                  f"{', '.join(f'`{f}`' for f in unrewound)} hold today's values, not the "
                  "night's."]
    markdown = "\n".join(lines)
    create_markdown_artifact(markdown, key="backfill-summary",
                             description=f"Nights of backfill {label}: ran, skipped, failed")
    return markdown


def _source_text(source: dict[str, Any] | None) -> str:
    if not source:
        return ""
    if source.get("kind") == "lake":
        return "the lake's validated state of that night"
    return "the app as it is now" + (" (current-state fields not rewound)"
                                     if source.get("unrewound") else "")


def failure_message(flow_name: str, parameters: dict[str, Any], state_message: str | None,
                    refused: bool = False) -> str:
    if "start_date" in parameters or "end_date" in parameters:
        what = f"{parameters.get('start_date')}..{parameters.get('end_date')}"
    else:
        what = f"as-of {parameters.get('as_of') or 'today (UTC)'}"
    head = f"{flow_name} for {what} failed: {state_message or 'no message'}."
    if refused:
        return head + " Nothing was run, so there is nothing to recover: fix the parameters."
    if flow_name == "backfill":
        return head + (" Nights that completed are kept, and the app still sees its newest "
                       "complete night. Fix the cause and rerun the same range: finished nights "
                       "are skipped (docs/runbook.md, 'Backfill').")
    return head + (
        " The app still sees the last complete night (ml_customer_scores is swapped in only "
        "as the publish step's last action). Fix the cause and rerun the same as_of: "
        "scoring finished by this run is reused from the cache, and training runs again "
        "only if still due (docs/runbook.md, 'Recover from a failed night')."
    )


def _raised(state: Any) -> BaseException | None:
    with contextlib.suppress(Exception):
        result = state.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            return result
    return None


def on_flow_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow on_failure hook: a clear log line, a markdown artifact and a Prefect event."""
    from prefect.events import emit_event
    from prefect.logging.loggers import flow_run_logger

    refused = isinstance(_raised(state), RefusedBeforeStartError)
    message = failure_message(flow.name, dict(flow_run.parameters or {}), state.message,
                              refused)
    flow_run_logger(flow_run, flow).error(message)
    # Outside a run context the artifact may not be creatable; the event still carries it.
    with contextlib.suppress(Exception):
        create_markdown_artifact(f"# Run failed\n\n{message}\n", key=f"{flow.name}-failure",
                                 description=f"Why {flow_run.name} failed and what to do")
    emit_event(
        event=FAILURE_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                  "prefect.resource.name": flow_run.name},
        payload={"flow": flow.name, "parameters": {k: str(v) for k, v in
                                                   (flow_run.parameters or {}).items()},
                 "message": message},
    )
