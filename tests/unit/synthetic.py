"""Small synthetic lake tables with bbx.lake's columns, for unit tests and timing.

`make_tables` plants a churn signal: customers who cancel use less and less over
the 60 days before their cancellation request, log in less and fail more payments.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd

from bbx.lake import TABLES
from features.customer import LakeTables

PLANS = [
    # name, category, monthly INR, down Mbps, unlimited
    ("Starter", "residential", 399.0, 40.0, False),
    ("Basic", "residential", 499.0, 60.0, False),
    ("Standard", "residential", 799.0, 100.0, False),
    ("Premium", "residential", 1199.0, 200.0, True),
    ("Ultra", "residential", 1499.0, 300.0, True),
    ("Business Basic", "business", 999.0, 100.0, False),
    ("Business Pro", "business", 1999.0, 300.0, True),
    ("Enterprise", "enterprise", 3999.0, 500.0, True),
]
DAY = pd.Timedelta(days=1)


def ids(prefix: int, n: int) -> np.ndarray:
    """Distinct 24-char hex ids; `prefix` (0..255) keeps collections apart."""
    return np.char.add(f"{prefix:02x}", np.char.mod("%022x", np.arange(n))).astype(object)


def empty(collection: str) -> pd.DataFrame:
    """An empty lake table with the contract's columns and types."""
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in TABLES[collection].column_names})
    for col in TABLES[collection].columns:
        if str(col.type).startswith("timestamp"):
            frame[col.name] = pd.Series(dtype="datetime64[ms, UTC]")
        elif str(col.type) == "double":
            frame[col.name] = pd.Series(dtype=float)
    return frame


def table(collection: str, **columns: object) -> pd.DataFrame:
    """A lake table from the given columns; missing contract columns are null."""
    data = pd.DataFrame(columns)
    base = empty(collection)
    n = len(data)
    for name in base.columns:
        if name not in data.columns:
            data[name] = pd.Series([None] * n, dtype=base[name].dtype) if n else base[name]
        elif isinstance(base[name].dtype, pd.DatetimeTZDtype):
            data[name] = pd.to_datetime(data[name], utc=True)
    return data[list(base.columns)].reset_index(drop=True)


def with_customer(
    tables: LakeTables, user: str, start: pd.Timestamp, cycle: str = "monthly"
) -> LakeTables:
    """`tables` plus one live customer `user` since `start`, with no events of its own."""
    t = type(tables)(**vars(tables))
    t.subscriptions = pd.concat(
        [
            tables.subscriptions,
            table(
                "subscriptions",
                subscription_id=["ef" * 12],
                user_id=[user],
                plan_id=[tables.plans["plan_id"].iloc[0]],
                subscription_status="active",
                start_date=[start],
                updated_at=[start],
                billing_cycle=cycle,
            ),
        ],
        ignore_index=True,
    )
    return t


def plans_table() -> pd.DataFrame:
    return table(
        "plans",
        plan_id=ids(1, len(PLANS)),
        plan_name=[p[0] for p in PLANS],
        category=[p[1] for p in PLANS],
        monthly_price=[p[2] for p in PLANS],
        yearly_price=[p[2] * 10.8 for p in PLANS],
        currency="INR",
        download_mbps=[p[3] for p in PLANS],
        upload_mbps=[p[3] for p in PLANS],
        data_unlimited=[p[4] for p in PLANS],
        plan_status="active",
    )


def empty_tables() -> LakeTables:
    return LakeTables(**{f.name: empty(f.name) for f in fields(LakeTables)})


CANCEL_AFTER_DAYS = 70  # churners cancel this many days or more into the lake: days must exceed it


def make_tables(
    n_customers: int = 500,
    days: int = 240,
    sessions_per_day: float = 1.5,
    as_of: pd.Timestamp = pd.Timestamp("2026-06-01", tz="UTC"),
    churn_share: float = 0.35,
    seed: int = 0,
) -> LakeTables:
    """A lake of `n_customers` customers over `days` days ending at `as_of` (vectorised)."""
    rng = np.random.default_rng(seed)
    n = n_customers
    first = as_of - pd.Timedelta(days=days)
    plans = plans_table()
    user_ids = ids(2, n)
    plan_idx = rng.integers(0, len(PLANS), n)
    price = plans["monthly_price"].to_numpy()[plan_idx]

    start = first + pd.to_timedelta(rng.uniform(0, days * 0.5, n), unit="D")
    since = start - pd.to_timedelta(rng.uniform(0, 400, n), unit="D")
    churner = rng.random(n) < churn_share
    cancel = pd.Series(start + pd.to_timedelta(rng.uniform(CANCEL_AFTER_DAYS, days, n), unit="D"))
    churner &= (cancel < as_of).to_numpy()
    cancel = cancel.where(churner)
    yearly = rng.random(n) < 0.2
    base = np.where(yearly, price * 12, price)

    users = table(
        "users",
        user_id=np.append(user_ids, ids(3, 1)),
        role=["customer"] * n + ["admin"],
        account_status="active",
        last_login_at=as_of,  # current state: must not influence past features
        customer_since=np.append(since, first),
        created_at=np.append(since, first),
        updated_at=as_of,
        nps_score=7.0,
    )
    subs = table(
        "subscriptions",
        subscription_id=ids(4, n),
        user_id=user_ids,
        plan_id=plans["plan_id"].to_numpy()[plan_idx],
        subscription_status=np.where(churner, "cancelled", "active"),
        start_date=start,
        end_date=start + pd.Timedelta(days=30),
        billing_cycle=np.where(yearly, "yearly", "monthly"),
        base_price=base,
        discount_applied=np.where(yearly, base * 0.1, 0.0),
        final_price=np.where(yearly, base * 0.9, base),
        cancel_requested_at=cancel,
        cancel_effective_at=cancel + pd.Timedelta(days=5),
        created_at=start,
        updated_at=cancel.fillna(as_of),
    )

    # Usage sessions between start and (cancel or as_of).
    end = cancel.fillna(as_of)
    start_np = pd.DatetimeIndex(start).tz_convert(None).to_numpy()
    end_np = pd.DatetimeIndex(end).tz_convert(None).to_numpy()
    live_days = ((end - pd.Series(start)) / DAY).clip(lower=0).to_numpy()
    counts = rng.poisson(live_days * sessions_per_day)
    owner = np.repeat(np.arange(n), counts)
    offset = rng.uniform(0, 1, len(owner)) * live_days[owner]
    ts = start_np[owner] + pd.to_timedelta(offset, unit="D").to_numpy()
    level = rng.lognormal(0.0, 0.5, n) * (price / 800.0)
    days_left = (end_np[owner] - ts) / np.timedelta64(1, "D")
    fade = np.where(churner[owner], np.clip(days_left / 60.0, 0.1, 1.0), 1.0)
    gb = level[owner] * fade * rng.gamma(2.0, 0.5, len(owner))
    usage = table(
        "usagelogs",
        session_id=ids(5, len(owner)),
        user_id=user_ids[owner],
        timestamp=pd.to_datetime(ts, utc=True),
        download_gb=gb * 0.9,
        upload_gb=gb * 0.1,
        latency_ms=rng.normal(20, 5, len(owner)),
        packet_loss_pct=rng.exponential(0.3, len(owner)),
        session_minutes=rng.exponential(40, len(owner)),
        device_type="mobile",
    )

    # Monthly payments; churners fail more often.
    n_pay = np.maximum((live_days // 30).astype(int), 0)
    p_owner = np.repeat(np.arange(n), n_pay)
    k = np.concatenate([np.arange(c) for c in n_pay]) if len(p_owner) else np.zeros(0, int)
    created = start_np[p_owner] + (k * 30).astype("timedelta64[D]")
    fail = rng.random(len(p_owner)) < np.where(churner[p_owner], 0.35, 0.05)
    created_utc = pd.to_datetime(created, utc=True)
    payments = table(
        "payments",
        payment_id=ids(6, len(p_owner)),
        user_id=user_ids[p_owner],
        subscription_id=subs["subscription_id"].to_numpy()[p_owner],
        amount=price[p_owner],
        currency="INR",
        payment_status=np.where(fail, "failed", "captured"),
        method="upi",
        created_at=created_utc,
        failed_at=pd.Series(created_utc).where(fail).to_numpy(),
        captured_at=pd.Series(created_utc).where(~fail).to_numpy(),
    )

    # Logins: churners log in rarely; tickets: churners file more.
    def events(rate_churn: float, rate_stay: float) -> tuple[np.ndarray, np.ndarray]:
        c = rng.poisson(live_days * np.where(churner, rate_churn, rate_stay))
        o = np.repeat(np.arange(n), c)
        t = (
            start_np[o]
            + pd.to_timedelta(rng.uniform(0, 1, len(o)) * live_days[o], unit="D").to_numpy()
        )
        return o, pd.to_datetime(t, utc=True)

    l_owner, l_ts = events(0.05, 0.3)
    logins = table(
        "auditlogs", login_id=ids(7, len(l_owner)), user_id=user_ids[l_owner], timestamp=l_ts
    )
    t_owner, t_ts = events(0.04, 0.01)
    tickets = table(
        "supporttickets",
        ticket_id=ids(8, len(t_owner)),
        user_id=user_ids[t_owner],
        created_at=t_ts,
        updated_at=t_ts + pd.Timedelta(days=2),
        ticket_status="resolved",
        priority="medium",
        category="technical",
    )
    f_owner, f_ts = events(0.01, 0.01)
    feedbacks = table(
        "feedbacks",
        feedback_id=ids(9, len(f_owner)),
        user_id=user_ids[f_owner],
        overall_rating=np.where(churner[f_owner], 2.0, 4.0),
        sentiment="neutral",
        created_at=f_ts,
    )
    return LakeTables(
        users=users,
        plans=plans,
        subscriptions=subs,
        usagelogs=usage,
        payments=payments,
        billings=empty("billings"),
        supporttickets=tickets,
        auditlogs=logins,
        feedbacks=feedbacks,
    )
