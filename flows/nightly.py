"""The nightly run: extract → validate → train → score → publish.

Wiring only. Parameters are flat so the Prefect UI can edit them; everything
else comes from the settings (configs/default.yaml, env vars).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from bbx.lake import TABLES
from bbx.mongo import mongo_uri
from bbx.settings import load_settings
from tasks.extract import extract_collection_task, write_manifest_task
from tasks.gate import validate_lake_task
from tasks.publish import publish_scores_task
from tasks.report import report_run_task
from tasks.score import score_customers_task
from tasks.train import train_churn_task, train_segmentation_task


@flow(name="nightly", log_prints=True)
def nightly(as_of: dt.date | None = None, train: bool = True, dry_run: bool = False) -> dict:
    """Score every active customer for `as_of` (default today) and publish to the app.

    train: retrain and re-register both models first (else use the champions).
    dry_run: do everything but publish.
    """
    settings = load_settings(as_of=as_of)
    as_of = settings.resolved_as_of()
    run_id = str(flow_run.get_id() or f"local-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
    logger = get_run_logger()
    mongo_retries = {
        "retries": settings.mongo.retries,
        "retry_delay_seconds": exponential_backoff(settings.mongo.retry_backoff_seconds),
    }

    with mongo_uri(settings) as uri:
        extract = extract_collection_task.with_options(**mongo_retries)
        extracts = [extract(uri, settings, collection, as_of) for collection in TABLES]
        write_manifest_task(settings, as_of, extracts)
        validations = validate_lake_task(settings, as_of, {e.collection: e.path for e in extracts})
        clean = {v.collection: v.clean_file for v in validations}

        trained = []
        if train:
            trained = [
                train_churn_task(settings, as_of, clean),
                train_segmentation_task(settings, as_of, clean),
            ]
        scores = score_customers_task(settings, as_of, clean)
        published = None
        if not dry_run:
            publish = publish_scores_task.with_options(**mongo_retries)
            published = publish(uri, settings, as_of, run_id, scores.path)

    summary = report_run_task(as_of, run_id, extracts, validations, trained, scores, published)
    logger.info("nightly %s: %s customers scored, bands %s", as_of, scores.customers,
                scores.band_counts)
    return summary
