"""Backfill: the nightly work for every date in a range, oldest first.

Wiring only. Each date is one nightly subflow run, so the UI shows each night
on its own. Reruns are idempotent: every write is keyed by the as-of date, and
with `skip_done` nights that already finished are skipped. A night older than the
one the app sees is recorded (scan history, model metrics, lake) but never
swapped in over the newer scores.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger

from bbx.mongo import mongo_uri
from bbx.settings import load_settings
from flows.nightly import nightly
from tasks.app_views import finished_nights_task
from tasks.report import on_flow_failure


class BackfillRangeError(ValueError):
    """The date range is empty or reversed."""


def nights(start_date: dt.date, end_date: dt.date) -> list[dt.date]:
    if end_date < start_date:
        raise BackfillRangeError(f"backfill range is reversed: {start_date} > {end_date}")
    return [start_date + dt.timedelta(days=i) for i in range((end_date - start_date).days + 1)]


@flow(name="backfill", log_prints=True, on_failure=[on_flow_failure])
def backfill(
    start_date: dt.date,
    end_date: dt.date,
    train: bool = True,
    dry_run: bool = False,
    skip_done: bool = True,
) -> dict:
    """Run the nightly work for each date from start_date to end_date (inclusive).

    train: retrain when due for that date (see nightly). dry_run: publish nothing.
    skip_done: skip dates whose night already finished (ml_model_metrics has it).
    """
    logger = get_run_logger()
    dates = nights(start_date, end_date)
    settings = load_settings()
    done: set[dt.date] = set()
    if skip_done and not dry_run:
        with mongo_uri(settings) as uri:
            done = finished_nights_task(uri, settings, dates)
    ran, skipped = [], []
    for as_of in dates:
        if as_of in done:
            skipped.append(as_of.isoformat())
            continue
        nightly.with_options(flow_run_name=f"nightly-{as_of.isoformat()}")(
            as_of=as_of, train=train, dry_run=dry_run, keep_newer=True,
        )
        ran.append(as_of.isoformat())
    logger.info("backfill %s..%s: ran %d nights, skipped %d already finished",
                start_date, end_date, len(ran), len(skipped))
    return {"ran": ran, "skipped": skipped}
