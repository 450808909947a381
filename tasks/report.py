"""What a data engineer sees in the Prefect UI after a run: summary and tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.extract import ExtractResult
from tasks.publish import PublishResult
from tasks.score import ScoreResult
from tasks.train import TrainResult


def run_summary(
    as_of: dt.date,
    run_id: str,
    extracts: list[ExtractResult],
    validations: list[Any],
    trained: list[TrainResult],
    scores: ScoreResult,
    published: PublishResult | None,
) -> dict[str, Any]:
    return {
        "as_of": as_of.isoformat(),
        "run_id": run_id,
        "rows_extracted": {e.collection: e.rows for e in extracts},
        "rows_quarantined": {v.collection: v.quarantined for v in validations},
        "warnings": {v.collection: list(v.warnings) for v in validations if v.warnings},
        "models": {t.model: {"version": t.version, "run_id": t.run_id, "metrics": t.metrics}
                   for t in trained},
        "scores": asdict(scores),
        "published": asdict(published) if published else None,
    }


def _markdown(summary: dict[str, Any]) -> str:
    scores = summary["scores"]
    lines = [
        f"# Nightly run for {summary['as_of']}",
        "",
        f"- customers scored: **{scores['customers']}**; risk bands: {scores['band_counts']}",
        f"- models: churn v{scores['churn_model_version']}, "
        f"segmentation v{scores['segment_model_version']}; demand factor {scores['demand']:.3f}",
    ]
    published = summary["published"]
    lines.append(f"- published: {published['documents']} documents" if published
                 else "- published: no (dry run)")
    for name, model in summary["models"].items():
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in model["metrics"].items())
        lines.append(
            f"- trained {name} v{model['version']} (MLflow run `{model['run_id']}`): {metrics}"
        )
    if summary["warnings"]:
        lines += ["", "## Data warnings", ""]
        lines += [f"- {c}: {w}" for c, ws in summary["warnings"].items() for w in ws]
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
) -> dict[str, Any]:
    summary = run_summary(as_of, run_id, extracts, validations, trained, scores, published)
    create_markdown_artifact(_markdown(summary), key="nightly-summary")
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
    return summary
