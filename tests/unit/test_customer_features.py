"""Churn features, population and labels: point-in-time correctness on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.customer import LakeTables, build_churn_features
from features.labels import churn_labels
from features.registry import CHURN_CONTEXT_COLUMNS, CHURN_FEATURE_NAMES, CHURN_FEATURES
from tests.unit.synthetic import empty_tables, make_tables, plans_table, table

CUT = pd.Timestamp("2026-03-01", tz="UTC")
D = pd.Timedelta(days=1)
NOW = CUT + 60 * D  # the "today" the lake was extracted at


def uid(name: str) -> str:
    return name.encode().hex().ljust(24, "0")[:24]


A, B, C, DD, E, F, G, H, ADMIN = (uid(x) for x in ("A", "B", "C", "D", "E", "F", "G", "H", "admin"))


def base_tables() -> LakeTables:
    """Customers around CUT:
    A live; B cancelled before; C cancel requested after (in 10 days); D non-renewal
    (expired) 15 days after; E starts after; F old contract expired + new live one;
    G unknown status; H active now with a stale cancellation sub-document; admin live.
    """
    plans = plans_table()
    p0, p1 = plans["plan_id"].iloc[0], plans["plan_id"].iloc[3]
    rows = [
        # user, sub, plan, status, start, end, req, eff, updated
        (A, "a1", p0, "active", CUT - 100 * D, NOW + 20 * D, None, None, NOW - D),
        (B, "b1", p0, "cancelled", CUT - 100 * D, None, CUT - 10 * D, CUT - 5 * D, CUT - 10 * D),
        (C, "c1", p1, "cancelled", CUT - 200 * D, None, CUT + 10 * D, CUT + 15 * D, CUT + 10 * D),
        (DD, "d1", p0, "expired", CUT - 50 * D, CUT + 15 * D, None, None, CUT + 20 * D),
        (E, "e1", p0, "active", CUT + 5 * D, None, None, None, CUT + 5 * D),
        (F, "f1", p0, "expired", CUT - 300 * D, CUT - 40 * D, None, None, CUT - 38 * D),
        (F, "f2", p1, "active", CUT - 40 * D, None, None, None, CUT - 40 * D),
        (G, "g1", p0, "trialing", CUT - 30 * D, None, None, None, CUT - 30 * D),
        (H, "h1", p0, "active", CUT - 80 * D, None, CUT - 20 * D, None, CUT - 19 * D),
        (ADMIN, "x1", p0, "active", CUT - 80 * D, None, None, None, CUT - 80 * D),
    ]
    cols = list(zip(*rows, strict=True))
    subs = table(
        "subscriptions",
        user_id=cols[0],
        subscription_id=[uid(s) for s in cols[1]],
        plan_id=cols[2],
        subscription_status=cols[3],
        start_date=cols[4],
        end_date=cols[5],
        cancel_requested_at=cols[6],
        cancel_effective_at=cols[7],
        updated_at=cols[8],
        billing_cycle=["monthly"] * 9 + ["yearly"],
        base_price=500.0,
        discount_applied=[50.0] + [0.0] * 9,
        final_price=[450.0] + [500.0] * 9,
        total_amount=[531.0] + [590.0] * 9,
        auto_renewal=True,
    )
    users = table(
        "users",
        user_id=[A, B, C, DD, E, F, G, H, ADMIN],
        role=["customer"] * 8 + ["admin"],
        customer_since=[CUT - 400 * D] * 9,
        created_at=[CUT - 400 * D] * 9,
        last_login_at=NOW,
        account_status="active",
        nps_score=7.0,
        # A is 40 at CUT (band 40-44); the others have no birth date.
        date_of_birth=[CUT - 40 * 365.25 * D] + [None] * 8,
    )
    usage = table(
        "usagelogs",
        session_id=[uid(f"u{i}") for i in range(4)],
        user_id=[A, A, A, C],
        timestamp=[CUT - 5 * D, CUT - 20 * D, CUT - 45 * D, CUT - 3 * D],
        download_gb=[4.0, 5.0, 18.0, 1.0],
        upload_gb=[1.0, 0.0, 2.0, 0.0],
        latency_ms=[10.0, 30.0, 99.0, np.nan],
        packet_loss_pct=[0.0, 1.0, 5.0, 0.5],
    )
    payments = table(
        "payments",
        payment_id=[uid(f"p{i}") for i in range(3)],
        user_id=[A, A, A],
        payment_status=["failed", "failed", "captured"],
        created_at=[CUT - 10 * D, CUT - 120 * D, CUT - 5 * D],
        failed_at=[CUT - 10 * D, CUT - 120 * D, None],
        captured_at=[None, None, CUT - 5 * D],
        amount=[450.0, 450.0, 531.0],
        method="card",
    )
    tickets = table(
        "supporttickets",
        ticket_id=[uid(f"t{i}") for i in range(3)],
        user_id=[A, A, A],
        created_at=[CUT - 10 * D, CUT - 20 * D, CUT - 200 * D],
        updated_at=[CUT + 5 * D, CUT - 15 * D, CUT - 150 * D],
        ticket_status=["closed", "resolved", "open"],
        priority=["urgent", "low", "high"],
        category=["network", "billing", "technical"],
        satisfaction_rating=[1.0, 4.0, np.nan],
    )
    billings = table(
        "billings",
        invoice_id=[uid(f"i{i}") for i in range(3)],
        user_id=[A, A, A],
        created_at=[CUT - 50 * D, CUT - 20 * D, CUT - 3 * D],
        due_date=[CUT - 43 * D, CUT - 13 * D, CUT + 4 * D],
        # paid on time; paid only after the cutoff (overdue at it); not yet due.
        paid_at=[CUT - 45 * D, CUT + 2 * D, None],
        invoice_status=["paid", "paid", "pending"],
    )
    logins = table(
        "auditlogs",
        login_id=[uid(f"l{i}") for i in range(2)],
        user_id=[A, A],
        timestamp=[CUT - 3 * D, CUT - 40 * D],
    )
    feedbacks = table(
        "feedbacks",
        feedback_id=[uid("f0"), uid("f1")],
        user_id=[A, A],
        overall_rating=[2.0, 4.0],
        created_at=[CUT - 10 * D, CUT - 100 * D],
    )
    tables = empty_tables()
    tables.users, tables.plans, tables.subscriptions = users, plans, subs
    tables.usagelogs, tables.payments, tables.supporttickets = usage, payments, tickets
    tables.auditlogs, tables.feedbacks = logins, feedbacks
    tables.billings = billings
    return tables


def plant_future_events(tables: LakeTables) -> LakeTables:
    """Everything after CUT, plus changes to current-state fields."""
    t = LakeTables(**vars(tables))
    t.usagelogs = pd.concat(
        [
            t.usagelogs,
            table(
                "usagelogs",
                session_id=[uid("fu0"), uid("fu1")],
                user_id=[A, C],
                timestamp=[CUT, CUT + 2 * D],
                download_gb=500.0,
                upload_gb=1.0,
                latency_ms=1000.0,
                device_type="Tablet",
            ),
        ],
        ignore_index=True,
    )
    t.payments = pd.concat(
        [
            t.payments,
            table(
                "payments",
                payment_id=[uid("fp0"), uid("fp1")],
                user_id=[A, A],
                payment_status="failed",
                # fp1 was created before the cutoff but only failed after it.
                created_at=[CUT + D, CUT - D],
                failed_at=[CUT + D, CUT + 2 * D],
                method="card",
            ),
            # Later payments: a new method for A, C, H and F, money taken from A.
            table(
                "payments",
                payment_id=[uid(f"fq{i}") for i in range(4)],
                user_id=[A, C, H, F],
                payment_status="captured",
                created_at=CUT + 2 * D,
                captured_at=CUT + 2 * D,
                amount=999.0,
                method=["wallet", "upi", "netbanking", "cardless_emi"],
            ),
        ],
        ignore_index=True,
    )
    t.supporttickets = pd.concat(
        [
            t.supporttickets,
            table(
                "supporttickets",
                ticket_id=[uid("ft0")],
                user_id=[A],
                created_at=[CUT + D],
                updated_at=[CUT + D],
                ticket_status="resolved",
                priority="urgent",
                category="network",
                satisfaction_rating=1.0,
            ),
            table(
                "supporttickets",
                ticket_id=[uid(f"fk{i}") for i in range(5)],
                user_id=A,
                created_at=CUT + D,
                updated_at=CUT + D,
                ticket_status="open",
                priority="low",
                category=["technical", "billing", "service", "account", "general"],
            ),
        ],
        ignore_index=True,
    )
    t.auditlogs = pd.concat(
        [t.auditlogs, table("auditlogs", login_id=[uid("fl0")], user_id=[A], timestamp=[CUT])],
        ignore_index=True,
    )
    t.feedbacks = pd.concat(
        [
            t.feedbacks,
            table(
                "feedbacks",
                feedback_id=[uid("ff")],
                user_id=[A],
                overall_rating=1.0,
                created_at=[CUT + D],
            ),
        ],
        ignore_index=True,
    )
    t.billings = pd.concat(
        [
            t.billings,
            table(
                "billings",
                invoice_id=[uid("fi0")],
                user_id=[A],
                created_at=[CUT + D],
                due_date=[CUT + 2 * D],
                invoice_status="overdue",
            ),
        ],
        ignore_index=True,
    )
    # Current state changed after the cutoff (A switched auto-renewal off: not read), and
    # new contracts started after it: F down to the cheaper plan, H up to the dearer one.
    subs = t.subscriptions.copy()
    a1 = subs["subscription_id"].eq(uid("a1"))
    subs.loc[a1, "auto_renewal"] = False
    subs.loc[a1, "updated_at"] = CUT + 2 * D
    plans = t.plans["plan_id"]
    t.subscriptions = pd.concat([subs, table(
        "subscriptions", subscription_id=[uid("f3"), uid("h2")], user_id=[F, H],
        plan_id=[plans.iloc[0], plans.iloc[3]], subscription_status="active",
        start_date=[CUT + D, CUT + 2 * D], updated_at=[CUT + D, CUT + 2 * D],
        billing_cycle="monthly", base_price=500.0, final_price=[399.0, 1199.0],
        total_amount=[480.0, 1414.82],
        auto_renewal=True,
    )], ignore_index=True)
    # A degraded session (latency spike, packet loss) at the cutoff instant.
    t.usagelogs.loc[t.usagelogs["session_id"] == uid("fu0"), "packet_loss_pct"] = 20.0
    users = t.users.copy()
    users["last_login_at"] = CUT + 30 * D
    users["nps_score"] = 0.0
    users["account_status"] = "suspended"
    t.users = users
    return t


def test_registry_is_the_column_order() -> None:
    features = build_churn_features(base_tables(), CUT)
    assert list(features.columns) == list(CHURN_CONTEXT_COLUMNS) + list(CHURN_FEATURE_NAMES)
    assert len(set(CHURN_FEATURE_NAMES)) == len(CHURN_FEATURES)
    seed_five = {
        "usage_decline_30d_pct",
        "days_since_last_login",
        "payment_failures_90d",
        "support_tickets_90d",
        "contract_age_months",
    }
    assert seed_five <= set(CHURN_FEATURE_NAMES)
    assert features.index.name == "user_id"


def test_population_is_judged_from_dates() -> None:
    features = build_churn_features(base_tables(), CUT)
    # B cancelled before, E not started, G unknown status, admin: all out.
    assert sorted(features.index) == sorted([A, C, DD, F, H])
    # F: the latest live contract, not the expired one.
    assert features.loc[F, "subscription_id"] == uid("f2")


def test_population_today_equals_active_status() -> None:
    tables = make_tables(n_customers=300, seed=3)
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    features = build_churn_features(tables, as_of)
    subs = tables.subscriptions
    active = subs.loc[subs["subscription_status"].eq("active") & (subs["start_date"] < as_of)]
    assert set(features.index) == set(active["user_id"])
    assert 0 < len(features) < 300


def test_hand_computed_values() -> None:
    f = build_churn_features(base_tables(), CUT).loc[A]
    # last 30d: 5 + 5 = 10 GB; previous 30d: 20 GB -> 50 % decline.
    assert f["usage_gb_30d"] == pytest.approx(10.0)
    assert f["usage_decline_30d_pct"] == pytest.approx(50.0)
    assert f["usage_gb_7d"] == pytest.approx(5.0)
    assert f["usage_gb_90d"] == pytest.approx(30.0)
    assert f["sessions_30d"] == 2 and f["active_days_30d"] == 2
    assert f["mean_latency_ms_30d"] == pytest.approx(20.0)
    assert f["days_since_last_login"] == pytest.approx(3.0)
    assert f["logins_30d"] == 1
    assert f["payment_failures_90d"] == 1  # the 120-day-old failure is out of window
    assert f["support_tickets_90d"] == 2
    # closed ticket updated after CUT: still open at CUT; old "open" one: open.
    assert f["open_tickets"] == 2
    assert f["contract_age_months"] == pytest.approx(100 / 30.4375)
    assert f["days_to_renewal"] == pytest.approx(30.4375 * 4 - 100)
    assert f["discount_share"] == pytest.approx(0.1)
    assert f["feedback_mean_rating_90d"] == pytest.approx(2.0)
    assert f["monthly_price"] == 399.0 and f["plan_category_code"] == 0.0
    # recent trouble and wind-down features
    assert f["payment_failures_30d"] == 1
    assert f["support_tickets_30d"] == 2 and f["network_tickets_30d"] == 1
    assert f["high_priority_tickets_90d"] == 1  # the urgent one; the high one is 200 days old
    # Only the resolved ticket was closed before CUT: 20 - 15 = 5 days, rated 4.
    assert f["mean_resolution_days_90d"] == pytest.approx(5.0)
    assert f["ticket_satisfaction_90d"] == pytest.approx(4.0)
    # 90-day mean latency (10 + 30 + 99) / 3 = 46.3: no 7-day session is over 2x;
    # loss 0 vs mean 2: not degraded either.
    assert f["degraded_sessions_7d"] == 0
    assert f["latency_ratio_7d_90d"] == pytest.approx(10.0 / (139.0 / 3))
    assert f["negative_feedback_90d"] == 1
    assert f["overdue_invoices"] == 1  # due 13 days ago, paid only after the cutoff
    # No login ever: days since customer_since; no usage: NaN latency, 0 decline.
    d = build_churn_features(base_tables(), CUT).loc[DD]
    assert d["days_since_last_login"] == pytest.approx(400.0)
    assert np.isnan(d["mean_latency_ms_30d"]) and d["usage_decline_30d_pct"] == 0.0


def test_events_at_or_after_cutoff_change_nothing() -> None:
    tables = base_tables()
    before = build_churn_features(tables, CUT)
    after = build_churn_features(plant_future_events(tables), CUT)
    pd.testing.assert_frame_equal(before, after)


def test_the_same_events_before_cutoff_do_change_features() -> None:
    # Guard for the test above: the planted rows are read when they are in the past.
    later = CUT + 3 * D
    before = build_churn_features(base_tables(), later)
    after = build_churn_features(plant_future_events(base_tables()), later)
    moved = [
        "usage_gb_7d",
        "payment_failures_90d",
        "support_tickets_90d",
        "logins_30d",
        "feedback_mean_rating_90d",
        # recent trouble and wind-down features
        "payment_failures_30d",
        "support_tickets_30d",
        "network_tickets_30d",
        "high_priority_tickets_90d",
        "mean_resolution_days_90d",
        "ticket_satisfaction_90d",
        "degraded_sessions_7d",
        "latency_ratio_7d_90d",
        "negative_feedback_90d",
        "overdue_invoices",
    ]
    for column in moved:
        a, b = after.loc[A, column], before.loc[A, column]
        assert not (a == b or (np.isnan(a) and np.isnan(b))), column
    # Every other feature the planted rows can reach moves for some customer live at both
    # dates; the rest are fixed at signup or by the lake's coverage, tested by hand below.
    not_moved_by_events = {
        "usage_covered_days", "login_covered_days", "ticket_history_months",
        "payment_history_months", "age_band", "age_band_at_signup", "contract_age_months",
        "days_to_renewal",
        "monthly_price", "plan_category_code", "plan_download_mbps", "billing_cycle_yearly",
        "discount_share", "customer_tenure_months",
    }
    both = before.index.intersection(after.index)
    for column in set(NEW_ACCOUNT_FEATURES) - not_moved_by_events:
        a, b = after.loc[both, column], before.loc[both, column]
        same = (a == b) | (a.isna() & b.isna())
        assert not same.all(), column


NEW_ACCOUNT_FEATURES = [
    name for name in CHURN_FEATURE_NAMES
    if CHURN_FEATURE_NAMES.index(name) > CHURN_FEATURE_NAMES.index("account_tickets_14d")
]


def test_account_features_by_hand() -> None:
    f = build_churn_features(base_tables(), CUT).loc[A]
    # Tickets: all three before CUT (one 200 days old, out of every window but lifetime).
    assert f["support_tickets_lifetime"] == 3 and f["support_tickets_365d"] == 3
    assert f["high_priority_tickets_lifetime"] == 2
    assert f["network_tickets_lifetime"] == 1 and f["technical_tickets_lifetime"] == 1
    assert f["billing_tickets_lifetime"] == 1 and f["billing_tickets_90d"] == 1
    assert f["payment_failures_lifetime"] == 2 and f["payment_failures_365d"] == 2
    assert f["payment_failure_share_lifetime"] == pytest.approx(2 / 3)
    assert f["pays_by_card"] == 1 and f["pays_by_upi"] == 0
    assert f["paid_amount_90d"] == pytest.approx(531.0)
    assert f["paid_amount_trend_90d"] == pytest.approx(531.0)
    assert f["monthly_price_paid"] == pytest.approx(450.0)
    assert f["price_paid_vs_list"] == pytest.approx(450.0 / 399.0)
    assert f["extra_charge_share"] == pytest.approx(81.0 / 450.0)
    assert f["age_band"] == 5.0  # 40: the 40-44 band
    assert f["age_band_at_signup"] == 4.0  # joined 400 days ago, at 38.9: the 35-39 band
    assert f["plan_upgrades"] == 0
    # Coverage: each source's history starts at its first event before CUT.
    assert f["usage_covered_days"] == pytest.approx(45.0)
    assert f["login_covered_days"] == pytest.approx(40.0)
    assert f["ticket_history_months"] == pytest.approx(200 / 30.4375)
    assert f["support_tickets_per_year"] == pytest.approx(3 * 12 / (200 / 30.4375))
    later = build_churn_features(plant_future_events(base_tables()), CUT + 3 * D)
    assert later.loc[H, "plan_upgrades"] == 1 and later.loc[F, "plan_downgrades"] == 1
    assert later.loc[F, "plan_upgrades"] == 1  # its earlier move from Starter to Premium
    assert np.isnan(build_churn_features(base_tables(), CUT).loc[DD, "age_band"])
    assert np.isnan(build_churn_features(base_tables(), CUT).loc[DD, "age_band_at_signup"])


def test_age_band_at_signup_never_reads_past_the_cutoff() -> None:
    """A join date after the cutoff (back-dated or dirty) is not known then: the band is
    the one at the cutoff, and it does not change with how far in the future it lies."""
    tables = base_tables()
    users = tables.users.copy()
    joined_later = users["user_id"].eq(A)
    for days_after in (1, 300):
        users.loc[joined_later, "customer_since"] = CUT + days_after * D
        tables.users = users
        f = build_churn_features(tables, CUT).loc[A]
        assert f["age_band_at_signup"] == f["age_band"] == 5.0
    # Joined 20 years before: the band then, whatever the cutoff.
    users.loc[joined_later, "customer_since"] = CUT - 20 * 365.25 * D
    tables.users = users
    for cutoff in (CUT, CUT + 3 * D):
        assert build_churn_features(tables, cutoff).loc[A, "age_band_at_signup"] == 1.0


def test_windows_before_the_first_recorded_event_are_covered_days_only() -> None:
    """A usage history shorter than a window: per-day rates divide by the covered days,
    and usage_covered_days says how many there were."""
    tables = base_tables()
    rows = [(A, CUT - day * D + 6 * pd.Timedelta(hours=1)) for day in range(1, 31)]
    tables.usagelogs = table(
        "usagelogs", session_id=[uid(f"c{i}") for i in range(len(rows))],
        user_id=[u for u, _ in rows], timestamp=[t for _, t in rows], download_gb=1.0,
        upload_gb=0.0, latency_ms=10.0, packet_loss_pct=0.1,
    )
    f = build_churn_features(tables, CUT).loc[A]
    assert f["usage_covered_days"] == pytest.approx(30.0)
    # A steady customer is at their usual level, not at 90/30 of it.
    assert f["usage_ratio_7d_90d"] == pytest.approx(1.0)
    assert f["sessions_ratio_7d_90d"] == pytest.approx(1.0)
    # With the full 126 days covered the feature says so.
    rows = [(A, CUT - day * D + 6 * pd.Timedelta(hours=1)) for day in range(1, 200)]
    tables.usagelogs = table(
        "usagelogs", session_id=[uid(f"c{i}") for i in range(len(rows))],
        user_id=[u for u, _ in rows], timestamp=[t for _, t in rows], download_gb=1.0,
        upload_gb=0.0, latency_ms=10.0, packet_loss_pct=0.1,
    )
    assert build_churn_features(tables, CUT).loc[A, "usage_covered_days"] == 126.0


def test_a_source_that_had_not_begun_is_unknown_not_silent() -> None:
    """Before usage logs and logins were first recorded (a lake that keeps them for weeks),
    their features are NaN: zero sessions and the longest recency are what a customer who
    went quiet looks like. Every other source's features, and the coverage that says
    nothing was covered, are unchanged."""
    tables = base_tables()
    first_usage = tables.usagelogs["timestamp"].min()
    first_login = tables.auditlogs["timestamp"].min()
    before = min(first_usage, first_login).floor("D") - D
    f = build_churn_features(tables, before)
    usage = [x.name for x in CHURN_FEATURES if x.source_collection in ("usagelogs", "auditlogs")
             and not x.name.endswith("_covered_days")]
    assert len(f) and f[usage].isna().all().all()
    assert (f[["usage_covered_days", "login_covered_days"]] == 0).all().all()
    assert f["contract_age_months"].notna().all()
    # Once a source has begun, its silent customers read as silent again.
    f = build_churn_features(tables, CUT)
    assert f["sessions_30d"].notna().all() and f["days_since_last_login"].notna().all()
    assert f["days_since_last_session"].notna().all()


def test_point_in_time_on_synthetic_history() -> None:
    tables = make_tables(n_customers=200, seed=5)
    cut = pd.Timestamp("2026-04-01", tz="UTC")
    truncated = LakeTables(**vars(tables))
    for name, col in (
        ("usagelogs", "timestamp"),
        ("auditlogs", "timestamp"),
        ("supporttickets", "created_at"),
        ("feedbacks", "created_at"),
        ("billings", "created_at"),
    ):
        frame = getattr(tables, name)
        setattr(truncated, name, frame[frame[col] < cut])
    pay = tables.payments
    truncated.payments = pay[pay["created_at"] < cut]
    pd.testing.assert_frame_equal(
        build_churn_features(tables, cut), build_churn_features(truncated, cut)
    )


@pytest.mark.parametrize(
    ("definition", "horizon", "expected"),
    [
        ("cancelled", 30, {A: 0, C: 1, DD: 0, F: 0, H: 0}),
        ("cancelled", 5, {A: 0, C: 0, DD: 0, F: 0, H: 0}),
        ("cancelled_or_nonrenewal", 30, {A: 0, C: 1, DD: 1, F: 0, H: 0}),
        ("cancelled_or_nonrenewal", 12, {A: 0, C: 1, DD: 0, F: 0, H: 0}),
    ],
)
def test_labels(definition: str, horizon: int, expected: dict[str, int]) -> None:
    tables = base_tables()
    users = build_churn_features(tables, CUT).index
    labels = churn_labels(tables.subscriptions, users, CUT, horizon, definition)  # type: ignore[arg-type]
    assert labels.to_dict() == expected
    assert labels.dtype == np.int64


def test_plan_switch_is_not_churn() -> None:
    tables = base_tables()
    switch = table(
        "subscriptions",
        user_id=[C],
        subscription_id=[uid("c2")],
        plan_id=[tables.plans["plan_id"].iloc[1]],
        subscription_status="active",
        start_date=[CUT + 10 * D],
        updated_at=[CUT + 10 * D],
        billing_cycle="monthly",
    )
    subs = pd.concat([tables.subscriptions, switch], ignore_index=True)
    labels = churn_labels(subs, pd.Index([C]), CUT, 30, "cancelled")
    assert labels[C] == 0


def test_unknown_definition_is_rejected() -> None:
    with pytest.raises(ValueError, match="definition"):
        churn_labels(base_tables().subscriptions, pd.Index([A]), CUT, 30, "left")  # type: ignore[arg-type]


def test_parquet_round_trip_types(tmp_path) -> None:
    """Lake files hold ms timestamps and arrow strings: features must not change."""
    tables = make_tables(n_customers=150, seed=8)
    loaded = {}
    for name, frame in vars(tables).items():
        frame = frame.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column].astype("datetime64[ms, UTC]")
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
        loaded[name] = pd.read_parquet(tmp_path / f"{name}.parquet")
        setattr(tables, name, frame)
    cut = pd.Timestamp("2026-04-15", tz="UTC")
    pd.testing.assert_frame_equal(
        build_churn_features(tables, cut), build_churn_features(LakeTables(**loaded), cut)
    )


def test_feature_docs_match_the_registry() -> None:
    from pathlib import Path

    from features.registry import render_feature_docs

    docs = Path(__file__).resolve().parents[2] / "docs" / "features.md"
    assert docs.read_text() == render_feature_docs(), (
        "docs/features.md is stale: python -m features.registry > docs/features.md"
    )
    for feature in CHURN_FEATURES:
        assert f"`{feature.name}`" in docs.read_text()


# --- wind-down against the customer's own baseline -------------------------------------

WIND_DOWN_COLUMNS = [
    "wind_down_evidence", "wind_down_bayes_factor", "wind_down_days", "wind_down_activity_ratio",
    *(f"sessions_ratio_week{k}" for k in range(1, 7)),
    "gb_per_session_log_change_14d", "minutes_per_session_log_change_14d",
]


def wind_down_tables() -> LakeTables:
    """A (steady), C (drops to a quarter of everything 10 days before CUT), H (only 20 days
    of history): 2 sessions of 2 GB / 40 min and one login a day, 150 days back."""
    tables = base_tables()
    rows = []
    for user, first_day in ((A, 150), (C, 150), (H, 20)):
        for day in range(1, first_day + 1):
            dropped = user == C and day <= 10
            for k in range(1 if dropped else 2):
                rows.append((user, CUT - day * D + (3 + 9 * k) * pd.Timedelta(hours=1),
                             0.5 if dropped else 2.0, 20.0 if dropped else 40.0))
    users, times, gb, minutes = zip(*rows, strict=True)
    tables.usagelogs = table(
        "usagelogs", session_id=[uid(f"w{i}") for i in range(len(rows))], user_id=users,
        timestamp=times, download_gb=gb, upload_gb=0.0, session_minutes=minutes,
        latency_ms=10.0, packet_loss_pct=0.1,
    )
    login_rows = [(u, CUT - day * D + 5 * pd.Timedelta(hours=1))
                  for u, first_day in ((A, 150), (C, 150), (H, 20))
                  for day in range(1, first_day + 1) if not (u == C and day <= 10 and day % 4)]
    tables.auditlogs = table(
        "auditlogs", login_id=[uid(f"wl{i}") for i in range(len(login_rows))],
        user_id=[u for u, _ in login_rows], timestamp=[t for _, t in login_rows],
    )
    tables.supporttickets = pd.concat([tables.supporttickets, table(
        "supporttickets", ticket_id=[uid("wt0"), uid("wt1")], user_id=[C, C],
        created_at=[CUT - 3 * D, CUT - 20 * D], updated_at=[CUT - 2 * D, CUT - 19 * D],
        ticket_status="resolved", priority="low", category="account",
    )], ignore_index=True)
    return tables


def test_wind_down_is_found_against_the_customers_own_baseline() -> None:
    f = build_churn_features(wind_down_tables(), CUT)
    steady, dropped, short = f.loc[A], f.loc[C], f.loc[H]
    # Steady: every week at the usual level, no evidence of a drop.
    assert steady["wind_down_evidence"] == pytest.approx(0.0, abs=1e-9)
    assert steady["wind_down_days"] == 0.0
    for k in range(1, 7):
        assert steady[f"sessions_ratio_week{k}"] == pytest.approx(1.0)
    assert steady["gb_per_session_log_change_14d"] == pytest.approx(0.0, abs=1e-9)
    # Dropped 10 days ago: the best start is 10 days back, at half the sessions.
    assert dropped["wind_down_days"] == 10.0
    # Log-likelihood ratios at s = 10 against one level over the look-back's 126 days.
    def poisson(n1: float, t1: float, n2: float, t2: float) -> float:
        return n1 * np.log(n1 / t1) + n2 * np.log(n2 / t2) - (n1 + n2) * np.log(
            (n1 + n2) / (t1 + t2))

    def gaussian(low: float, high: float) -> float:  # 10 sessions at low, 232 at high
        values = np.r_[np.full(10, low), np.full(232, high)]
        return 10 * 232 / 242 * (low - high) ** 2 / (2 * values.var())

    sessions = poisson(10, 10, 232, 116)  # 1 a day for 10 days, 2 a day for 116 before
    logins = poisson(2, 10, 116, 116)  # days 4 and 8 of the last 10; daily before
    assert dropped["wind_down_evidence"] == pytest.approx(
        sessions + logins + gaussian(np.log(0.5), np.log(2.0))
        + gaussian(np.log(20.0), np.log(40.0)))
    assert dropped["wind_down_activity_ratio"] == pytest.approx(0.5)
    # The average over starts is below the best start's evidence, and well above none.
    assert 5.0 < dropped["wind_down_bayes_factor"] < dropped["wind_down_evidence"]
    assert steady["wind_down_bayes_factor"] == pytest.approx(0.0, abs=1e-9)
    assert dropped["sessions_ratio_week1"] == pytest.approx(0.5)
    assert dropped["sessions_ratio_week2"] == pytest.approx((3 * 1 + 4 * 2) / 14)
    assert dropped["sessions_ratio_week3"] == pytest.approx(1.0)
    # 10 of the 14 days' sessions at a quarter of the GB, half the minutes.
    assert dropped["gb_per_session_log_change_14d"] == pytest.approx(
        10 * np.log(0.25) / (10 + 8))
    assert dropped["minutes_per_session_log_change_14d"] == pytest.approx(
        10 * np.log(0.5) / (10 + 8))
    assert dropped["account_tickets_14d"] == 1  # the 20-day-old one is out of window
    # 20 days of steady history: starts up to 6 days back are tested (14 days before them),
    # no drop is found; too short for weekly ratios against the days before 6 weeks.
    assert short["wind_down_evidence"] == 0.0 and short["wind_down_days"] == 0.0
    assert short[WIND_DOWN_COLUMNS[4:]].isna().all()
    # The 14-day levels need no baseline: the short history has them too.
    assert short["gb_per_session_log_14d"] == pytest.approx(np.log(2.0))
    assert short["minutes_per_session_log_14d"] == pytest.approx(np.log(40.0))
    assert dropped["minutes_per_session_log_14d"] == pytest.approx(
        (10 * np.log(20.0) + 8 * np.log(40.0)) / 18)
    # No session at all: nothing to compare, no level.
    assert build_churn_features(wind_down_tables(), CUT).loc[
        DD, [*WIND_DOWN_COLUMNS, "gb_per_session_log_14d", "minutes_per_session_log_14d"]
    ].isna().all()


def test_wind_down_ignores_events_at_or_after_cutoff() -> None:
    tables = wind_down_tables()
    before = build_churn_features(tables, CUT)
    planted = LakeTables(**vars(tables))
    planted.usagelogs = pd.concat([tables.usagelogs, table(
        "usagelogs", session_id=[uid(f"wf{i}") for i in range(6)], user_id=[A, C] * 3,
        timestamp=[CUT, CUT, CUT + D, CUT + D, CUT + 2 * D, CUT + 2 * D],
        download_gb=0.01, upload_gb=0.0, session_minutes=1.0,
    )], ignore_index=True)
    planted.auditlogs = pd.concat([tables.auditlogs, table(
        "auditlogs", login_id=[uid("wfl0")], user_id=[C], timestamp=[CUT + D],
    )], ignore_index=True)
    planted.supporttickets = pd.concat([tables.supporttickets, table(
        "supporttickets", ticket_id=[uid("wft0")], user_id=[A], created_at=[CUT],
        updated_at=[CUT], ticket_status="open", priority="low", category="account",
    )], ignore_index=True)
    pd.testing.assert_frame_equal(before, build_churn_features(planted, CUT))
    # Guard: three days later the same rows are in the past and move every figure.
    later = CUT + 3 * D
    moved = build_churn_features(planted, later)
    unmoved = build_churn_features(tables, later)
    for column in [*WIND_DOWN_COLUMNS, "account_tickets_14d"]:
        if column in ("wind_down_days", "wind_down_evidence", "wind_down_bayes_factor",
                      "wind_down_activity_ratio",
                      *(f"sessions_ratio_week{k}" for k in range(2, 7))):
            continue  # a few tiny sessions need not change the best start or older weeks
        a, b = moved.loc[A, column], unmoved.loc[A, column]
        assert not (a == b or (np.isnan(a) and np.isnan(b))), column
    assert moved.loc[A, "wind_down_evidence"] > unmoved.loc[A, "wind_down_evidence"]
