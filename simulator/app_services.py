"""The app server's own background writers, as the running BroadbandX server runs them.

- usage generator, every hour: for every subscription with status active (or trial),
  one to three `usagelogs` per user sharing ONE timestamp to the millisecond (distinct
  sessions with their own _id, device and bytes). Volume: about 60% of the plan's data
  cap a month (unlimited plans count as 1000 GB), spread over the hours with an
  evening peak (19-21 h), times a per-user daily factor (+-30%) and 1.2 at weekends;
- usage analytics, every 4 hours: one `usageanalytics` per active subscription with
  `metrics.dataUsed` the user's rolling 30-day total in MB;
- expiry service, daily at 00:01: a subscription past its endDate is renewed if
  auto-renewal is on (endDate + one period, a paymentHistory entry), otherwise it goes
  to `grace_period`, and after GRACE_PERIOD_DAYS to `suspended`;
- churn scan, every 6 hours: one `churnscanhistories` document (scanType automatic)
  from the app's live heuristic, whose high/medium/low counts a bug stores as 0.

Each builder is pure (arrays in, documents out) and deterministic given its rng;
`simulator.continuation` drives them day by day against a world in MongoDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from bson import ObjectId

from simulator.catalog import DEVICE_TYPE_WEIGHTS, DEVICE_TYPES, GRACE_PERIOD_DAYS
from simulator.encode import SECONDS_PER_DAY, object_ids

USAGE_CAP_SHARE = 0.6  # the generator uses about 60% of the plan's cap a month
UNLIMITED_CAP_GB = 1000.0  # what the generator assumes for unlimited plans
DAILY_VARIANCE = 0.3  # +-30% per user and day
WEEKEND_FACTOR = 1.2
MAX_SESSIONS_PER_HOUR = 3
BYTES_PER_MB = 1e6
BYTES_PER_GB = 1e9
IST_OFFSET_SECONDS = 5 * 3600 + 1800  # the server's clock runs on India time
# Relative weight of each local hour (0..23): night low, evening peak at 19-21 h.
HOUR_WEIGHTS = np.array(
    [0.3, 0.2, 0.15, 0.15, 0.15, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0]
    + [1.0, 1.0, 1.0, 1.0, 1.1, 1.3, 1.6, 2.2, 2.4, 2.2, 1.5, 0.8]
)
HOUR_SHARES = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
LIVE_USAGE_STATUSES = ("active", "trial")
SCAN_HIGH, SCAN_MEDIUM = 60, 30  # the app's live heuristic bands risk at 30/60


def _dt(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(seconds), dt.UTC)


def at_millisecond(seconds: int, millisecond: int) -> dt.datetime:
    """A BSON-exact datetime (BSON dates keep milliseconds)."""
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC) + dt.timedelta(
        milliseconds=int(millisecond)
    )


@dataclass(frozen=True)
class PlanTable:
    """The plans as the services read them, aligned by plan index."""

    ids: list[ObjectId]
    names: list[str]
    monthly: np.ndarray  # current pricing.monthly
    yearly: np.ndarray  # current pricing.yearly
    cap_gb: np.ndarray  # data cap in GB (UNLIMITED_CAP_GB for unlimited)
    download_mbps: np.ndarray
    upload_mbps: np.ndarray

    @classmethod
    def from_documents(cls, plans: Sequence[dict]) -> PlanTable:
        def cap(plan: dict) -> float:
            limit = (plan.get("features") or {}).get("dataLimit") or {}
            if limit.get("unlimited") or not limit.get("amount"):
                return UNLIMITED_CAP_GB
            return float(limit["amount"]) * (1000.0 if limit.get("unit") == "TB" else 1.0)

        def speed(plan: dict, key: str) -> float:
            return float(((plan.get("features") or {}).get("speed") or {}).get(key) or 50.0)

        return cls(
            ids=[p["_id"] for p in plans],
            names=[p.get("name", "") for p in plans],
            monthly=np.array([float(p["pricing"]["monthly"]) for p in plans]),
            yearly=np.array([float(p["pricing"].get("yearly") or 0.0) for p in plans]),
            cap_gb=np.array([cap(p) for p in plans]),
            download_mbps=np.array([speed(p, "download") for p in plans]),
            upload_mbps=np.array([speed(p, "upload") for p in plans]),
        )


@dataclass(frozen=True)
class Devices:
    """Per user: the generator's device ids and types, and the home IP."""

    ids: list[list[str]]  # at least MAX_SESSIONS_PER_HOUR per user
    types: list[list[str]]
    ip_addresses: list[str]


def devices_for(user_ids: Sequence[ObjectId]) -> Devices:
    """Stable device ids and IP per user, derived from the user's id (same id, same devices)."""
    ids, types, ips = [], [], []
    weights = np.cumsum(DEVICE_TYPE_WEIGHTS) / np.sum(DEVICE_TYPE_WEIGHTS)
    for uid in user_ids:
        raw = uid.binary
        token = raw.hex()[-10:]
        ids.append([f"gen-{token}-{k}" for k in range(MAX_SESSIONS_PER_HOUR)])
        types.append(
            [
                DEVICE_TYPES[int(np.searchsorted(weights, raw[4 + k] / 256.0, side="right"))]
                for k in range(MAX_SESSIONS_PER_HOUR)
            ]
        )
        ips.append(f"49.{raw[9] % 254 + 1}.{raw[10] % 254 + 1}.{raw[11] % 254 + 1}")
    return Devices(ids, types, ips)


def daily_factors(rng: np.random.Generator, n: int, weekend: bool) -> np.ndarray:
    """Per-user volume factor of one day: +-30% variance, 1.2 at weekends."""
    factor = rng.uniform(1 - DAILY_VARIANCE, 1 + DAILY_VARIANCE, n)
    return factor * (WEEKEND_FACTOR if weekend else 1.0)


def is_weekend(day: dt.date) -> bool:
    """The server's local (India) calendar: Saturday and Sunday."""
    return day.weekday() >= 5


def local_hour(seconds: int) -> int:
    return int((seconds + IST_OFFSET_SECONDS) // 3600 % 24)


def hourly_usage_documents(
    rng: np.random.Generator,
    run_seconds: int,
    users: np.ndarray,
    user_ids: Sequence[ObjectId],
    plan_index: np.ndarray,
    plans: PlanTable,
    devices: Devices,
    day_factor: np.ndarray,
) -> tuple[list[dict], np.ndarray]:
    """One hourly run of the usage generator for the live users (indices into user_ids;
    plan_index and day_factor aligned with users). Every user's 1-3 sessions carry the
    run's single timestamp. Also returns the bytes (down + up) written per user."""
    n = len(users)
    if n == 0:
        return [], np.zeros(0)
    when = at_millisecond(run_seconds, int(rng.integers(0, 1000)))
    monthly_bytes = USAGE_CAP_SHARE * plans.cap_gb[plan_index] * BYTES_PER_GB
    hour_bytes = monthly_bytes / 30.0 * HOUR_SHARES[local_hour(run_seconds)] * day_factor
    sessions = rng.integers(1, MAX_SESSIONS_PER_HOUR + 1, n)
    owner = np.repeat(np.arange(n), sessions)
    slot = np.arange(len(owner)) - np.repeat(np.cumsum(sessions) - sessions, sessions)
    share = rng.gamma(2.0, 1.0, len(owner))
    share /= np.bincount(owner, weights=share, minlength=n)[owner]
    download = np.round(hour_bytes[owner] * share * 0.9)
    upload = np.round(download * rng.uniform(0.05, 0.15, len(owner)))
    delivered = rng.uniform(0.7, 1.0, len(owner))
    down_speed = np.round(plans.download_mbps[plan_index][owner] * delivered, 2)
    up_speed = np.round(plans.upload_mbps[plan_index][owner] * delivered, 2)
    latency = np.round(rng.uniform(5, 50, len(owner)), 1)
    loss = np.round(rng.uniform(0, 1, len(owner)), 3)
    duration = np.round(rng.uniform(5, 60, len(owner)), 1)
    ids = sorted(object_ids(rng, np.full(len(owner), run_seconds)))  # ascending: fast inserts
    user_of = users[owner]
    docs = [
        {
            "_id": ids[k],
            "userId": user_ids[u],
            "deviceId": devices.ids[u][s],
            "deviceType": devices.types[u][s],
            "timestamp": when,
            "download": dl,
            "upload": ul,
            "downloadSpeed": ds,
            "uploadSpeed": us,
            "latency": lat,
            "packetLoss": pl,
            "ipAddress": devices.ip_addresses[u],
            "sessionDuration": dur,
            "createdAt": when,
            "updatedAt": when,
        }
        for k, (u, s, dl, ul, ds, us, lat, pl, dur) in enumerate(
            zip(
                user_of.tolist(),
                slot.tolist(),
                download.tolist(),
                upload.tolist(),
                down_speed.tolist(),
                up_speed.tolist(),
                latency.tolist(),
                loss.tolist(),
                duration.tolist(),
                strict=True,
            )
        )
    ]
    written = np.bincount(owner, weights=download + upload, minlength=n)
    return docs, written


def usage_analytics_documents(
    rng: np.random.Generator,
    run_seconds: int,
    user_ids: Sequence[ObjectId],
    subscription_ids: Sequence[ObjectId],
    rolling_bytes: np.ndarray,
) -> list[dict]:
    """One usageanalytics document per active subscription: dataUsed = the user's
    rolling 30-day total in MB."""
    n = len(user_ids)
    if n == 0:
        return []
    when = at_millisecond(run_seconds, int(rng.integers(0, 1000)))
    day = _dt(run_seconds - run_seconds % SECONDS_PER_DAY)
    ids = sorted(object_ids(rng, np.full(n, run_seconds)))
    mb = np.round(np.asarray(rolling_bytes, dtype=float) / BYTES_PER_MB, 2).tolist()
    return [
        {
            "_id": ids[k],
            "user": user_ids[k],
            "subscription": subscription_ids[k],
            "date": day,
            "metrics": {"dataUsed": mb[k]},
            "anomalies": [],
            "predictions": {},
            "createdAt": when,
            "updatedAt": when,
        }
        for k in range(n)
    ]


@dataclass(frozen=True)
class ExpiryDecisions:
    renew: np.ndarray  # indices: past endDate with auto-renewal on
    to_grace: np.ndarray  # past endDate, auto-renewal off, still active
    to_suspended: np.ndarray  # in grace for GRACE_PERIOD_DAYS already


def expiry_decisions(
    now_seconds: int, status: np.ndarray, end_seconds: np.ndarray, auto_renew: np.ndarray
) -> ExpiryDecisions:
    """What the expiry service does to each subscription when it runs at `now`."""
    past = end_seconds < now_seconds
    active = status == "active"
    grace_over = end_seconds + GRACE_PERIOD_DAYS * SECONDS_PER_DAY < now_seconds
    return ExpiryDecisions(
        renew=np.flatnonzero(active & past & auto_renew),
        to_grace=np.flatnonzero(active & past & ~auto_renew),
        to_suspended=np.flatnonzero((status == "grace_period") & grace_over),
    )


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """JavaScript's setMonth(getMonth() + k), clamped to the month's last day as the
    simulated history does."""
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    next_first = dt.date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_first - dt.timedelta(days=1)).day
    return when.replace(year=year, month=month, day=min(when.day, last_day))


def live_risk_scores(
    payment_failures: np.ndarray, days_since_login: np.ndarray, tenure_days: np.ndarray
) -> np.ndarray:
    """The app's live heuristic (0..100): failed payments, no recent login, new contract."""
    score = (
        10.0
        + 22.0 * np.minimum(payment_failures, 3)
        + np.clip(days_since_login - 7, 0, 30) * 1.2
        + np.where(tenure_days < 90, 10.0, 0.0)
    )
    return np.clip(score, 0, 100)


def churn_scan_document(
    rng: np.random.Generator,
    run_seconds: int,
    user_ids: Sequence[ObjectId],
    risk: np.ndarray,
) -> dict:
    """One automatic scan of the active customers; the app stores its band counts as 0."""
    when = at_millisecond(run_seconds, int(rng.integers(0, 1000)))
    top = np.argsort(-risk, kind="stable")[:10]
    at_risk = [int(k) for k in top if risk[k] >= SCAN_MEDIUM]
    duration_ms = int(200 + 0.4 * len(user_ids) + rng.integers(0, 300))
    return {
        "_id": object_ids(rng, np.array([run_seconds]))[0],
        "scanDate": when,
        "scanType": "automatic",
        "totalCustomers": len(user_ids),
        "highRisk": 0,
        "mediumRisk": 0,
        "lowRisk": 0,
        "averageRiskScore": float(round(risk.mean(), 2)) if len(risk) else 0.0,
        "highestRiskScore": float(round(risk.max(), 2)) if len(risk) else 0.0,
        "topAtRiskCustomers": [
            {
                "userId": user_ids[k],
                "probability": float(round(risk[k], 2)),
                "riskLevel": "High" if risk[k] >= SCAN_HIGH else "Medium",
            }
            for k in at_risk
        ],
        "scanDuration": duration_ms,
        "notes": "Automatic churn scan",
        "status": "completed",
        "createdAt": when,
        "updatedAt": when + dt.timedelta(milliseconds=duration_ms),
    }
