"""Documents in the app's Mongoose shapes, built from population and timeline arrays."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from bson import ObjectId

from simulator.catalog import (
    BILLING_METHODS,
    CANCELLATION_REASONS,
    CITIES,
    EXPIRE_AFTER_DAYS,
    FEEDBACK_COMMENTS,
    FEEDBACK_RATE,
    FEEDBACK_SOURCES,
    FEEDBACK_TYPES,
    FIRST_NAMES,
    GRACE_PERIOD_DAYS,
    GST_RATE,
    HISTORY_METHODS,
    INVOICE_DUE_DAYS,
    LAST_NAMES,
    PAYMENT_ERROR_CODES,
    PAYMENT_METHODS,
    PLANS,
    SENTIMENTS,
    STREET_NAMES,
    TICKET_CATEGORIES,
    TICKET_DONE_STATUSES,
    TICKET_OPEN_STATUSES,
    TICKET_PRIORITIES,
)
from simulator.credentials import ADMIN_EMAILS, ADMIN_PASSWORD_HASHES, CUSTOMER_PASSWORD_HASHES
from simulator.encode import SECONDS_PER_DAY, object_ids
from simulator.population import Population
from simulator.timeline import (
    TICKET_CAUSE_BILLING,
    TICKET_CAUSE_INCIDENT,
    TICKET_CAUSE_LEAVING,
    Timeline,
)

ADMIN_COUNT = 2
UNSETTLED_SECONDS = SECONDS_PER_DAY  # charges of the last day have not settled yet
DEFAULT_NPS = 7
# Ratings (feedback forms, tickets): round(mean + per_satisfaction * satisfaction - penalty
# + Normal(0, sd)), clipped to 1..5; leavers rate a point lower once they wind down.
RATING_MEAN, RATING_PER_SATISFACTION, RATING_SD = 3.6, 0.9, 0.8
WIND_DOWN_RATING_PENALTY = 1.0
# Categories of tickets raised for no particular cause (TICKET_CATEGORIES order).
GENERAL_TICKET_CATEGORY_SHARES = (0.35, 0.1, 0.2, 0.1, 0.1, 0.15)


@dataclass(frozen=True)
class Keys:
    """ObjectIds drawn up front so every collection can reference them."""

    plan_ids: list[ObjectId]
    admin_ids: list[ObjectId]
    user_ids: list[ObjectId]
    subscription_ids: list[ObjectId]
    catalogue_seconds: int  # when the plans and admins were created


def draw_keys(rng: np.random.Generator, pop: Population, catalogue_seconds: int) -> Keys:
    return Keys(
        plan_ids=object_ids(rng, np.full(len(PLANS), catalogue_seconds)),
        admin_ids=object_ids(rng, np.full(ADMIN_COUNT, catalogue_seconds)),
        user_ids=object_ids(rng, pop.start_seconds - 600),  # signed up just before subscribing
        subscription_ids=object_ids(rng, pop.start_seconds),
        catalogue_seconds=catalogue_seconds,
    )


def _dt(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC)


def _money(x: float) -> float:
    return float(round(x, 2))


# --- plans and admins ----------------------------------------------------------------


def plan_documents(keys: Keys) -> list[dict]:
    created = _dt(keys.catalogue_seconds)
    return [
        {
            "_id": keys.plan_ids[i],
            "name": p.name,
            "description": f"{p.name}: {p.download_mbps:g}/{p.upload_mbps:g} Mbps fiber broadband",
            "category": p.category,
            "pricing": {
                "monthly": float(p.monthly),
                "yearly": p.yearly,
                "setupFee": float(p.setup_fee),
                "currency": "INR",
            },
            "features": {
                "speed": {
                    "download": float(p.download_mbps),
                    "upload": float(p.upload_mbps),
                    "unit": "Mbps",
                },
                "dataLimit": {
                    "amount": None if p.data_gb is None else float(p.data_gb),
                    "unit": "GB",
                    "unlimited": p.data_gb is None,
                },
                "features": [
                    {
                        "name": "Free installation",
                        "description": "Router included",
                        "included": True,
                    }
                ],
            },
            "availability": {
                "regions": sorted({c.state for c in CITIES}),
                "cities": [c.city for c in CITIES],
            },
            "status": "active",
            "popularity": 0,
            "tags": [p.category, p.target_audience],
            "technicalSpecs": {"technology": p.technology, "reliability": 99.9},
            "targetAudience": p.target_audience,
            "contractTerms": {"minimumTerm": 12, "earlyTerminationFee": 0, "autoRenewal": True},
            "createdBy": keys.admin_ids[0],
            "createdAt": created,
            "updatedAt": created,
        }
        for i, p in enumerate(PLANS)
    ]


def admin_documents(rng: np.random.Generator, keys: Keys, window_end_seconds: int) -> list[dict]:
    created = _dt(keys.catalogue_seconds)
    last = _dt(window_end_seconds - 3 * 3600)
    return [
        {
            "_id": keys.admin_ids[i],
            "firstName": "Admin",
            "lastName": f"User{i + 1}",
            "email": ADMIN_EMAILS[i],
            "password": ADMIN_PASSWORD_HASHES[i],
            "phone": f"+9198{i:08d}",
            "role": "admin",
            "status": "active",
            "address": {
                "street": "1 Network House",
                "city": "Mumbai",
                "state": "Maharashtra",
                "zipCode": "400001",
                "country": "USA",
            },
            "dateOfBirth": _dt(keys.catalogue_seconds - (35 + i) * 365 * SECONDS_PER_DAY),
            "customerSince": created,
            "lastLogin": last,
            "npsScore": DEFAULT_NPS,
            "emailVerified": True,
            "createdAt": created,
            "updatedAt": last,
        }
        for i in range(ADMIN_COUNT)
    ]


# --- customers ---------------------------------------------------------------------------


def subscription_status(tl: Timeline) -> np.ndarray:
    """The app's status at the end of the window."""
    last_day = tl.window.days - 1
    since_lapse = last_day - tl.nonrenewal_day
    lapsed = np.where(
        since_lapse < GRACE_PERIOD_DAYS,
        "grace_period",
        np.where(since_lapse < EXPIRE_AFTER_DAYS, "suspended", "expired"),
    )
    return np.where(
        tl.cancel_day >= 0, "cancelled", np.where(tl.nonrenewal_day >= 0, lapsed, "active")
    )


def customer_names(rng: np.random.Generator, n: int) -> list[tuple[str, str, str]]:
    """(first name, last name, e-mail) per customer: the first draws of the users' stream."""
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    return [
        (FIRST_NAMES[f], LAST_NAMES[s], customer_email(FIRST_NAMES[f], LAST_NAMES[s], i))
        for i, (f, s) in enumerate(zip(first.tolist(), last.tolist(), strict=True))
    ]


def customer_email(first_name: str, last_name: str, number: int) -> str:
    return f"{first_name.lower()}.{last_name.lower()}{number}@example.com"


def user_documents(
    rng: np.random.Generator, pop: Population, tl: Timeline, keys: Keys, last_login: np.ndarray
) -> Iterator[dict]:
    n = pop.size
    names = customer_names(rng, n)
    hashes = rng.integers(0, len(CUSTOMER_PASSWORD_HASHES), n)
    phones = rng.integers(6_000_000_000, 9_999_999_999, n)
    house = rng.integers(1, 400, n)
    street = rng.integers(0, len(STREET_NAMES), n)
    pin = rng.integers(1, 99, n)
    age_days = rng.integers(19 * 365, 70 * 365, n)
    # The app sets lastLogin only on some login paths: often missing.
    has_last_login = (last_login >= 0) & (rng.random(n) < 0.7)
    answered_nps = rng.random(n) < 0.35
    nps = np.clip(np.round(7 + 1.8 * pop.satisfaction + rng.normal(0, 1.2, n)), 0, 10).astype(int)
    status_now = subscription_status(tl)
    account = np.where(
        (status_now == "suspended") & (rng.random(n) < 0.5),
        "suspended",
        np.where(rng.random(n) < 0.02, "inactive", "active"),
    )
    since = pop.start_seconds - 600  # the account is opened just before the first subscription
    updated = np.maximum(np.maximum(since, last_login), pop.start_seconds)
    for i in range(n):
        city = CITIES[pop.city[i]]
        first_name, last_name, email = names[i]
        doc = {
            "_id": keys.user_ids[i],
            "firstName": first_name,
            "lastName": last_name,
            "email": email,
            "password": CUSTOMER_PASSWORD_HASHES[hashes[i]],
            "phone": f"+91{phones[i]}",
            "role": "customer",
            "status": str(account[i]),
            "address": {
                "street": f"{house[i]} {STREET_NAMES[street[i]]}",
                "city": city.city,
                "state": city.state,
                "zipCode": f"{city.pin_prefix}{pin[i]:03d}",
                "country": "USA",  # the app's default, although customers are in India
            },
            "dateOfBirth": _dt(pop.start_seconds[i] - age_days[i] * SECONDS_PER_DAY - 43_200),
            "customerSince": _dt(since[i]),
            "npsScore": int(nps[i]) if answered_nps[i] else DEFAULT_NPS,
            "emailVerified": True,
            "createdAt": _dt(since[i]),
            "updatedAt": _dt(updated[i]),
        }
        if has_last_login[i]:
            doc["lastLogin"] = _dt(last_login[i])
        yield doc


def _pricing(pop: Population, i: int) -> dict:
    base = float(pop.cycle_base_price[i])
    discount = base * float(pop.discount_rate[i])
    final = base - discount
    tax = final * GST_RATE
    return {
        "basePrice": _money(base),
        "discountApplied": _money(discount),
        "finalPrice": _money(final),
        "currency": "INR",
        "taxAmount": _money(tax),
        "totalAmount": _money(final + tax),
    }


def _charge_amounts(pop: Population) -> np.ndarray:
    final = pop.cycle_base_price * (1 - pop.discount_rate)
    return np.round(final * (1 + GST_RATE), 2)


@dataclass(frozen=True)
class PaymentOutcome:
    """What the app would record for each attempt, shared by payments and subscriptions."""

    status: list[str]  # payments.status
    history_status: list[str]  # paymentHistory[].status
    refunded: np.ndarray  # per customer: the last capture was refunded on cancellation


def payment_outcomes(rng: np.random.Generator, tl: Timeline) -> PaymentOutcome:
    a = tl.attempts
    n = len(tl.cancel_day)
    status = np.where(a.failed, "failed", "captured").astype(object)
    history = np.where(a.failed, "failed", "completed").astype(object)
    # Charges started in the last hours of the window have not settled yet.
    unsettled = (~a.failed) & (a.seconds > tl.window.end_seconds - UNSETTLED_SECONDS)
    pick = rng.choice(["created", "pending", "authorized"], len(a.seconds))
    status[unsettled] = pick[unsettled]
    history[unsettled] = "pending"
    # Some cancellations refund the last captured charge.
    refund_customer = (tl.cancel_day >= 0) & (rng.random(n) < 0.25)
    captured = np.flatnonzero(status == "captured")
    last_capture = np.full(n, -1)
    order = captured[np.argsort(a.seconds[captured], kind="stable")]
    last_capture[a.customer[order]] = order
    refunded_rows = last_capture[refund_customer & (last_capture >= 0)]
    status[refunded_rows] = "refunded"
    history[refunded_rows] = "refunded"
    refunded = np.zeros(n, dtype=bool)
    refunded[a.customer[refunded_rows]] = True
    return PaymentOutcome(status.tolist(), history.tolist(), refunded)


def consecutive_failures(tl: Timeline, outcome: PaymentOutcome) -> np.ndarray:
    """The app's paymentFailures: failures since the last settled (successful) charge."""
    a = tl.attempts
    n = len(tl.cancel_day)
    last_ok = np.full(n, -1, dtype=np.int64)
    ok = np.isin(np.asarray(outcome.status, dtype=object), ["captured", "refunded"])
    np.maximum.at(last_ok, a.customer[ok], a.seconds[ok])
    counted = a.failed & (a.seconds > last_ok[a.customer])
    return np.bincount(a.customer[counted], minlength=n)


def subscription_documents(
    rng: np.random.Generator,
    pop: Population,
    tl: Timeline,
    keys: Keys,
    outcome: PaymentOutcome,
    transaction_ids: list[str],
) -> Iterator[dict]:
    n = pop.size
    status = subscription_status(tl)
    failures = consecutive_failures(tl, outcome)
    amounts = _charge_amounts(pop)
    reasons = rng.integers(0, len(CANCELLATION_REASONS), n)
    by_customer = np.split(
        np.lexsort((tl.attempts.seconds, tl.attempts.customer)),  # each history in date order
        np.cumsum(np.bincount(tl.attempts.customer, minlength=n))[:-1],
    )
    for i in range(n):
        start = _dt(pop.start_seconds[i])
        service = [
            {"date": start, "type": "created", "description": "Subscription created"},
            {"date": start, "type": "activated", "description": "Service activated"},
        ]
        cancellation: dict = {"refundEligible": False}
        end_seconds = int(tl.paid_through_seconds[i])
        updated = int(pop.start_seconds[i])
        if status[i] == "cancelled":
            request, effective = (
                int(tl.cancel_request_seconds[i]),
                int(tl.cancel_effective_seconds[i]),
            )
            reason, feedback = CANCELLATION_REASONS[reasons[i]]
            cancellation = {
                "requestDate": _dt(request),
                "effectiveDate": _dt(effective),
                "reason": reason,
                "requestedBy": keys.user_ids[i],
                "feedback": feedback,
                "refundEligible": bool(outcome.refunded[i]),
            }
            if outcome.refunded[i]:
                cancellation["refundAmount"] = float(amounts[i])
            service.append({"date": _dt(request), "type": "cancelled", "description": reason})
            end_seconds, updated = effective, effective
        elif tl.nonrenewal_day[i] >= 0:
            lapse = int(tl.nonrenewal_seconds[i])
            end_seconds, updated = lapse, lapse
            if status[i] in ("suspended", "expired"):
                updated = lapse + GRACE_PERIOD_DAYS * SECONDS_PER_DAY
                service.append(
                    {"date": _dt(updated), "type": "suspended", "description": "Not renewed"}
                )
            if status[i] == "expired":
                updated = lapse + EXPIRE_AFTER_DAYS * SECONDS_PER_DAY
                service.append(
                    {"date": _dt(updated), "type": "expired", "description": "Contract expired"}
                )
        history = []
        for row in by_customer[i].tolist():
            when = int(tl.attempts.seconds[row])
            updated = max(updated, when)
            history.append(
                {
                    "date": _dt(when),
                    "amount": float(amounts[i]),
                    "paymentMethod": HISTORY_METHODS[pop.payment_method[i]],
                    "transactionId": transaction_ids[row],
                    "status": outcome.history_status[row],
                }
            )
        auto_renew = bool(tl.nonrenewal_day[i] < 0)
        yield (
            {
                "_id": keys.subscription_ids[i],
                "user": keys.user_ids[i],
                "plan": keys.plan_ids[pop.plan[i]],
                "status": str(status[i]),
                "startDate": start,
                "endDate": _dt(end_seconds),
                "billingCycle": "yearly" if pop.yearly[i] else "monthly",
                "pricing": _pricing(pop, i),
                "paymentFailures": int(failures[i]),
                "paymentHistory": history,
                "serviceHistory": service,
                "autoRenewal": {
                    "enabled": auto_renew,
                    **({"nextRenewalDate": _dt(end_seconds)} if auto_renew else {}),
                },
                "cancellation": cancellation,
                "createdAt": start,
                "updatedAt": _dt(updated),
            }
        )


# --- money ---------------------------------------------------------------------------------


def payment_documents(
    rng: np.random.Generator,
    pop: Population,
    tl: Timeline,
    keys: Keys,
    outcome: PaymentOutcome,
    transaction_ids: list[str],
) -> Iterator[dict]:
    a = tl.attempts
    ids = object_ids(rng, a.seconds)
    amounts = _charge_amounts(pop)
    errors = rng.integers(0, len(PAYMENT_ERROR_CODES), len(a.seconds))
    for row in range(len(a.seconds)):
        c = int(a.customer[row])
        when = _dt(a.seconds[row])
        status = outcome.status[row]
        doc = {
            "_id": ids[row],
            "user": keys.user_ids[c],
            "subscription": keys.subscription_ids[c],
            "razorpayOrderId": order_id(ids[row]),
            "razorpayPaymentId": f"pay_{transaction_ids[row]}",
            "amount": float(amounts[c]),
            "currency": "INR",
            "status": status,
            "method": PAYMENT_METHODS[pop.payment_method[c]],
            "attemptCount": int(a.number[row]),
            "createdAt": when,
            "updatedAt": when,
        }
        if status in ("captured", "refunded"):
            doc["capturedAt"] = when
        if status == "refunded":
            refund_at = max(int(a.seconds[row]), int(tl.cancel_effective_seconds[c]))
            doc["refundedAt"] = doc["updatedAt"] = _dt(refund_at)
        if status == "failed":
            doc["failedAt"] = when
            doc["errorCode"] = PAYMENT_ERROR_CODES[errors[row]]
            doc["errorDescription"] = "Payment could not be completed"
        yield doc


def order_id(payment_id: ObjectId) -> str:
    """The gateway order of a payment attempt: unique because the payment's _id is."""
    return f"order_{payment_id}"


def billing_documents(
    rng: np.random.Generator, pop: Population, tl: Timeline, keys: Keys
) -> Iterator[dict]:
    inv, a = tl.invoices, tl.attempts
    ids = object_ids(rng, inv.seconds)
    paid_at = np.full(len(inv.day), -1, dtype=np.int64)
    ok = ~a.failed
    np.maximum.at(paid_at, a.invoice[ok], a.seconds[ok])
    # Unsettled charges from the last hours are not "paid" yet.
    paid_at[paid_at > tl.window.end_seconds - UNSETTLED_SECONDS] = -1
    for row in range(len(inv.day)):
        c = int(inv.customer[row])
        issued = int(inv.seconds[row])
        price = _pricing(pop, c)
        paid = paid_at[row] >= 0
        doc = {
            "_id": ids[row],
            "user": keys.user_ids[c],
            "subscription": keys.subscription_ids[c],
            "invoiceNumber": f"INV-{_dt(issued):%Y%m}-{row + 1:07d}",
            "amount": price["finalPrice"],
            "subtotal": price["basePrice"],
            "tax": price["taxAmount"],
            "discount": price["discountApplied"],
            "total": price["totalAmount"],
            "currency": "INR",
            "status": "paid" if paid else "pending",
            "dueDate": _dt(issued + INVOICE_DUE_DAYS * SECONDS_PER_DAY),
            "billingPeriod": {"start": _dt(issued), "end": _dt(inv.period_end_seconds[row])},
            "paymentMethod": {"type": BILLING_METHODS[pop.payment_method[c]]},
            "createdAt": _dt(issued),
            "updatedAt": _dt(paid_at[row] if paid else issued),
        }
        if paid:
            doc["paymentDate"] = _dt(paid_at[row])
        yield doc


# --- voice of the customer -------------------------------------------------------------------


def _rating(rng: np.random.Generator, satisfaction: np.ndarray, penalty: np.ndarray) -> np.ndarray:
    raw = (RATING_MEAN + RATING_PER_SATISFACTION * satisfaction - penalty
           + rng.normal(0, RATING_SD, len(satisfaction)))
    return np.clip(np.round(raw), 1, 5).astype(int)


def ticket_documents(
    rng: np.random.Generator, pop: Population, tl: Timeline, keys: Keys
) -> Iterator[dict]:
    t = tl.tickets
    m = len(t.seconds)
    ids = object_ids(rng, t.seconds)
    end = tl.window.end_seconds
    resolve_hours = rng.lognormal(3.0, 0.9, m)
    resolved_at = t.seconds + (resolve_hours * 3600).astype(np.int64)
    done = resolved_at <= end
    done_status = rng.choice(TICKET_DONE_STATUSES, m)
    open_status = rng.choice(TICKET_OPEN_STATUSES, m, p=[0.35, 0.25, 0.3, 0.1])
    general_category = rng.choice(TICKET_CATEGORIES, m, p=list(GENERAL_TICKET_CATEGORY_SHARES))
    category = np.select(
        [
            t.cause == TICKET_CAUSE_BILLING,
            t.cause == TICKET_CAUSE_INCIDENT,
            t.cause == TICKET_CAUSE_LEAVING,
        ],
        ["billing", rng.choice(["network", "technical"], m), "account"],
        general_category,
    )
    priority = np.where(
        t.cause == TICKET_CAUSE_INCIDENT,
        rng.choice(["high", "urgent"], m, p=[0.7, 0.3]),
        rng.choice(TICKET_PRIORITIES, m, p=[0.35, 0.45, 0.15, 0.05]),
    )
    rated = done & (rng.random(m) < 0.55)
    rating = _rating(rng, pop.satisfaction[t.customer], np.where(t.cause > 0, 0.7, 0.0))
    response_hours = np.minimum(rng.uniform(0.2, 8, m), resolve_hours)
    for row in range(m):
        c = int(t.customer[row])
        created = int(t.seconds[row])
        updated = (
            int(resolved_at[row])
            if done[row]
            else min(created + int(response_hours[row] * 3600), end)
        )
        doc = {
            "_id": ids[row],
            "ticketNumber": f"TKT-{row + 1:06d}",
            "customer": keys.user_ids[c],
            "subject": f"{str(category[row]).capitalize()} issue",
            "description": "Customer reported an issue through the app.",
            "category": str(category[row]),
            "priority": str(priority[row]),
            "status": str(done_status[row] if done[row] else open_status[row]),
            "sla": {
                "responseTime": _money(response_hours[row]),
                "resolutionTime": _money(resolve_hours[row]) if done[row] else None,
                "breached": bool(resolve_hours[row] > 48),
            },
            "createdAt": _dt(created),
            "updatedAt": _dt(updated),
        }
        if rated[row]:
            doc["satisfaction"] = {"rating": int(rating[row]), "submittedAt": _dt(updated)}
        yield doc


def feedback_documents(
    rng: np.random.Generator, pop: Population, tl: Timeline, keys: Keys
) -> list[dict]:
    days = tl.window.days
    served = tl.activity(pop.start_day, np.arange(days)) > 0
    day, customer = np.nonzero(served & (rng.random(served.shape) < FEEDBACK_RATE))
    seconds = tl.window.day_seconds(day) + rng.integers(3600, SECONDS_PER_DAY - 3600, len(day))
    seconds = np.maximum(seconds, pop.start_seconds[customer])
    leaving_soon = tl.decline_start_day[customer] <= day
    overall = _rating(rng, pop.satisfaction[customer],
                      np.where(leaving_soon, WIND_DOWN_RATING_PENALTY, 0.0))
    ids = object_ids(rng, seconds)
    kinds = rng.integers(0, len(FEEDBACK_TYPES), len(day))
    sources = rng.integers(0, len(FEEDBACK_SOURCES), len(day))
    return [
        feedback_document(
            ids[row],
            keys.user_ids[c],
            int(overall[row]),
            int(kinds[row]),
            int(sources[row]),
            int(seconds[row]),
        )
        for row, c in enumerate(customer.tolist())
    ]


def feedback_document(
    feedback_id: ObjectId, user_id: ObjectId, overall: int, kind: int, source: int, seconds: int
) -> dict:
    """One feedback form as the app stores it when a customer sends it (status pending)."""
    sentiment = 0 if overall <= 2 else 1 if overall == 3 else 2
    feedback_type = FEEDBACK_TYPES[kind]
    return {
        "_id": feedback_id,
        "user": user_id,
        "type": feedback_type,
        "rating": {"overall": overall},
        "comment": FEEDBACK_COMMENTS[feedback_type][sentiment],
        "sentiment": SENTIMENTS[sentiment],
        "status": "pending",
        "source": FEEDBACK_SOURCES[source],
        "createdAt": _dt(seconds),
        "updatedAt": _dt(seconds),
    }
