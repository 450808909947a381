"""Per-session usage logs and app logins, generated one calendar month at a time.

Leavers' sessions, volumes and logins fade over the weeks before they leave
(Timeline.activity); lines hit by a city incident show latency and loss spikes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from bson import ObjectId

from simulator.catalog import DEVICE_TYPES, PLANS
from simulator.encode import SECONDS_PER_DAY, object_ids, to_datetimes
from simulator.population import Population
from simulator.timeline import Timeline

PEAK_START = 13 * 3600 + 1800  # 19:00 IST in UTC seconds of day
PEAK_LENGTH = 4 * 3600  # the evening peak lasts until 23:00 IST
WEEKEND_BOOST = 1.15
BYTES_PER_GB = 1e9
MAX_SESSIONS_PER_CHUNK = 250_000  # about 250 MB of documents in memory at a time


@dataclass(frozen=True)
class Identity:
    """Per-customer strings the logs repeat: ids, device ids, home IP."""

    user_ids: list[ObjectId]
    device_ids: list[list[str]]
    ip_addresses: list[str]
    emails: list[str]


def day_chunks(days: int, first_day_of_month: np.ndarray, max_days: int) -> list[np.ndarray]:
    """Window day indices grouped by calendar month, months split into spans of at most
    max_days (first_day_of_month: bool per window day)."""
    starts = [0, *[d for d in range(1, days) if first_day_of_month[d]]]
    bounds = [*starts, days]
    return [
        np.arange(a, min(a + max_days, b))
        for lo, b in zip(bounds[:-1], bounds[1:], strict=True)
        for a in range(lo, b, max_days)
    ]


def _seconds_of_day(rng: np.random.Generator, peak_share: np.ndarray) -> np.ndarray:
    in_peak = rng.random(len(peak_share)) < peak_share
    peak = PEAK_START + rng.integers(0, PEAK_LENGTH, len(peak_share))
    off = rng.integers(0, SECONDS_PER_DAY - PEAK_LENGTH, len(peak_share))
    off = np.where(off >= PEAK_START, off + PEAK_LENGTH, off)
    return np.where(in_peak, peak, off)


def usage_documents(
    rng: np.random.Generator, pop: Population, tl: Timeline, ident: Identity, days: np.ndarray
) -> tuple[list[dict], np.ndarray]:
    """Usage sessions of the given window days; also returns GB per (day, customer)."""
    activity = tl.activity(pop.start_day, days)
    weekday = (tl.window.start_date + days.astype("m8[D]")).astype("M8[D]").astype(np.int64)
    weekend = np.isin((weekday + 3) % 7, (5, 6))  # 1970-01-01 was a Thursday
    rate = pop.sessions_per_day[None, :] * activity * np.where(weekend, WEEKEND_BOOST, 1.0)[:, None]
    counts = rng.poisson(rate)
    day_pos, customer = np.nonzero(counts)
    reps = counts[day_pos, customer]
    day_pos, customer = np.repeat(day_pos, reps), np.repeat(customer, reps)
    n = len(customer)
    act = activity[day_pos, customer]
    incident = tl.incident[days[day_pos], customer]

    seconds_of_day = _seconds_of_day(rng, pop.peak_share[customer])
    at_peak = (seconds_of_day >= PEAK_START) & (seconds_of_day < PEAK_START + PEAK_LENGTH)
    seconds = tl.window.day_seconds(days[day_pos]) + seconds_of_day
    # On the day they cancel, leavers' sessions stop at the cancellation request.
    request = tl.cancel_request_seconds[customer]
    kept = (request < 0) | (seconds <= request)
    customer, act, incident = customer[kept], act[kept], incident[kept]
    at_peak, seconds = at_peak[kept], seconds[kept]
    n = len(customer)
    mean_bytes = pop.monthly_gb * BYTES_PER_GB / (30.0 * pop.sessions_per_day)
    # Leavers both connect less and do less when they connect.
    download = mean_bytes[customer] * rng.lognormal(-0.32, 0.8, n) * (0.4 + 0.6 * act)
    upload = download * rng.uniform(0.04, 0.15, n)
    plan_down = np.array([p.download_mbps for p in PLANS])[pop.plan][customer]
    plan_up = np.array([p.upload_mbps for p in PLANS])[pop.plan][customer]
    congestion = np.where(at_peak, 0.85, 1.0) * np.where(incident, 0.45, 1.0)
    delivered = pop.speed_factor[customer] * congestion * rng.uniform(0.88, 1.04, n)
    latency = (
        pop.latency_ms[customer]
        * rng.lognormal(0, 0.25, n)
        * np.where(at_peak, 1.3, 1.0)
        * np.where(incident, 3.0, 1.0)
    )
    loss = np.minimum(
        pop.packet_loss_pct[customer] * rng.exponential(1.0, n) + np.where(incident, 2.5, 0.0), 25.0
    )
    duration = rng.lognormal(3.5, 0.7, n) * (0.5 + 0.5 * act)
    device = (rng.random(n) * pop.devices[customer]).astype(np.int64)
    device_type = pop.device_types[customer, device]

    # Time order: the server's _id index takes ascending keys much faster than random ones.
    order = np.argsort(seconds, kind="stable")
    ids = object_ids(rng, seconds[order])
    when = to_datetimes(seconds[order])
    docs = [
        {
            "_id": ids[i],
            "userId": ident.user_ids[c],
            "deviceId": ident.device_ids[c][dv],
            "deviceType": DEVICE_TYPES[dt],
            "timestamp": when[i],
            "download": dl,
            "upload": ul,
            "downloadSpeed": ds,
            "uploadSpeed": us,
            "latency": lat,
            "packetLoss": pl,
            "ipAddress": ident.ip_addresses[c],
            "sessionDuration": dur,
            "createdAt": when[i],
            "updatedAt": when[i],
        }
        for i, c, dv, dt, dl, ul, ds, us, lat, pl, dur in zip(
            range(n),
            customer[order].tolist(),
            device[order].tolist(),
            device_type[order].tolist(),
            np.round(download[order]).tolist(),
            np.round(upload[order]).tolist(),
            np.round((plan_down * delivered)[order], 2).tolist(),
            np.round((plan_up * delivered)[order], 2).tolist(),
            np.round(latency[order], 1).tolist(),
            np.round(loss[order], 3).tolist(),
            np.round(duration[order], 1).tolist(),
            strict=True,
        )
    ]
    # GB per (day of the span, customer): the truth's volumes and the app's daily roll-ups.
    cell = day_pos[kept] * pop.size + customer
    gb = np.bincount(cell, weights=download, minlength=len(days) * pop.size) / BYTES_PER_GB
    return docs, gb.reshape(len(days), pop.size)


def login_documents(
    rng: np.random.Generator, pop: Population, tl: Timeline, ident: Identity, days: np.ndarray
) -> tuple[list[dict], np.ndarray]:
    """auditlogs login rows; also returns each customer's last login second (-1: none)."""
    activity = tl.activity(pop.start_day, days)
    # Leavers log in on the day they cancel (to cancel), otherwise fade like their usage.
    logged_in = rng.random(activity.shape) < np.minimum(pop.logins_per_day[None, :] * activity, 0.9)
    cancel_today = (days[:, None] == tl.cancel_day[None, :]) & (
        days[:, None] >= tl.activity_from_day)  # no login history kept before that day
    logged_in |= cancel_today
    day_pos, customer = np.nonzero(logged_in)
    seconds = tl.window.day_seconds(days[day_pos]) + rng.integers(
        1800, SECONDS_PER_DAY - 1800, len(day_pos)
    )
    on_cancel_day = cancel_today[day_pos, customer]
    request = tl.cancel_request_seconds[customer]
    seconds = np.where(
        on_cancel_day, np.maximum(request - rng.integers(60, 1800, len(day_pos)), 0), seconds
    )
    seconds = np.maximum(seconds, pop.start_seconds[customer])
    order = np.argsort(seconds, kind="stable")  # ascending _ids insert faster
    customer, seconds = customer[order], seconds[order]
    ids = object_ids(rng, seconds)
    when = to_datetimes(seconds)
    docs = [
        login_document(ids[i], ident.user_ids[c], ident.emails[c], ident.ip_addresses[c], when[i])
        for i, c in enumerate(customer.tolist())
    ]
    last = np.full(pop.size, -1, dtype=np.int64)
    np.maximum.at(last, customer, seconds)
    return docs, last


def login_document(
    login_id: ObjectId, user_id: ObjectId, email: str, ip_address: str, when: dt.datetime
) -> dict:
    """The audit row the app writes when a customer logs in."""
    return {
        "_id": login_id,
        "userId": user_id,
        "user": user_id,
        "userEmail": email,
        "userRole": "customer",
        "action": "login",
        "entity": "User",
        "entityId": user_id,
        "details": {"method": "password", "success": True},
        "ipAddress": ip_address,
        "userAgent": "Mozilla/5.0 (BroadbandX web)",
        "timestamp": when,
    }


def monthly_batches(
    seed_rng: Callable[[str, int], np.random.Generator],
    pop: Population,
    tl: Timeline,
    ident: Identity,
) -> Iterator[tuple[str, list[dict], np.ndarray, np.ndarray]]:
    """Yield ('usagelogs'|'auditlogs', documents, summary, days) month by month: the summary
    is GB per (day, customer) for usage, the last login second per customer for logins."""
    dates = (tl.window.start_date + np.arange(tl.window.days).astype("m8[D]")).astype("M8[D]")
    first = dates == dates.astype("M8[M]").astype("M8[D]")
    # Big books are cut into spans of a few days so one span's documents fit in memory.
    sessions_per_day = max(float(pop.sessions_per_day.sum()) * WEEKEND_BOOST, 1.0)
    max_days = int(np.clip(MAX_SESSIONS_PER_CHUNK // sessions_per_day, 1, 31))
    for chunk, days in enumerate(day_chunks(tl.window.days, first, max_days)):
        usage, gb = usage_documents(seed_rng("usage", chunk), pop, tl, ident, days)
        yield "usagelogs", usage, gb, days
        logins, last = login_documents(seed_rng("logins", chunk), pop, tl, ident, days)
        yield "auditlogs", logins, last, days
