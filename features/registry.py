"""The one registry of churn features: model column order and documentation.

`CHURN_FEATURES` is the single source of truth: `build_churn_features` emits the
columns in this order, the churn model is trained on `CHURN_FEATURE_NAMES`, and
docs render the table from `feature_table()`.

Every feature is point-in-time: computed only from event-dated rows with time
strictly before the cutoff (see features/customer.py). `window_days` is the
look-back window ending at the cutoff (None: no window, e.g. a duration).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    source_collection: str
    window_days: int | None


CHURN_FEATURES: tuple[Feature, ...] = (
    # The seed's five (the paper's claimed top importances).
    Feature(
        "usage_decline_30d_pct",
        "Decline of GB used in the last 30 days vs the 30 days before, in % "
        "(100 = stopped using; negative = growth, floored at -100; 0 when both are 0).",
        "usagelogs",
        60,
    ),
    Feature(
        "days_since_last_login",
        "Days from the last portal login (auditlogs action=login) to the cutoff; with no "
        "login yet, days since customer_since (else users.created_at, else subscription start).",
        "auditlogs",
        None,
    ),
    Feature(
        "payment_failures_90d",
        "Failed payment attempts (failed_at, else created_at of status=failed) in the last "
        "90 days. Not the app's resetting subscriptions.paymentFailures counter.",
        "payments",
        90,
    ),
    Feature(
        "support_tickets_90d",
        "Support tickets created in the last 90 days.",
        "supporttickets",
        90,
    ),
    Feature(
        "open_tickets",
        "Tickets created before the cutoff and open at it: a ticket is counted open unless "
        "it is resolved/closed now AND was last updated before the cutoff.",
        "supporttickets",
        None,
    ),
    Feature(
        "contract_age_months",
        "Months (30.44 days) since the current subscription's start_date.",
        "subscriptions",
        None,
    ),
    # Cheap, point-in-time correct additions.
    Feature("usage_gb_7d", "GB downloaded + uploaded in the last 7 days.", "usagelogs", 7),
    Feature("usage_gb_30d", "GB downloaded + uploaded in the last 30 days.", "usagelogs", 30),
    Feature("usage_gb_90d", "GB downloaded + uploaded in the last 90 days.", "usagelogs", 90),
    Feature(
        "active_days_30d",
        "Distinct UTC days with at least one session, last 30 days.",
        "usagelogs",
        30,
    ),
    Feature("sessions_30d", "Usage sessions in the last 30 days.", "usagelogs", 30),
    Feature(
        "mean_latency_ms_30d",
        "Mean session latency (ms), last 30 days; NaN without sessions.",
        "usagelogs",
        30,
    ),
    Feature(
        "mean_packet_loss_pct_30d",
        "Mean session packet loss (%), last 30 days; NaN without sessions.",
        "usagelogs",
        30,
    ),
    Feature(
        "monthly_price",
        "The plan's list price per month (plans.pricing.monthly, INR).",
        "plans",
        None,
    ),
    Feature(
        "plan_category_code",
        "Plan category: residential 0, business 1, enterprise 2 (else NaN).",
        "plans",
        None,
    ),
    Feature("plan_download_mbps", "Plan download speed (Mbps): the tier.", "plans", None),
    Feature(
        "billing_cycle_yearly",
        "1 if the subscription is billed yearly, else 0.",
        "subscriptions",
        None,
    ),
    Feature(
        "discount_share",
        "discount_applied / base_price of the subscription (both per cycle, set at signup).",
        "subscriptions",
        None,
    ),
    Feature(
        "days_to_renewal",
        "Days until the next renewal, from start_date + whole cycles (30.44 or 365.25 days); "
        "never from the current-state end_date.",
        "subscriptions",
        None,
    ),
    Feature("logins_30d", "Portal logins in the last 30 days.", "auditlogs", 30),
    Feature(
        "feedback_mean_rating_90d",
        "Mean overall feedback rating (1..5), last 90 days; NaN without feedback.",
        "feedbacks",
        90,
    ),
    Feature(
        "customer_tenure_months",
        "Months since users.customer_since (else created_at, else subscription start).",
        "users",
        None,
    ),
    # Recent trouble: service quality, tickets, billing.
    Feature(
        "payment_failures_30d",
        "Failed payment attempts (as payment_failures_90d) in the last 30 days.",
        "payments",
        30,
    ),
    Feature("support_tickets_30d", "Support tickets created in the last 30 days.",
            "supporttickets", 30),
    Feature(
        "network_tickets_30d",
        "Tickets of category network or technical created in the last 30 days (category is "
        "set when the ticket is opened).",
        "supporttickets",
        30,
    ),
    Feature(
        "high_priority_tickets_90d",
        "Tickets of priority high or urgent created in the last 90 days (priority as stored: "
        "agents rarely change it later, a documented gap).",
        "supporttickets",
        90,
    ),
    Feature(
        "mean_resolution_days_90d",
        "Mean days from creation to last update of tickets created in the last 90 days and "
        "resolved/closed before the cutoff (updated_at < cutoff); NaN without any.",
        "supporttickets",
        90,
    ),
    Feature(
        "ticket_satisfaction_90d",
        "Mean satisfaction rating (1..5) of tickets created in the last 90 days and closed "
        "before the cutoff (the rating is submitted at closure); NaN without any.",
        "supporttickets",
        90,
    ),
    Feature(
        "degraded_sessions_7d",
        "Sessions in the last 7 days with latency over 2x, or packet loss over 2 points "
        "above, the customer's own 90-day mean: exposure to network incidents.",
        "usagelogs",
        90,
    ),
    Feature(
        "latency_ratio_7d_90d",
        "Mean latency of the last 7 days over the 90-day mean; NaN without sessions.",
        "usagelogs",
        90,
    ),
    Feature(
        "negative_feedback_90d",
        "Feedback with an overall rating of 2 or less in the last 90 days.",
        "feedbacks",
        90,
    ),
    # Usage against the customer's own 90-day baseline: leavers wind down over weeks.
    Feature(
        "usage_ratio_7d_90d",
        "GB per day in the last 7 days over GB per day in the last 90 (1 = usual, 0 = "
        "stopped); NaN without usage in 90 days.",
        "usagelogs",
        90,
    ),
    Feature(
        "usage_ratio_14d_90d",
        "GB per day in the last 14 days over GB per day in the last 90; NaN without usage.",
        "usagelogs",
        90,
    ),
    Feature(
        "sessions_ratio_7d_90d",
        "Sessions per day in the last 7 days over sessions per day in the last 90; NaN "
        "without sessions.",
        "usagelogs",
        90,
    ),
    Feature(
        "days_since_last_session",
        "Days from the last usage session (within 90 days) to the cutoff; 90 without any.",
        "usagelogs",
        90,
    ),
    Feature(
        "overdue_invoices",
        "Invoices issued before the cutoff, due before it and not paid by it (paymentDate "
        "missing or at/after the cutoff). The invoice status is current state and not read.",
        "billings",
        None,
    ),
    # Wind-down against the customer's own history: leavers taper their use
    # over a few weeks before they go. History: the 126 days before the cutoff, counted
    # from the customer's first session in them.
    Feature(
        "wind_down_evidence",
        "Change-point evidence of a drop: the largest log-likelihood ratio, over start days "
        "s = 1..42 days ago with at least 7 days (a whole week) of history before s, of "
        "\"activity has been lower since s than before\" vs one level throughout; Poisson "
        "for sessions and logins per day, Gaussian mean shift (the customer's own spread) "
        "for log GB and log minutes per session. 0: no drop; NaN with under 8 days of "
        "history.",
        "usagelogs",
        126,
    ),
    Feature(
        "wind_down_bayes_factor",
        "Log of the mean over the same starts of exp(log-likelihood ratio): the evidence "
        "for a drop without betting on one start (less inflated by noise than the largest).",
        "usagelogs",
        126,
    ),
    Feature(
        "wind_down_days",
        "The start s (days ago, 1..42) giving wind_down_evidence; 0 without a drop.",
        "usagelogs",
        126,
    ),
    Feature(
        "wind_down_activity_ratio",
        "Sessions per day since that start over sessions per day before it (1 without a "
        "drop).",
        "usagelogs",
        126,
    ),
    *(
        Feature(
            f"sessions_ratio_week{k}",
            f"Sessions in week {k} before the cutoff (days {7 * k - 7}..{7 * k - 1} ago) over "
            "7 days' worth at the rate of days 42..126 ago (NaN with under 7 such days).",
            "usagelogs",
            126,
        )
        for k in range(1, 7)
    ),
    Feature(
        "gb_per_session_log_change_14d",
        "Mean log GB per session in the last 14 days minus its mean over days 42..126 ago "
        "(negative: smaller sessions); NaN without sessions in either.",
        "usagelogs",
        126,
    ),
    Feature(
        "minutes_per_session_log_change_14d",
        "Mean log session minutes in the last 14 days minus its mean over days 42..126 ago.",
        "usagelogs",
        126,
    ),
    Feature(
        "gb_per_session_log_14d",
        "Mean log GB per session in the last 14 days (every customer with sessions in them, "
        "new ones included); NaN without sessions.",
        "usagelogs",
        14,
    ),
    Feature(
        "minutes_per_session_log_14d",
        "Mean log session minutes in the last 14 days; NaN without sessions.",
        "usagelogs",
        14,
    ),
    Feature(
        "account_tickets_14d",
        "Tickets of category account created in the last 14 days (how leaving is asked "
        "about).",
        "supporttickets",
        14,
    ),
    # Coverage: how much of each source's history the row's features could see
    # (features/coverage.py; docs/features.md "Coverage").
    Feature(
        "usage_covered_days",
        "Days of usagelogs history before the cutoff (from the source's first recorded day, "
        "the lake's coverage), up to 126: windowed usage features count only these days and "
        "per-day rates divide by them.",
        "usagelogs",
        126,
    ),
    Feature(
        "login_covered_days",
        "Days of login history (auditlogs) before the cutoff, up to 126.",
        "auditlogs",
        126,
    ),
    Feature(
        "ticket_history_months",
        "Months of the customer's tenure that the ticket history covers: from the later of "
        "customer_since and the tickets' first recorded day, to the cutoff.",
        "supporttickets",
        None,
    ),
    Feature(
        "payment_history_months",
        "Months of the customer's tenure that the payment history covers (as "
        "ticket_history_months, for payments).",
        "payments",
        None,
    ),
    # Complaints over the whole covered tenure, not only the last weeks.
    Feature("support_tickets_365d", "Support tickets created in the last 365 days.",
            "supporttickets", 365),
    Feature(
        "support_tickets_lifetime",
        "Support tickets created before the cutoff, over the covered tenure.",
        "supporttickets",
        None,
    ),
    Feature(
        "support_tickets_per_year",
        "support_tickets_lifetime per 12 months of ticket_history_months (at least one "
        "month): a rate that does not grow with how long the history is.",
        "supporttickets",
        None,
    ),
    Feature(
        "high_priority_tickets_lifetime",
        "Tickets of priority high or urgent, over the covered tenure (priority as stored).",
        "supporttickets",
        None,
    ),
    Feature("billing_tickets_90d", "Tickets of category billing in the last 90 days.",
            "supporttickets", 90),
    *(
        Feature(
            f"{category}_tickets_lifetime",
            f"Tickets of category {category} over the covered tenure (category is set when "
            "the ticket is opened).",
            "supporttickets",
            None,
        )
        for category in ("technical", "billing", "service", "account", "network", "general")
    ),
    # Failed payments over the tenure.
    Feature(
        "payment_failures_365d",
        "Failed payment attempts (as payment_failures_90d) in the last 365 days.",
        "payments",
        365,
    ),
    Feature(
        "payment_failures_lifetime",
        "Failed payment attempts over the covered tenure.",
        "payments",
        None,
    ),
    Feature(
        "payment_failures_per_year",
        "payment_failures_lifetime per 12 months of payment_history_months (at least one).",
        "payments",
        None,
    ),
    Feature(
        "payment_failure_share_lifetime",
        "Failed attempts over the attempts settled before the cutoff (failed_at, or paid at "
        "captured_at); NaN without any.",
        "payments",
        None,
    ),
    # Contract terms of the current subscription (pricing is set at signup: the app never
    # reprices an existing subscription).
    Feature(
        "monthly_price_paid",
        "The subscription's final_price per month (yearly: / 12), INR, after discount and "
        "before tax.",
        "subscriptions",
        None,
    ),
    Feature(
        "price_paid_vs_list",
        "monthly_price_paid over the plan's monthly list price (1: list price; < 1: a "
        "discount or a yearly deal; > 1: paying more than today's list).",
        "subscriptions",
        None,
    ),
    Feature(
        "extra_charge_share",
        "(total_amount - final_price) / final_price of the subscription: taxes and charges on "
        "top of the price, per cycle.",
        "subscriptions",
        None,
    ),
    # Payment method: the latest attempt's before the cutoff (payments.method words).
    *(
        Feature(
            f"pays_by_{method}",
            f"1 if the latest payment attempt before the cutoff used {label}, else 0 (all 0 "
            "without any attempt).",
            "payments",
            None,
        )
        for method, label in (("card", "a card"), ("upi", "UPI"),
                              ("netbanking", "net banking"), ("wallet", "a wallet"),
                              ("emi", "EMI or cardless EMI"))
    ),
    # Spend: money actually taken (captured, later refunded or not), at captured_at.
    Feature("paid_amount_90d", "INR paid in the last 90 days.", "payments", 90),
    Feature("paid_amount_365d", "INR paid in the last 365 days.", "payments", 365),
    Feature(
        "paid_per_month_lifetime",
        "INR paid over the covered tenure per month of payment_history_months (at least one).",
        "payments",
        None,
    ),
    Feature(
        "paid_amount_trend_90d",
        "INR paid in the last 90 days minus the 90 days before (negative: paying less).",
        "payments",
        180,
    ),
    Feature(
        "age_band",
        "Five-year age band at the cutoff from users.dateOfBirth: under 20 0, 20-24 1, ..., "
        "65-69 10, 70 and over 11; NaN without a plausible birth date (10..110 years). "
        "Informs churn only: pricing never reads it.",
        "users",
        None,
    ),
    Feature(
        "age_band_at_signup",
        "The age band (as age_band) when the customer joined: at users.customer_since (else "
        "created_at, else the subscription start), never later than the cutoff. Informs "
        "churn only: pricing never reads it.",
        "users",
        None,
    ),
    Feature(
        "device_types_90d",
        "Distinct device types (usagelogs.deviceType) in the last 90 days of sessions.",
        "usagelogs",
        90,
    ),
    Feature(
        "plan_upgrades",
        "Moves to a plan with a higher monthly list price: consecutive subscriptions of the "
        "customer started before the cutoff.",
        "subscriptions",
        None,
    ),
    Feature(
        "plan_downgrades",
        "Moves to a plan with a lower monthly list price (as plan_upgrades).",
        "subscriptions",
        None,
    ),
)

# Asked for but deliberately not features: users.npsScore is current state (and 7
# doubles as "unknown"), so it would leak the future into past cutoffs; the lake
# has no incidents collection, so incident exposure is read from session quality.

CHURN_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CHURN_FEATURES)

# Id/context columns build_churn_features adds in front of the features (not model inputs).
CHURN_CONTEXT_COLUMNS: tuple[str, ...] = ("subscription_id", "plan_id", "billing_cycle")


COVERAGE_NOTE: tuple[str, ...] = (
    "## Coverage",
    "",
    "An app's sources do not all begin on the same day (accounts and payments may be years "
    "old while usage logs and logins were kept only for the last months). The pipeline "
    "finds where each event source's recorded history begins (`features/coverage.py`: the "
    "day of its 0.1 % quantile event time, so a few back-dated rows do not move it) and "
    "computes each windowed feature over the *covered part* of its window: counts count "
    "only the covered days, per-day rates (`usage_ratio_*`, `sessions_ratio_7d_90d`) divide "
    "by them, lifetime rates divide by the covered tenure, and the coverage features "
    "(`usage_covered_days`, `login_covered_days`, `ticket_history_months`, "
    "`payment_history_months`) say how much was covered. Chosen over dropping uncovered "
    "cutoffs because a usage history shorter than the longest window (126 days) would "
    "leave no cutoff at all. Where usage logs or logins had recorded nothing before a "
    "cutoff, their features are unknown (NaN), not zero sessions and the longest "
    "recency, which is what a customer who went quiet looks like; their coverage "
    "features read 0.",
    "",
    "How far back training goes is then chosen by an out-of-time check "
    "(`features/cutoffs.py`, `churn.cutoff_candidates`): each candidate number and spacing "
    "of cutoffs trains a booster on cutoffs before the latest labelled one and is scored "
    "(ROC-AUC) on the non-test customers at the latest labelled cutoff; among the "
    "candidates within one standard error of the best score (the check is noisy at a few "
    "hundred churners) the one with the most cutoffs is kept, so a candidate that reaches "
    "back into poorly covered or drifted history loses only when it is clearly worse. "
    "Calibration is fitted on those customers at that latest cutoff, so "
    "it follows the churn rate of now rather than the pooled past; the headline test "
    "metric is the test customers' at that cutoff alone. The boosters calibrated there "
    "never saw it; then the winning configuration is refitted with the train customers' "
    "rows at that cutoff added and the calibration is carried over "
    "(`churn.refit_with_latest_cutoff`, `models/churn.py`, `with_calibration_of`): those "
    "are the fully labelled leavers with the newest history, which a short usage history "
    "has few others of. The headline is the refitted model's, on test customers neither "
    "booster saw.",
    "",
    "Partly labelled cutoffs (`churn.partly_labelled_cutoffs`, `features/cutoffs.py`): the "
    "final boosters also train on the weekly cutoffs after the latest labelled one whose "
    "label window has had at least a week by as-of (23, 16 and 9 of the 30 days). Each row "
    "is labelled over the days that happened and carries their share s of the horizon "
    "(`label_window_share`); the booster starts that row's log-odds at log(s) below the "
    "others' (`models/churn.py`, `label_window_offsets`), since the chance of leaving "
    "within a share of the horizon is about s times the horizon's, and scoring, with no "
    "offset, asks for the whole horizon. They bring the newest leavers, and where usage "
    "logs are kept for weeks the longest usage history any labelled row has. The "
    "out-of-time check, the calibration, the headline test and the pooled test never use "
    "them; the headline's test customers are still never trained on, but the final "
    "boosters have seen other customers' rows from inside that cutoff's label window.",
    "",
    "Scoring sees more history than any labelled row: a source that began recording N "
    "days before as-of covered only N - 9 days at the newest partly labelled cutoff "
    "(N - horizon at the latest labelled one, without them). Where that is less than the "
    "window the features read of it (usage logs and logins: 126 days), the model keeps "
    "that coverage (`history_days`, logged as `scoring_history_days`) and scoring reads "
    "only that many days of the source, so a model never scores rows with more history "
    "than it was trained on (`features/coverage.py`, `scoring_history_days`). The "
    "calibration rows, at the latest labelled cutoff, had a horizon less. A source covered "
    "for its whole window at that cutoff is not capped.",
    "",
    "Current-state fields: `autoRenewal.enabled` is not a feature. The app keeps no dated "
    "history of it, so at a past cutoff its current value leaks the future, and reading "
    "it only from subscriptions not updated since the cutoff made it known at scoring "
    "but almost never in training (monthly payments update every live subscription): on "
    "a 10k-customer world that skew pushed every score towards \"stays\" (mean "
    "probability 0.001 against 1.9 % who left). A point-in-time reading needs the lake's "
    "nightly subscription snapshots (the one at or before the cutoff), not built yet. "
    "Plan prices and the subscription's pricing are treated as stable (the app never "
    "reprices an existing subscription; plan list prices change rarely, a documented "
    "gap). `dateOfBirth` is fixed.",
    "",
)


def feature_table() -> list[dict[str, object]]:
    """Rows for documentation (name, description, source, window)."""
    return [
        {
            "name": f.name,
            "description": f.description,
            "source_collection": f.source_collection,
            "window_days": f.window_days,
        }
        for f in CHURN_FEATURES
    ]


def render_feature_docs() -> str:
    """docs/features.md, generated from CHURN_FEATURES (a test keeps the file in sync:
    regenerate with `python -m features.registry > docs/features.md`)."""
    lines = [
        "# Churn features",
        "",
        "Generated from `features/registry.py` (`python -m features.registry > "
        "docs/features.md`); `tests/unit/test_customer_features.py` fails when this file "
        "and the registry disagree.",
        "",
        "Every feature is point in time: computed at a cutoff from event-dated rows strictly "
        "before it (see `features/customer.py`). Window: look-back in days ending at the "
        "cutoff; `-` means no window (a duration or a plan attribute).",
        "",
        "| # | feature | source collection | window (days) | description |",
        "|---|---|---|---|---|",
    ]
    for number, f in enumerate(CHURN_FEATURES, start=1):
        window = "-" if f.window_days is None else str(f.window_days)
        description = f.description.replace("|", "\\|")
        lines.append(
            f"| {number} | `{f.name}` | {f.source_collection} | {window} | {description} |"
        )
    lines += [
        "",
        "Not features, on purpose: `users.npsScore` (current state, and 7 also means "
        "\"unknown\": it would leak the future into past cutoffs); incidents (the lake has no "
        "incidents collection: exposure is read from session quality, "
        "`degraded_sessions_7d`).",
        "",
        *COVERAGE_NOTE,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_feature_docs(), end="")
