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
from flows.buckets import score_in_buckets
from tasks.app_views import write_app_views_task
from tasks.extract import extract_collection_task, write_manifest_task
from tasks.gate import validate_lake_task
from tasks.partition import partition_lake_task
from tasks.pricing import plan_anchors_task, price_customers_task, record_pricing_task
from tasks.publish import publish_scores_task
from tasks.report import on_flow_failure, report_run_task
from tasks.train import train_churn_task, train_segmentation_task, training_due_task
from tasks.validate import validate_features_task


@flow(name="nightly", log_prints=True, on_failure=[on_flow_failure])
def nightly(
    as_of: dt.date | None = None,
    train: bool = True,
    force_train: bool = False,
    dry_run: bool = False,
    keep_newer: bool = False,
) -> dict:
    """Score every active customer for `as_of` (default today) and publish to the app.

    train: retrain both models when due (`churn.retrain_every_days`, or no champion
      yet); False never trains. Scoring always uses the @champion versions.
    force_train: retrain now, due or not.
    dry_run: do everything but publish.
    keep_newer: if the app already sees a later night, leave it (backfill sets this).
    """
    started_at = dt.datetime.now(dt.UTC)
    settings = load_settings(as_of=as_of)
    as_of = settings.resolved_as_of()
    run_id = str(flow_run.get_id() or f"local-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
    logger = get_run_logger()
    mongo_retries = {
        "retries": settings.mongo.retries,
        "retry_delay_seconds": exponential_backoff(settings.mongo.retry_backoff_seconds),
    }

    with mongo_uri(settings) as uri:
        # Extract retries with backoff inside the task (extract.retries); no Prefect retries.
        extracts = [extract_collection_task(uri, settings, c, as_of) for c in TABLES]
        write_manifest_task(settings, as_of, extracts)
        validations = validate_lake_task(settings, as_of, {e.collection: e.path for e in extracts})
        # Per collection: its full validated history (a table version file; see lake_io).
        clean = {v.collection: v.history_file or v.clean_file for v in validations}

        # Customers in hash buckets (streamed once); training and scoring read bucket by bucket.
        partition_lake_task(settings, as_of, clean)
        trained = []
        due = training_due_task(settings, as_of, force=force_train) if train or force_train \
            else None
        if due is not None:
            logger.info("training %s: %s", "now" if due.due else "skipped", due.reason)
        if due is not None and due.due:
            trained = [
                train_churn_task(settings, as_of, clean),
                train_segmentation_task(settings, as_of, clean),
            ]
        # Per bucket, on the Dask cluster when scale.dask_address is set; each bucket is cached
        # by its content + champions: a failed night's rerun resumes here.
        scores = score_in_buckets(settings, as_of, clean)
        # The scored feature table has its own suite: a broken feature stops the night here.
        validate_features_task(scores.features_path, settings.data_docs_dir, as_of)
        # Each plan's band around its anchor (first-seen list prices recorded in Mongo).
        bands = plan_anchors_task(uri, settings, as_of, clean["plans"], run_id,
                                  record=not dry_run)
        # Learned weights, elasticity, A/B arms: re-prices the scores file in place.
        priced = price_customers_task(settings, as_of, clean, scores.path, bands)
        published = views = None
        if not dry_run:
            publish = publish_scores_task.with_options(**mongo_retries)
            published = publish(uri, settings, as_of, run_id, scores.path, keep_newer)
            write_views = write_app_views_task.with_options(**mongo_retries)
            views = write_views(uri, settings, as_of, run_id, scores.path, started_at,
                                propose_prices=published.swapped,
                                projected_impact=priced.projected_impact)
            if published.swapped:  # the audit trail holds the prices the app was given
                record = record_pricing_task.with_options(**mongo_retries)
                record(uri, settings, as_of, run_id, priced)

    summary = report_run_task(as_of, run_id, extracts, validations, trained, scores, published,
                              views, settings)
    logger.info("nightly %s: %s customers scored, bands %s", as_of, scores.customers,
                scores.band_counts)
    return summary
