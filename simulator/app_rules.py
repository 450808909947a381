"""What the app's Mongoose models enforce when they save a document, as data.

A document that breaks these rules can still be read, but any app code path that
loads and saves it (a login saves the user; approving feedback saves it) fails.
Every document the simulator writes in clean mode must pass them. Mongoose's own
semantics: a required string must not be empty; `enum` and `match` only judge a
value that is set (null and missing pass, an empty string passes `match`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MISSING = object()


@dataclass(frozen=True)
class CollectionRules:
    required: tuple[str, ...] = ()
    enums: Mapping[str, frozenset] = field(default_factory=dict)
    patterns: Mapping[str, str] = field(default_factory=dict)
    unique: tuple[str, ...] = ()  # a unique index: no two documents share the value


EMAIL_PATTERN = r"^\w+([.-]?\w+)*@\w+([.-]?\w+)*(\.\w{2,3})+$"
PHONE_PATTERN = r"^\+?[1-9]\d{0,15}$"

APP_RULES: dict[str, CollectionRules] = {
    "users": CollectionRules(
        required=("email", "address.street", "address.city", "address.state", "address.zipCode"),
        enums={
            "role": frozenset({"customer", "admin"}),
            "status": frozenset({"active", "inactive", "suspended"}),
        },
        patterns={"email": EMAIL_PATTERN, "phone": PHONE_PATTERN},
    ),
    "payments": CollectionRules(
        required=("user", "razorpayOrderId", "amount"),
        enums={
            "currency": frozenset({"INR", "USD"}),
            "status": frozenset(
                {
                    "created",
                    "pending",
                    "authorized",
                    "captured",
                    "failed",
                    "refunded",
                    "partial_refund",
                }
            ),
            "method": frozenset({"card", "netbanking", "upi", "wallet", "emi", "cardless_emi"}),
        },
        unique=("razorpayOrderId",),
    ),
    "billings": CollectionRules(
        required=(
            "user",
            "invoiceNumber",
            "amount",
            "dueDate",
            "billingPeriod.start",
            "billingPeriod.end",
            "subtotal",
            "tax",
            "total",
            "paymentMethod.type",
        ),
        enums={
            "status": frozenset({"pending", "paid", "overdue", "failed", "cancelled"}),
            "paymentMethod.type": frozenset(
                {"credit_card", "debit_card", "bank_transfer", "other"}
            ),
        },
        unique=("invoiceNumber",),
    ),
    "feedbacks": CollectionRules(
        required=("user", "type", "rating.overall", "comment"),
        enums={
            "type": frozenset({"service", "support", "billing", "general"}),
            "status": frozenset({"pending", "reviewed", "responded", "resolved"}),
            "sentiment": frozenset({"positive", "neutral", "negative"}),
            "source": frozenset({"web", "mobile", "email", "support"}),
        },
    ),
    "auditlogs": CollectionRules(
        required=("entity", "entityId", "action", "user", "userEmail", "userRole", "ipAddress"),
        enums={
            "entity": frozenset({"User", "Plan", "Subscription", "PricingHistory", "Usage"}),
            "action": frozenset(
                {
                    "create",
                    "update",
                    "delete",
                    "approve",
                    "reject",
                    "suspend",
                    "activate",
                    "login",
                    "logout",
                }
            ),
            "userRole": frozenset({"customer", "admin"}),
        },
    ),
    "usagelogs": CollectionRules(
        required=(
            "userId",
            "deviceId",
            "download",
            "upload",
            "downloadSpeed",
            "uploadSpeed",
            "latency",
            "packetLoss",
            "ipAddress",
            "sessionDuration",
        ),
        enums={"deviceType": frozenset({"Desktop", "Mobile", "Tablet", "IoT", "Other"})},
    ),
}

_COMPILED = {
    (collection, path): re.compile(pattern)
    for collection, rules in APP_RULES.items()
    for path, pattern in rules.patterns.items()
}


def value_at(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or MISSING."""
    value: Any = doc
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return MISSING
        value = value[key]
    return value


def violations(collection: str, doc: Mapping[str, Any]) -> list[str]:
    """What the app's model for `collection` would reject in `doc` (empty: it saves).
    Collections without rules have nothing to break."""
    rules = APP_RULES.get(collection)
    if rules is None:
        return []
    found = []
    for path in rules.required:
        value = value_at(doc, path)
        if value is MISSING or value is None or value == "":
            found.append(f"{path} is required")
    for path, allowed in rules.enums.items():
        value = value_at(doc, path)
        if value is not MISSING and value is not None and value not in allowed:
            found.append(f"{path} {value!r} is not one of {sorted(allowed)}")
    for path in rules.patterns:
        value = value_at(doc, path)
        if value is MISSING or value is None or value == "":
            continue
        if not isinstance(value, str) or not _COMPILED[(collection, path)].match(value):
            found.append(f"{path} {value!r} does not match the app's pattern")
    return found


def unique_violations(collection: str, docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Values of a unique field that more than one document holds."""
    rules = APP_RULES.get(collection)
    if rules is None or not rules.unique:
        return []
    counts: dict[str, Counter] = {path: Counter() for path in rules.unique}
    for doc in docs:
        for path in rules.unique:
            value = value_at(doc, path)
            if value is not MISSING and value is not None:
                counts[path][value] += 1
    return [
        f"{path} {value!r} is held by {n} documents"
        for path, counter in counts.items()
        for value, n in counter.items()
        if n > 1
    ]
