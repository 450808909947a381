"""Publish: the night's scores and prices reach the app, then its views and the
pricing audit trail.

Wiring only. Every step writes MongoDB and retries with backoff (mongo.retries);
each write is keyed by the night, so a retry replaces and never duplicates. The URI
arrives as a SecretStr and the settings redact theirs in JSON: Prefect stores a subflow's
parameters, and the UI shows them, so a production password must not be among them.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff
from pydantic import SecretStr

from bbx.settings import Settings
from tasks.app_views import AppViewsResult, write_app_views_task
from tasks.pricing import PricingResult, record_pricing_task
from tasks.publish import PublishResult, publish_scores_task


@flow(name="publish", validate_parameters=False)
def publish_night(
    mongodb_uri: SecretStr, settings: Settings, as_of: dt.date, run_id: str, scores_path: str,
    priced: PricingResult, started_at: dt.datetime, keep_newer: bool = False,
) -> tuple[PublishResult, AppViewsResult]:
    """Swap tonight's scores in, write the app's views, record the prices the app got."""
    uri = mongodb_uri.get_secret_value()
    retries = {"retries": settings.mongo.retries,
               "retry_delay_seconds": exponential_backoff(settings.mongo.retry_backoff_seconds)}
    published = publish_scores_task.with_options(**retries)(
        uri, settings, as_of, run_id, scores_path, priced.path, keep_newer)
    views = write_app_views_task.with_options(**retries)(
        uri, settings, as_of, run_id, scores_path, started_at,
        propose_prices=published.swapped, projected_impact=priced.projected_impact,
        prices_file=priced.path)
    if published.swapped:  # the audit trail holds the prices the app was given
        record_pricing_task.with_options(**retries)(uri, settings, as_of, run_id, priced)
    return published, views


def publish_in_subflow(
    uri: str, settings: Settings, as_of: dt.date, run_id: str, scores_path: str,
    priced: PricingResult, started_at: dt.datetime, keep_newer: bool = False,
) -> tuple[PublishResult, AppViewsResult]:
    """`publish_night`, named under its parent run (`nightly 2026-12-01 › publish`)."""
    name = f"{flow_run.get_name() or 'nightly'} › publish"
    return publish_night.with_options(flow_run_name=name)(
        SecretStr(uri), settings, as_of, run_id, scores_path, priced, started_at, keep_newer)
