"""Why a customer got their churn score, in words a support agent understands (pure).

Input: the model's per-feature contributions to the log-odds (XGBoost
`pred_contribs`) and the feature values. Output per customer: up to `top_k`
features that raise the risk (positive contribution), largest first, each as
{"feature", "value", "effect", "text"}; `effect` is the contribution ("+0.80")
and `text` states the value in plain words, e.g. "No login for 34 days".
Features that lower the risk are never listed: a support agent asking "why might
this customer leave?" does not want "0 failed payments" as an answer. A customer
with no risk-raising feature gets an empty list.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

CATEGORY_NAMES = {0: "residential", 1: "business", 2: "enterprise"}
# Effects are shown with two decimals: a smaller one would read "+0.00", no reason at all.
MIN_SHOWN_EFFECT = 0.005

# feature → sentence about its value (the formatted value is passed in as `v`).
# Every registry feature needs one (tests/unit/test_churn_model.py checks).
REASON_TEMPLATES: dict[str, Callable[[str], str]] = {
    "usage_decline_30d_pct": lambda v: f"Data use down {v}% on the month before"
    if not v.startswith("-") else f"Data use change {v}% on the month before (growth)",
    "days_since_last_login": lambda v: f"No login for {v} days",
    "payment_failures_90d": lambda v: f"{v} failed payments in the last 90 days",
    "payment_failures_30d": lambda v: f"{v} failed payments in the last 30 days",
    "support_tickets_90d": lambda v: f"{v} support tickets in the last 90 days",
    "support_tickets_30d": lambda v: f"{v} support tickets in the last 30 days",
    "open_tickets": lambda v: f"{v} support tickets still open",
    "high_priority_tickets_90d": lambda v: f"{v} high/urgent tickets in the last 90 days",
    "network_tickets_30d": lambda v: f"{v} network/technical tickets in the last 30 days",
    "mean_resolution_days_90d": lambda v: f"Tickets took {v} days to resolve on average",
    "ticket_satisfaction_90d": lambda v: f"Rated support {v}/5 on average",
    "contract_age_months": lambda v: f"Current plan started {v} months ago",
    "usage_gb_7d": lambda v: f"Used {v} GB in the last 7 days",
    "usage_gb_30d": lambda v: f"Used {v} GB in the last 30 days",
    "usage_gb_90d": lambda v: f"Used {v} GB in the last 90 days",
    "active_days_30d": lambda v: f"Online on {v} of the last 30 days",
    "sessions_30d": lambda v: f"{v} sessions in the last 30 days",
    "mean_latency_ms_30d": lambda v: f"Average latency {v} ms over the last 30 days",
    "mean_packet_loss_pct_30d": lambda v: f"Average packet loss {v}% over the last 30 days",
    "degraded_sessions_7d": lambda v: f"{v} sessions with poor connection quality in the "
    "last 7 days",
    "latency_ratio_7d_90d": lambda v: f"Latency this week is {v}x the usual",
    "monthly_price": lambda v: f"Plan costs ₹{v} a month",
    "plan_category_code": lambda v: f"On a {v} plan",
    "plan_download_mbps": lambda v: f"Plan speed {v} Mbps",
    "billing_cycle_yearly": lambda v: "Billed yearly" if v == "1" else "Billed monthly",
    "discount_share": lambda v: f"Gets a {v}% discount",
    "days_to_renewal": lambda v: f"Renews in {v} days",
    "logins_30d": lambda v: f"{v} logins in the last 30 days",
    "feedback_mean_rating_90d": lambda v: f"Rated the service {v}/5 recently",
    "negative_feedback_90d": lambda v: f"{v} negative feedback ratings in the last 90 days",
    "overdue_invoices": lambda v: f"{v} invoices overdue",
    "usage_ratio_7d_90d": lambda v: f"Data use this week is {v}x their usual",
    "usage_ratio_14d_90d": lambda v: f"Data use in the last 2 weeks is {v}x their usual",
    "sessions_ratio_7d_90d": lambda v: f"Sessions this week are {v}x their usual",
    "days_since_last_session": lambda v: f"Last online {v} days ago",
    "customer_tenure_months": lambda v: f"Customer for {v} months",
    "wind_down_evidence": lambda v: f"Activity falling below their usual level (evidence {v})",
    "wind_down_bayes_factor": lambda v: f"Activity falling below their usual level "
    f"(log Bayes factor {v})",
    "wind_down_days": lambda v: f"Activity has been lower for {v} days",
    "wind_down_activity_ratio": lambda v: f"Sessions since the drop are {v}x their usual",
    **{
        f"sessions_ratio_week{k}": (
            lambda v, k=k: f"Sessions {k} week{'s' if k > 1 else ''} ago were {v}x their usual"
            if k > 1 else f"Sessions this week are {v}x their usual (vs 6-18 weeks ago)"
        )
        for k in range(1, 7)
    },
    "gb_per_session_log_change_14d": lambda v: f"Data per session changed by {v} (log) in the "
    "last 2 weeks",
    "minutes_per_session_log_change_14d": lambda v: f"Session length changed by {v} (log) in "
    "the last 2 weeks",
    "gb_per_session_log_14d": lambda v: f"Data per session in the last 2 weeks: {v} (log GB)",
    "minutes_per_session_log_14d": lambda v: f"Session length in the last 2 weeks: {v} (log "
    "minutes)",
    "account_tickets_14d": lambda v: f"{v} account tickets in the last 14 days",
    "usage_covered_days": lambda v: f"Usage history covers {v} days",
    "login_covered_days": lambda v: f"Login history covers {v} days",
    "ticket_history_months": lambda v: f"Ticket history covers {v} months of the tenure",
    "payment_history_months": lambda v: f"Payment history covers {v} months of the tenure",
    "support_tickets_365d": lambda v: f"{v} support tickets in the last year",
    "support_tickets_lifetime": lambda v: f"{v} support tickets as a customer",
    "support_tickets_per_year": lambda v: f"{v} support tickets a year as a customer",
    "high_priority_tickets_lifetime": lambda v: f"{v} high/urgent tickets as a customer",
    "billing_tickets_90d": lambda v: f"{v} billing tickets in the last 90 days",
    **{
        f"{c}_tickets_lifetime": (lambda v, c=c: f"{v} {c} tickets as a customer")
        for c in ("technical", "billing", "service", "account", "network", "general")
    },
    "payment_failures_365d": lambda v: f"{v} failed payments in the last year",
    "payment_failures_lifetime": lambda v: f"{v} failed payments as a customer",
    "payment_failures_per_year": lambda v: f"{v} failed payments a year as a customer",
    "payment_failure_share_lifetime": lambda v: f"{v}% of payments failed",
    "monthly_price_paid": lambda v: f"Pays ₹{v} a month",
    "price_paid_vs_list": lambda v: f"Pays {v}x the plan's list price",
    "extra_charge_share": lambda v: f"Charges on top of the price: {v}%",
    **{
        f"pays_by_{m}": (lambda v, label=label: f"Pays by {label} ({v})")
        for m, label in (("card", "card"), ("upi", "UPI"), ("netbanking", "net banking"),
                         ("wallet", "wallet"), ("emi", "EMI"))
    },
    "paid_amount_90d": lambda v: f"Paid ₹{v} in the last 90 days",
    "paid_amount_365d": lambda v: f"Paid ₹{v} in the last year",
    "paid_per_month_lifetime": lambda v: f"Paid ₹{v} a month on average",
    "paid_amount_trend_90d": lambda v: f"Paid ₹{v} more in the last 90 days than the 90 before",
    "age_band": lambda v: f"Age band {v} (0: under 20, 1: 20-24, ... 11: 70 and over)",
    "age_band_at_signup": lambda v: f"Age band {v} when they joined",
    "device_types_90d": lambda v: f"{v} kinds of device online in the last 90 days",
    "plan_upgrades": lambda v: f"{v} upgrades to a dearer plan",
    "plan_downgrades": lambda v: f"{v} downgrades to a cheaper plan",
}

# Value shown for a missing feature, per feature (else "unknown").
MISSING_TEXT: dict[str, str] = {
    "mean_latency_ms_30d": "No sessions in the last 30 days to measure latency",
    "mean_packet_loss_pct_30d": "No sessions in the last 30 days to measure packet loss",
    "latency_ratio_7d_90d": "Not enough sessions to compare latency",
    "usage_ratio_7d_90d": "No data use in the last 90 days",
    "usage_ratio_14d_90d": "No data use in the last 90 days",
    "sessions_ratio_7d_90d": "No sessions in the last 90 days",
    "feedback_mean_rating_90d": "No feedback in the last 90 days",
    "mean_resolution_days_90d": "No resolved tickets in the last 90 days",
    "ticket_satisfaction_90d": "No support ratings in the last 90 days",
    "payment_failure_share_lifetime": "No settled payment yet",
    "price_paid_vs_list": "Plan list price unknown",
    "extra_charge_share": "Subscription price unknown",
    "age_band": "Age not given",
    "age_band_at_signup": "Age not given",
    "gb_per_session_log_14d": "No sessions in the last 14 days",
    "minutes_per_session_log_14d": "No sessions in the last 14 days",
    **{
        name: "Too little history to compare with their usual activity"
        for name in ("wind_down_evidence", "wind_down_bayes_factor", "wind_down_days",
                     "wind_down_activity_ratio",
                     *(f"sessions_ratio_week{k}" for k in range(1, 7)),
                     "gb_per_session_log_change_14d", "minutes_per_session_log_change_14d")
    },
}


def display_value(feature: str, value: float) -> float | int | str | None:
    """The value as shown to an agent: counts as ints, else one decimal; None if missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if feature == "plan_category_code":
        return CATEGORY_NAMES.get(int(value), "other")
    if feature in ("discount_share", "payment_failure_share_lifetime", "extra_charge_share"):
        return round(100.0 * float(value), 1)
    number = float(value)
    if number.is_integer() or feature.startswith("days_") or feature.endswith("_months"):
        return int(round(number))
    return round(number, 1)


def reason_text(feature: str, value: float | int | str | None) -> str:
    if value is None:
        return MISSING_TEXT.get(feature, f"{feature.replace('_', ' ')}: unknown")
    template = REASON_TEMPLATES.get(feature)
    shown = str(value)
    if template is None:
        return f"{feature.replace('_', ' ')}: {shown}"
    return template(shown)


def churn_reasons(
    features: pd.DataFrame,
    contributions: np.ndarray,
    feature_names: Sequence[str],
    top_k: int,
) -> list[list[dict[str, object]]]:
    """Per row of `features`: up to top_k features with a positive contribution, largest
    first (fewer when fewer raise the risk).

    `contributions` is (rows, len(feature_names)) aligned with `features`' rows.
    Ties are broken by feature order (stable), so the result is deterministic.
    """
    names = list(feature_names)
    contributions = np.asarray(contributions, dtype=float)
    if contributions.shape != (len(features), len(names)):
        raise ValueError(
            f"contributions shape {contributions.shape} does not match "
            f"{len(features)} rows × {len(names)} features"
        )
    if len(features) == 0:
        return []
    k = min(top_k, len(names))
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    values = features[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    reasons: list[list[dict[str, object]]] = []
    for row in range(len(features)):
        items = []
        for col in order[row]:
            if not contributions[row, col] >= MIN_SHOWN_EFFECT:
                break  # sorted: the rest lower the risk (or do next to nothing)
            feature = names[col]
            shown = display_value(feature, values[row, col])
            items.append({
                "feature": feature,
                "value": shown,
                "effect": f"{contributions[row, col]:+.2f}",
                "text": reason_text(feature, shown),
            })
        reasons.append(items)
    return reasons


def reasons_to_json(reasons: list[list[dict[str, object]]]) -> list[str]:
    """One JSON string per customer: keeps the scores Parquet flat."""
    return [json.dumps(r, ensure_ascii=False) for r in reasons]
