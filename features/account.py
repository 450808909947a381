"""Account-level churn features as of a cutoff (pure, point in time): what contracts,
complaints, payments and the person carry over the whole tenure, not only the last
weeks of usage.

- Complaints and failed payments are counted over windows and over the lifetime the
  lake covers (features/coverage.py), with a per-year rate over the covered tenure so
  a short ticket history does not read as a quiet customer.
- Contract terms come from the current subscription's pricing, set at signup (the app
  never reprices an existing subscription). `autoRenewal.enabled` is current state with
  no dated history: not read (docs/features.md, "Coverage").
- Payment method and spend come from payments, event-dated (captured_at, else
  created_at); the method is the one of the latest attempt before the cutoff.
- Age band from users.dateOfBirth (fixed), now and when the customer joined; it may
  inform churn, never price.
- Plan upgrades/downgrades: consecutive subscriptions of the customer started before
  the cutoff, compared by their plan's monthly list price.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.coverage import Coverage
from features.subscriptions import DAY, DAYS_PER_MONTH, subscription_lifecycle, utc_series

if TYPE_CHECKING:
    from features.customer import Events, LakeTables

TICKET_CATEGORIES = ("technical", "billing", "service", "account", "network", "general")
HIGH_PRIORITIES = ("high", "urgent")
# payments.method words (the app's Razorpay enum); emi and cardless_emi are one choice.
PAYMENT_METHOD_GROUPS: dict[str, tuple[str, ...]] = {
    "card": ("card",),
    "upi": ("upi",),
    "netbanking": ("netbanking",),
    "wallet": ("wallet",),
    "emi": ("emi", "cardless_emi"),
}
PAID_STATUSES = ("captured", "refunded", "partial_refund")  # money that was taken
# Five-year age bands: under 20 (0), 20-24 (1), ..., 70 and over (11). Finer than the
# pricing fairness check's bands: churn can turn on a few years (students, retirement).
AGE_BAND_EDGES = tuple(range(20, 75, 5))
USAGE_COVERAGE_CAP_DAYS = 126  # the longest usage/login window a feature reads
DEVICE_WINDOW_DAYS = 90


def _months(delta_days: np.ndarray) -> np.ndarray:
    return np.clip(delta_days, 0.0, None) / DAYS_PER_MONTH


def _per_year(count: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Count per 12 months of covered tenure (at least one month, so day-old customers
    with one ticket are not 365 a year)."""
    return count * 12.0 / np.maximum(months, 1.0)


def complaint_features(tickets: Events, covered_months: np.ndarray) -> dict[str, np.ndarray]:
    """Tickets (complaints) over windows and the covered lifetime, by category/priority."""
    frame = tickets.frame
    category = frame["category"].to_numpy(dtype=object)
    urgent = frame["priority"].isin(HIGH_PRIORITIES).to_numpy(dtype=bool)
    lifetime = tickets.count()
    out = {
        "support_tickets_365d": tickets.count(tickets.mask(365)),
        "support_tickets_lifetime": lifetime,
        "support_tickets_per_year": _per_year(lifetime, covered_months),
        "high_priority_tickets_lifetime": tickets.count(urgent),
        "billing_tickets_90d": tickets.count(tickets.mask(90) & (category == "billing")),
    }
    for name in TICKET_CATEGORIES:
        out[f"{name}_tickets_lifetime"] = tickets.count(category == name)
    return out


def failure_features(failures: Events, paid: Events,
                     covered_months: np.ndarray) -> dict[str, np.ndarray]:
    """Failed payment attempts over a year and the covered lifetime, and their share of
    the attempts settled before the cutoff (failed, or paid at captured_at)."""
    lifetime = failures.count()
    tried = lifetime + paid.count()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(tried > 0, lifetime / np.where(tried > 0, tried, 1.0), np.nan)
    return {
        "payment_failures_365d": failures.count(failures.mask(365)),
        "payment_failures_lifetime": lifetime,
        "payment_failures_per_year": _per_year(lifetime, covered_months),
        "payment_failure_share_lifetime": np.clip(share, 0.0, 1.0),
    }


def payment_method_features(attempts: Events) -> dict[str, np.ndarray]:
    """One-hot of the method of the latest payment attempt before the cutoff (all 0
    without any attempt)."""
    n = attempts.n
    latest_age = np.full(n, np.inf)
    np.minimum.at(latest_age, attempts.pos, attempts.age_days)
    is_latest = attempts.age_days == latest_age[attempts.pos]
    method = attempts.frame["method"].astype("string").str.lower()
    out = {}
    for name, words in PAYMENT_METHOD_GROUPS.items():
        hit = is_latest & method.isin(words).fillna(False).to_numpy(dtype=bool)
        out[f"pays_by_{name}"] = (np.bincount(attempts.pos[hit], minlength=n) > 0).astype(float)
    return out


def spend_features(paid: Events, covered_months: np.ndarray) -> dict[str, np.ndarray]:
    """Money actually paid (INR): recent, per month of covered tenure, and its trend."""
    amount = pd.to_numeric(paid.frame["amount"], errors="coerce").to_numpy(dtype=float)
    amount = np.nan_to_num(amount)
    last90 = paid.total(amount, paid.mask(90))
    before90 = paid.total(amount, paid.mask(180, 90))
    return {
        "paid_amount_90d": last90,
        "paid_amount_365d": paid.total(amount, paid.mask(365)),
        "paid_per_month_lifetime": paid.total(amount) / np.maximum(covered_months, 1.0),
        "paid_amount_trend_90d": last90 - before90,
    }


def contract_features(tables: LakeTables, pop: pd.DataFrame) -> dict[str, np.ndarray]:
    """Terms of the current subscription: what is paid against the plan's list price and
    the extra charges on top."""
    plans = tables.plans.drop_duplicates("plan_id").set_index("plan_id")
    list_monthly = pd.to_numeric(
        plans["monthly_price"].reindex(pop["plan_id"].to_numpy()), errors="coerce"
    ).to_numpy(dtype=float)
    months = np.where(pop["billing_cycle"].eq("yearly").to_numpy(), 12.0, 1.0)
    final = pd.to_numeric(pop["final_price"], errors="coerce").to_numpy(dtype=float)
    base = pd.to_numeric(pop["base_price"], errors="coerce").to_numpy(dtype=float)
    total = pd.to_numeric(pop["total_amount"], errors="coerce").to_numpy(dtype=float)
    final = np.where(np.isfinite(final), final, base)
    monthly_paid = final / months
    with np.errstate(invalid="ignore", divide="ignore"):
        versus_list = np.where(list_monthly > 0, monthly_paid / list_monthly, np.nan)
        extra = np.where(final > 0, (total - final) / final, np.nan)
    return {
        "monthly_price_paid": monthly_paid,
        "price_paid_vs_list": versus_list,
        "extra_charge_share": extra,
    }


def age_band(tables: LakeTables, idx: pd.Index,
             at: pd.Timestamp | pd.Series) -> np.ndarray:
    """Index of the customer's age band at `at` (the cutoff, or one date per customer of
    `idx`); NaN without a plausible birth date."""
    users = tables.users.drop_duplicates("user_id").set_index("user_id")
    born = utc_series(users["date_of_birth"]).reindex(idx)
    if isinstance(at, pd.Series):
        at = at.reindex(idx)
    years = ((at - born) / DAY).to_numpy(dtype=float) / 365.25
    plausible = (years >= 10) & (years <= 110)
    band = np.searchsorted(np.asarray(AGE_BAND_EDGES, dtype=float), years, side="right")
    return np.where(plausible, band.astype(float), np.nan)


def age_band_at_signup(tables: LakeTables, idx: pd.Index, cutoff: pd.Timestamp,
                       since: pd.Series) -> np.ndarray:
    """The age band when the customer joined (customer_since, never later than the
    cutoff): the life stage the contract was chosen in, which the band now blurs by the
    years of tenure since."""
    joined = since.reindex(idx)
    joined = joined.where(joined < cutoff, cutoff)
    return age_band(tables, idx, joined)


def device_types(usage: Events) -> np.ndarray:
    """Distinct device types seen in the last DEVICE_WINDOW_DAYS of sessions."""
    keep = usage.mask(DEVICE_WINDOW_DAYS) & usage.frame["device_type"].notna().to_numpy()
    codes, _ = pd.factorize(usage.frame["device_type"].to_numpy(dtype=object)[keep])
    if len(codes) == 0:
        return np.zeros(usage.n)
    pairs = np.unique(usage.pos[keep] * (codes.max() + 1) + codes)
    return np.bincount(pairs // (codes.max() + 1), minlength=usage.n).astype(float)


def plan_changes(tables: LakeTables, idx: pd.Index,
                 cutoff: pd.Timestamp) -> dict[str, np.ndarray]:
    """Moves to a dearer (upgrade) or cheaper (downgrade) plan: consecutive subscriptions
    of the customer that started before the cutoff, by their plan's monthly list price."""
    subs = subscription_lifecycle(tables.subscriptions)
    subs = subs[(subs["start_date"] < cutoff) & subs["user_id"].isin(idx)]
    plans = tables.plans.drop_duplicates("plan_id").set_index("plan_id")
    price = pd.to_numeric(plans["monthly_price"], errors="coerce")
    subs = subs.assign(price=price.reindex(subs["plan_id"].to_numpy()).to_numpy())
    subs = subs.sort_values(["user_id", "start_date", "subscription_id"])
    same_user = subs["user_id"].eq(subs["user_id"].shift())
    step = subs["price"] - subs["price"].shift()
    pos = idx.get_indexer(subs["user_id"])
    up = (same_user & (step > 0)).to_numpy(dtype=bool)
    down = (same_user & (step < 0)).to_numpy(dtype=bool)
    n = len(idx)
    return {
        "plan_upgrades": np.bincount(pos[up], minlength=n).astype(float),
        "plan_downgrades": np.bincount(pos[down], minlength=n).astype(float),
    }


def coverage_features(coverage: Coverage, cutoff: pd.Timestamp,
                      since: pd.Series) -> dict[str, np.ndarray]:
    """How much of each source's history a row's features could see."""
    n = len(since)
    out = {
        "usage_covered_days": np.full(
            n, coverage.covered_days("usagelogs", cutoff, USAGE_COVERAGE_CAP_DAYS)),
        "login_covered_days": np.full(
            n, coverage.covered_days("auditlogs", cutoff, USAGE_COVERAGE_CAP_DAYS)),
    }
    for name, source in (("ticket_history_months", "supporttickets"),
                         ("payment_history_months", "payments")):
        out[name] = covered_tenure_months(coverage, source, cutoff, since)
    return out


def covered_tenure_months(coverage: Coverage, source: str, cutoff: pd.Timestamp,
                          since: pd.Series) -> np.ndarray:
    """Months of the customer's tenure the source's history covers at the cutoff."""
    start = coverage.start(source)
    since_days = ((cutoff - since) / DAY).to_numpy(dtype=float)
    if pd.isna(start):
        return np.zeros(len(since))
    source_days = (cutoff - start) / DAY
    return _months(np.fmin(np.nan_to_num(since_days, nan=source_days), source_days))
