"""Every simulated document passes the app's save-time validators; the admin can log in."""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import re
from pathlib import Path

import pytest
from pymongo.database import Database

from simulator import APP_COLLECTIONS, simulate
from simulator.app_rules import APP_RULES, unique_violations, violations
from simulator.credentials import ADMIN_EMAILS, ADMIN_PASSWORD, CUSTOMER_PASSWORD

END = dt.date(2026, 11, 25)
SCHEMA = Path("/work/shared/broadbandx-schema.md")


def bcrypt_verifies(password: str, hashed: str) -> bool | None:
    """True/False from the bcrypt library, or else from the system's libcrypt (which knows
    bcrypt on Debian); None if neither can check."""
    try:
        import bcrypt
    except ImportError:
        pass
    else:
        return bool(bcrypt.checkpw(password.encode(), hashed.encode()))
    name = ctypes.util.find_library("crypt")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    result = lib.crypt(password.encode(), hashed.encode())
    if not result or not result.startswith(b"$2"):
        return None  # this libcrypt does not do bcrypt
    return result.decode() == hashed


def all_violations(db: Database, collections) -> list[str]:
    found = []
    for name in collections:
        documents = list(db[name].find())
        found += [f"{name} {d['_id']}: {v}" for d in documents for v in violations(name, d)]
        found += [f"{name}: {v}" for v in unique_violations(name, documents)]
    return found


def test_the_rules_judge_like_mongoose() -> None:
    user = {
        "email": "a.b1@example.com",
        "phone": "+919876543210",
        "role": "customer",
        "status": "active",
        "address": {"street": "1 MG Road", "city": "Pune", "state": "MH", "zipCode": "411001"},
    }
    assert violations("users", user) == []
    assert violations("users", {**user, "email": "admin1@broadbandx.example"})
    assert violations("users", {**user, "phone": "+91 9876543210"})
    assert violations("users", {**user, "address": {"street": "x", "city": "y", "state": "z"}})
    assert violations("users", {**user, "status": "trialing"})
    assert violations("users", {k: v for k, v in user.items() if k != "phone"}) == []
    feedback = {"user": 1, "type": "general", "rating": {"overall": 4}, "comment": "ok"}
    assert violations("feedbacks", feedback) == []
    assert violations("feedbacks", {**feedback, "comment": ""}) == ["comment is required"]
    assert unique_violations("billings", [{"invoiceNumber": "A"}, {"invoiceNumber": "A"}])
    assert violations("plans", {"anything": 1}) == []  # no rules, nothing to break


def test_the_rules_cover_every_collection_the_schema_validates() -> None:
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is not on this machine")
    text = SCHEMA.read_text()
    section = text.split("## What the app enforces when it saves a document", 1)[1]
    section = section.split("\n## ", 1)[0]
    named = set(re.findall(r"^- `(\w+)`:", section, flags=re.MULTILINE))
    assert named == set(APP_RULES)


def test_every_simulated_document_passes_the_app_rules(mongo_db: Database) -> None:
    simulate(mongo_db, customers=250, days=45, seed=3, end=END)
    assert all_violations(mongo_db, APP_COLLECTIONS) == []
    for name in APP_RULES:
        assert mongo_db[name].count_documents({}) > 0, name


def test_the_simulated_admin_and_customers_can_log_in(mongo_db: Database) -> None:
    simulate(mongo_db, customers=30, days=20, seed=4, end=END)
    admin = mongo_db.users.find_one({"email": ADMIN_EMAILS[0]})
    assert admin is not None and admin["role"] == "admin" and admin["status"] == "active"
    assert violations("users", admin) == []
    customer = mongo_db.users.find_one({"role": "customer"})
    verified = bcrypt_verifies(ADMIN_PASSWORD, admin["password"])
    if verified is None:
        pytest.skip("neither the bcrypt library nor a bcrypt-capable libcrypt is here")
    assert verified
    assert bcrypt_verifies(CUSTOMER_PASSWORD, customer["password"])
    assert not bcrypt_verifies("wrong password", admin["password"])
