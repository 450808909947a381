"""What a data engineer sees in the Prefect UI after a run: summary, tables, links,
and, when a run fails, a clear message and a Prefect event."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import asdict
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from bbx.settings import Settings
from tasks.app_views import AppViewsResult, plan_price_changes, segment_profiles
from tasks.extract import ExtractResult
from tasks.publish import PublishResult
from tasks.score import ScoreResult
from tasks.train import TrainResult

FAILURE_EVENT = "bbx.flow-run.failed"


def run_summary(
    as_of: dt.date,
    run_id: str,
    extracts: list[ExtractResult],
    validations: list[Any],
    trained: list[TrainResult],
    scores: ScoreResult,
    published: PublishResult | None,
    app_views: AppViewsResult | None = None,
) -> dict[str, Any]:
    return {
        "as_of": as_of.isoformat(),
        "run_id": run_id,
        "rows_extracted": {e.collection: e.rows for e in extracts},
        "rows_quarantined": {v.collection: v.quarantined for v in validations},
        "quarantine_reasons": {v.collection: dict(v.quarantine_reasons) for v in validations
                               if v.quarantine_reasons},
        "repeated_reads": {v.collection: v.repeated_reads for v in validations
                           if v.repeated_reads},
        "warnings": {v.collection: list(v.warnings) for v in validations if v.warnings},
        "models": {t.model: {"version": t.version, "run_id": t.run_id, "metrics": t.metrics}
                   for t in trained},
        "scores": asdict(scores),
        "published": asdict(published) if published else None,
        "app_views": asdict(app_views) if app_views else None,
    }


def _links(settings: Settings | None, summary: dict[str, Any]) -> list[str]:
    if settings is None:
        return []
    lines = ["", "## Where to look", ""]
    run_ids = [m["run_id"] for m in summary["models"].values()]
    lines.append(
        f"- MLflow: `mlflow ui --backend-store-uri {settings.mlflow_uri}` "
        "(then http://127.0.0.1:5000)"
        + (f"; runs {', '.join(f'`{r}`' for r in run_ids)}" if run_ids else "")
    )
    docs = settings.data_docs_dir / "index.html"
    lines.append(f"- Data Docs: [{docs}]({docs.as_uri()})")
    lines.append(f"- Lake: `{settings.lake_dir}`")
    return lines


def _markdown(summary: dict[str, Any], settings: Settings | None = None) -> str:
    scores = summary["scores"]
    lines = [
        f"# Nightly run for {summary['as_of']}",
        "",
        f"- customers scored: **{scores['customers']}**; risk bands: {scores['band_counts']}",
        f"- models: churn v{scores['churn_model_version']}, "
        f"segmentation v{scores['segment_model_version']}; demand factor {scores['demand']:.3f}",
    ]
    published = summary["published"]
    if published is None:
        lines.append("- published: no (dry run)")
    elif published.get("swapped", True):
        lines.append(f"- published: {published['documents']} documents to "
                     f"`{published['collection']}`")
    else:
        lines.append(f"- published: no; {published.get('note')}")
    views = summary.get("app_views")
    if views:
        lines.append(f"- app screens: scan `{views['scan_history_id']}` in churnscanhistories; "
                     f"{views['proposal_note']} ({views['proposal_plans']} plans); "
                     f"{views['alerts']} high-risk alerts")
    for name, model in summary["models"].items():
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in model["metrics"].items())
        lines.append(
            f"- trained {name} v{model['version']} (MLflow run `{model['run_id']}`): {metrics}"
        )
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
        lines += ["", "## Data warnings", ""]
        lines += [f"- {c}: {w}" for c, ws in summary["warnings"].items() for w in ws]
    lines += _links(settings, summary)
    return "\n".join(lines)


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
) -> dict[str, Any]:
    summary = run_summary(as_of, run_id, extracts, validations, trained, scores, published,
                          app_views)
    create_markdown_artifact(_markdown(summary, settings), key="nightly-summary")
    create_table_artifact(
        [
            {"collection": e.collection, "extracted": e.rows,
             "quarantined": summary["rows_quarantined"].get(e.collection, 0)}
            for e in extracts
        ],
        key="nightly-rows",
    )
    create_table_artifact(
        [{"band": band, "customers": n} for band, n in scores.band_counts.items()],
        key="nightly-risk-bands",
    )
    frame = pd.read_parquet(scores.path)
    create_table_artifact(segment_profiles(frame), key="nightly-segments")
    min_change = settings.publish.proposal_min_change_percent if settings else 0.0
    changes = [{k: (str(v) if k in ("plan", "_id") else v) for k, v in c.items()}
               for c in plan_price_changes(frame, min_change)]
    create_table_artifact(
        changes or [{"planName": "-", "reason": "no plan price moved enough to propose"}],
        key="nightly-price-changes",
    )
    return summary


def failure_message(flow_name: str, parameters: dict[str, Any], state_message: str | None) -> str:
    as_of = parameters.get("as_of") or "today"
    return (
        f"{flow_name} for as-of {as_of} failed: {state_message or 'no message'}. "
        "The app still sees the last complete night (ml_customer_scores is swapped in only "
        "as the publish step's last action). Fix the cause and rerun the same as_of: "
        "training and scoring finished by this run are reused from the cache "
        "(docs/runbook.md, 'Recover from a failed night')."
    )


def on_flow_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow on_failure hook: a clear log line, a markdown artifact and a Prefect event."""
    from prefect.events import emit_event
    from prefect.logging.loggers import flow_run_logger

    message = failure_message(flow.name, dict(flow_run.parameters or {}), state.message)
    flow_run_logger(flow_run, flow).error(message)
    # Outside a run context the artifact may not be creatable; the event still carries it.
    with contextlib.suppress(Exception):
        create_markdown_artifact(f"# Run failed\n\n{message}\n", key=f"{flow.name}-failure")
    emit_event(
        event=FAILURE_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                  "prefect.resource.name": flow_run.name},
        payload={"flow": flow.name, "parameters": {k: str(v) for k, v in
                                                   (flow_run.parameters or {}).items()},
                 "message": message},
    )
