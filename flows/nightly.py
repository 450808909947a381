"""The nightly run: extract → validate → train → score → publish.

Wiring only. Parameters are flat so the Prefect UI can edit them; everything
else comes from the settings (configs/default.yaml, env vars). `run_night` is the
body the `nightly`, `score`, `train` and `backfill` flows share; the flags only some
of them set (keep a newer night, read the lake's validated state, publish) are its
arguments, never a public form's.
"""

from __future__ import annotations

import datetime as dt
import shutil

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from bbx.lake import TABLES
from bbx.mongo import mongo_uri
from bbx.settings import load_settings
from flows.buckets import score_in_buckets
from flows.naming import OptionalDate, night_label
from flows.publish import publish_in_subflow
from tasks.extract import extract_task, write_manifest_task
from tasks.gate import validate_lake_task
from tasks.partition import partition_lake_task
from tasks.point_in_time import app_state_source, lake_night_task, seed_dry_run_lake
from tasks.pricing import plan_anchors_task, price_customers_task
from tasks.registry import check_store_location
from tasks.report import band_text, on_flow_failure, report_run_task
from tasks.score import trained_champions
from tasks.train import train_churn_task, train_segmentation_task, training_due_task
from tasks.validate import validate_features_task


def _nightly_run_name() -> str:
    parameters = flow_run.parameters
    return f"nightly {night_label(parameters.get('as_of'), parameters.get('dry_run', False))}"


def run_night(
    as_of: dt.date | None,
    train: bool = True,
    force_train: bool = False,
    dry_run: bool = False,
    *,
    publish: bool = True,
    keep_newer: bool = False,
    from_lake: bool = False,
) -> dict:
    """One night's work inside the calling flow run (see `nightly` for the flags).

    publish: False skips MongoDB but still promotes (the on-demand `train` flow).
    keep_newer: if the app already sees a later night, leave it (backfill).
    from_lake: reuse the lake's validated state of `as_of` when it holds one (backfill),
      instead of extracting today's app state.
    """
    started_at = dt.datetime.now(dt.UTC)
    settings = load_settings(as_of=as_of)
    as_of = settings.resolved_as_of()
    run_id = str(flow_run.get_id() or f"local-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
    logger = get_run_logger()
    if dry_run:
        # Its own lake and Data Docs: the validated state later nights read stays as it was.
        settings = settings.model_copy(update={"dry_run_id": f"{as_of}-{run_id[:8]}"})
        seed_dry_run_lake(settings, as_of)
        logger.info("dry run: lake %s; nothing is published or promoted", settings.lake_dir)
    check_store_location(settings)  # a moved home stops here, before the lake is written

    with mongo_uri(settings) as uri:
        night = lake_night_task(settings, as_of) if from_lake else None
        if night is not None:
            extracts, validations = night.extracts, night.validations
        else:
            # An unreachable server is retried with backoff (extract.retries); nothing else is.
            extract = extract_task(settings)
            extracts = [extract(uri, settings, c, as_of) for c in TABLES]
            write_manifest_task(settings, as_of, extracts)
            validations = validate_lake_task(settings, as_of,
                                             {e.collection: e.path for e in extracts})
        # Per collection: its full validated history (a table version file; see bbx.lake.history).
        clean = {v.collection: v.history_file or v.clean_file for v in validations}

        # Customers in hash buckets, split once: training, scoring and pricing read them.
        partitions = partition_lake_task(settings, as_of, clean)
        trained = []
        due = training_due_task(settings, as_of, force=force_train) if train or force_train \
            else None
        if due is not None:
            logger.info("training %s: %s", "now" if due.due else "skipped", due.reason)
        if due is not None and due.due:
            trained = [
                train_churn_task(settings, as_of, partitions, dry_run=dry_run),
                train_segmentation_task(settings, as_of, partitions, dry_run=dry_run),
            ]
        # Per bucket, on the Dask cluster when scale.dask_address is set; each bucket is cached
        # by its content + champions: a failed night's rerun resumes here. A dry run that
        # trained scores with the versions a real night would have promoted.
        scores = score_in_buckets(settings, as_of, partitions,
                                  trained_champions(trained) if dry_run else None)
        # The scored feature table has its own suite: a broken feature stops the night here.
        validate_features_task(scores.features_path, settings, as_of)
        # Each plan's band around its anchor (first-seen list prices recorded in Mongo).
        bands = plan_anchors_task(uri, settings, as_of, clean["plans"], run_id,
                                  record=not dry_run)
        # Learned weights, elasticity, A/B arms: the night's prices file, beside the scores.
        priced = price_customers_task(settings, as_of, partitions, scores.path, bands,
                                      scores.segment_model_version)
        published = views = None
        if publish and not dry_run:  # scores, app views, pricing records (Mongo retries)
            published, views = publish_in_subflow(uri, settings, as_of, run_id, scores.path,
                                                  priced, started_at, keep_newer)

    summary = report_run_task(as_of, run_id, extracts, validations, trained, scores, published,
                              views, settings, dry_run=dry_run,
                              source=night.source if night else app_state_source(as_of),
                              prices_path=priced.path)
    logger.info("nightly %s: %s customers scored; risk bands %s", night_label(as_of, dry_run),
                f"{scores.customers:,}", band_text(scores.band_counts))
    if dry_run:  # the report has read it; its Data Docs stay for the run's links
        shutil.rmtree(settings.lake_dir.parent, ignore_errors=True)
    return summary


@flow(name="nightly", flow_run_name=_nightly_run_name, log_prints=True,
      on_failure=[on_flow_failure])
def nightly(
    as_of: OptionalDate = None,
    train: bool = True,
    force_train: bool = False,
    dry_run: bool = False,
) -> dict:
    """Score every active customer for one as-of date and publish the scores to the app.

    The scheduled run (02:00 Asia/Kolkata) leaves `as_of` empty: it processes the UTC
    date current at its start, which at 02:00 IST (20:30 UTC the evening before) is
    the previous calendar day in India.

    Args:
        as_of: The UTC date to score (YYYY-MM-DD), counting the app's data up to the
            end of that day. Leave empty for today (UTC) at the run's start.
        train: Retrain both models when due (every `churn.retrain_every_days`, or when
            there is no champion yet). Off: never train; score with the champions.
        force_train: Retrain now, due or not. A new churn model still becomes champion
            only if it beats the current one.
        dry_run: Do everything but change what the app, the registry's aliases or the
            next night see: no MongoDB writes, no promotion (a trained model is
            registered without alias), the lake's validated state left as it was.
    """
    return run_night(as_of, train, force_train, dry_run)
