"""Backfill: the nightly work for every date in a range, oldest first.

Wiring only. The range is checked before any night runs. Each date is one
`backfill-night` subflow run named under its parent, so the UI shows each night on
its own. Reruns are idempotent: every write is keyed by the as-of date, and with
`skip_done` nights that already finished are skipped. A night the lake already holds
validated is rebuilt from that state, not from today's app; an older night is read
from the app, whose current-state fields the summary names. A night older than the
one the app sees is recorded (scan history, model metrics, lake) but never swapped in
over the newer scores. One failed night does not stop the later ones; the run fails
at the end, naming the failed nights.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from bbx.mongo import mongo_uri
from bbx.settings import load_settings
from flows.naming import night_label
from flows.nightly import run_night
from tasks.app_views import finished_nights_task
from tasks.report import RefusedBeforeStartError, on_flow_failure, report_backfill_task


class BackfillRangeError(RefusedBeforeStartError):
    """The date range is reversed or reaches past today (UTC)."""


class BackfillNightsFailedError(RuntimeError):
    """Some nights of the range failed; the message names them and why."""


def nights(start_date: dt.date, end_date: dt.date, today: dt.date | None = None) -> list[dt.date]:
    """Every date from start_date to end_date, inclusive; refuses a range no night can run."""
    if end_date < start_date:
        raise BackfillRangeError(
            f"backfill refused: the range is reversed (start_date {start_date} is after "
            f"end_date {end_date}); no night was run. Swap the two dates.")
    today = today or dt.datetime.now(dt.UTC).date()
    if end_date > today:
        raise BackfillRangeError(
            f"backfill refused: end_date {end_date} is after today ({today}, UTC); no night "
            "was run. A night can only be computed once its day has begun.")
    return [start_date + dt.timedelta(days=i) for i in range((end_date - start_date).days + 1)]


def range_label(start_date: object, end_date: object, dry_run: bool = False) -> str:
    label = f"{start_date}..{end_date}"
    return f"{label} (dry run)" if dry_run else label


def _backfill_run_name() -> str:
    parameters = flow_run.parameters
    return "backfill " + range_label(parameters.get("start_date"), parameters.get("end_date"),
                                     parameters.get("dry_run", False))


@flow(name="backfill-night", log_prints=True, validate_parameters=False)
def backfill_night(as_of: dt.date, train: bool, dry_run: bool) -> dict:
    """One night of a backfill: from the lake's validated state of that night when the
    lake holds it, else from the app; never replaces a newer night the app sees."""
    return run_night(as_of, train, False, dry_run, keep_newer=True, from_lake=True)


@flow(name="backfill", flow_run_name=_backfill_run_name, log_prints=True,
      on_failure=[on_flow_failure])
def backfill(
    start_date: dt.date,
    end_date: dt.date,
    train: bool = True,
    dry_run: bool = False,
    skip_done: bool = True,
) -> dict:
    """Run the nightly work for each UTC date from start_date to end_date, oldest first.

    A night the lake already holds validated is rebuilt from that night's validated
    lake state; an earlier night is read from the app as it is today, minus what was
    created after the night (the summary lists the current-state fields that could not
    be rewound). The app keeps showing its newest night.

    Args:
        start_date: First UTC date to run (YYYY-MM-DD), inclusive.
        end_date: Last UTC date to run (YYYY-MM-DD), inclusive; not before start_date
            and not after today (UTC). The range is checked before any night runs.
        train: Retrain when due for each date (every `churn.retrain_every_days`).
            Off: score every night with the current champions.
        dry_run: Run every night without changing what the app, the registry's aliases
            or the next night see (see the nightly's dry run).
        skip_done: Skip dates whose night already finished (ml_model_metrics has it).
    """
    logger = get_run_logger()
    dates = nights(start_date, end_date)
    parent = flow_run.get_name() or f"backfill {range_label(start_date, end_date, dry_run)}"
    settings = load_settings()
    done: set[dt.date] = set()
    if skip_done and not dry_run:
        with mongo_uri(settings) as uri:
            done = finished_nights_task(uri, settings, dates)
    ran: list[dict] = []
    skipped: list[str] = []
    failed: list[dict] = []
    for as_of in dates:
        if as_of in done:
            skipped.append(as_of.isoformat())
            continue
        name = f"{parent} › nightly {night_label(as_of, dry_run)}"
        state = backfill_night.with_options(flow_run_name=name)(
            as_of=as_of, train=train, dry_run=dry_run, return_state=True)
        if state.is_completed():
            summary = state.result()
            ran.append({"as_of": as_of.isoformat(), "source": summary.get("source"),
                        "customers": summary["scores"]["customers"]})
        else:
            failed.append({"as_of": as_of.isoformat(), "error": state.message or str(state)})
            logger.error("backfill night %s failed: %s", as_of, state.message)
    result = {"ran": [r["as_of"] for r in ran], "skipped": skipped,
              "failed": [f["as_of"] for f in failed],
              "read_from": {r["as_of"]: r["source"]["kind"] for r in ran if r["source"]}}
    report_backfill_task(start_date, end_date, dry_run, ran, skipped, failed)
    logger.info("backfill %s: ran %d nights, skipped %d already finished, %d failed",
                range_label(start_date, end_date, dry_run), len(ran), len(skipped), len(failed))
    if failed:
        raise BackfillNightsFailedError(
            f"{len(failed)} of {len(dates)} nights failed: "
            + "; ".join(f"{f['as_of']}: {f['error']}" for f in failed)
            + ". The other nights are kept; rerun the same range to retry (finished nights "
            "are skipped).")
    return result
