"""Other churn populations than the default world, each with its own truth.

`bbx simulate --scenario NAME` (default: "default", unchanged):
- contract-driven: the churn hazard is a function of what the documents show:
  contract terms (billing cycle, discount, the approach of a yearly renewal), payment
  method, complaints and failed charges over the whole tenure so far, age at signup
  and the monthly price paid; no latent traits, and no wind-down in usage (leavers use
  the service as usual until they cancel). The true probability is therefore the
  reference any model of the documents can reach.
- short-history: the default world, but usage logs and logins are kept only for the
  last `history_days` days (accounts, subscriptions, payments, tickets untouched):
  accounts years old, usage history of weeks.
- drift: the default world, but one segment's churn hazard rises by DRIFT_FACTOR from
  DRIFT_DAYS_BEFORE_END days before the end of the history onwards.

Hooks: world.build_world calls `population_for` and passes `hooks_for` to
timeline.build_timeline; truth.churn_probabilities reads `decline_range`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from simulator.catalog import (
    FIRST_NAMES,
    LAST_NAMES,
    LEAVER_DECLINE_DAYS,
    SEGMENTS,
    STREET_NAMES,
)
from simulator.credentials import CUSTOMER_PASSWORD_HASHES
from simulator.encode import STREAM_DOCUMENTS, rng_for
from simulator.population import Population

DEFAULT = "default"
CONTRACT_DRIVEN = "contract-driven"
SHORT_HISTORY = "short-history"
DRIFT = "drift"
SCENARIOS: tuple[str, ...] = (DEFAULT, CONTRACT_DRIVEN, SHORT_HISTORY, DRIFT)
DEFAULT_HISTORY_DAYS = 60  # short-history: days of usage logs and logins kept

# contract-driven: log-hazard terms, each read off a document.
CONTRACT_WEIGHTS = {
    "yearly": -2.25,  # subscriptions.billingCycle yearly: committed for the year
    "discount": -1.25,  # pricing.discountApplied > 0
    "log_price_paid": 2.0,  # log of the monthly price paid over the book's median
    "renewal_due": 3.0,  # a yearly contract within 30 days of its anniversary
    "lifetime_tickets": 0.75,  # per support ticket so far (capped at 6)
    "lifetime_failures": 0.875,  # log(1 + failed charges so far)
    "young": 1.5,  # under 30 at signup (users.dateOfBirth)
    "senior": 0.875,  # 60 or over at signup
}
# payments.method in PAYMENT_METHODS order (card, upi, netbanking, wallet).
METHOD_LOG_HAZARD = (-0.75, 0.0, 0.625, 1.75)
RENEWAL_WINDOW_DAYS = 30
NO_WIND_DOWN_DAYS = 1e-6  # leavers' activity drops only on the day they leave

# drift: which segment, from when, by how much.
DRIFT_SEGMENT = "Value-Seekers"
DRIFT_DAYS_BEFORE_END = 90
DRIFT_FACTOR = 3.0


def check(scenario: str, history_days: int | None) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    if history_days is not None and history_days < 1:
        raise ValueError("history_days must be at least 1")


def decline_range(scenario: str) -> tuple[int, int]:
    """Days over which leavers wind down (inclusive range the truth sums over)."""
    return (0, 0) if scenario == CONTRACT_DRIVEN else LEAVER_DECLINE_DAYS


def ages_at_signup_days(seed: int, n: int) -> np.ndarray:
    """Each customer's age at signup in days, as documents.user_documents draws it for
    users.dateOfBirth (the same stream and order; a test keeps them in step)."""
    rng = rng_for(seed, STREAM_DOCUMENTS, 2)  # documents' "users" part
    rng.integers(0, len(FIRST_NAMES), n)
    rng.integers(0, len(LAST_NAMES), n)
    rng.integers(0, len(CUSTOMER_PASSWORD_HASHES), n)
    rng.integers(6_000_000_000, 9_999_999_999, n)
    rng.integers(1, 400, n)
    rng.integers(0, len(STREET_NAMES), n)
    rng.integers(1, 99, n)
    return rng.integers(19 * 365, 70 * 365, n)


def contract_log_hazard(pop: Population, age_days: np.ndarray) -> np.ndarray:
    """The contract-driven static log-hazard: terms fixed at signup, read off documents."""
    w = CONTRACT_WEIGHTS
    paid = pop.monthly_list_price * (1.0 - pop.discount_rate)
    years = age_days / 365.0
    return (
        w["yearly"] * pop.yearly
        + w["discount"] * (pop.discount_rate > 0)
        + w["log_price_paid"] * np.log(paid / np.median(paid))
        + np.asarray(METHOD_LOG_HAZARD)[pop.payment_method]
        + w["young"] * (years < 30)
        + w["senior"] * (years >= 60)
    )


def population_for(scenario: str, seed: int, pop: Population) -> Population:
    if scenario != CONTRACT_DRIVEN:
        return pop
    static = contract_log_hazard(pop, ages_at_signup_days(seed, pop.size))
    return dataclasses.replace(pop, static_log_hazard=static)


def _renewal_due(pop: Population, days: int) -> np.ndarray:
    """(days, n) bool: a yearly contract within RENEWAL_WINDOW_DAYS before an anniversary."""
    tenure = np.arange(days)[:, None] - pop.start_day[None, :]
    to_anniversary = (-tenure) % 365
    return pop.yearly[None, :] & (tenure > 0) & (to_anniversary < RENEWAL_WINDOW_DAYS)


@dataclass(frozen=True)
class TimelineHooks:
    """What a scenario changes in timeline.build_timeline."""

    scenario: str
    history_days: int | None
    drift_segment: int
    drift_start_day: int
    written_days: int  # days of written history (the hidden future follows)

    def daily_hazard(self, pop: Population, exposed: np.ndarray, tickets: np.ndarray,
                     failures: np.ndarray, default: np.ndarray,
                     new_contract: np.ndarray) -> np.ndarray:
        """The unscaled daily hazard (days, n); `default` is the default world's."""
        if self.scenario != CONTRACT_DRIVEN:
            return default
        w = CONTRACT_WEIGHTS
        # Tickets and failures so far (days before today, as the documents show them).
        so_far_tickets = np.cumsum(tickets, axis=0, dtype=np.float32) - tickets
        so_far_failures = np.cumsum(failures, axis=0, dtype=np.float32) - failures
        log_hazard = (
            pop.static_log_hazard[None, :]
            + w["lifetime_tickets"] * np.minimum(so_far_tickets, 6)
            + w["lifetime_failures"] * np.log1p(so_far_failures)
            + w["renewal_due"] * _renewal_due(pop, exposed.shape[0])
        )
        return (np.exp(log_hazard) * new_contract * exposed).astype(np.float32)

    def scaled_hazard(self, pop: Population, hazard: np.ndarray) -> np.ndarray:
        """The calibrated hazard, after the book's churn rate was set (drift rises on it)."""
        if self.scenario != DRIFT:
            return hazard
        rise = np.ones(hazard.shape, dtype=np.float32)
        rise[self.drift_start_day:, pop.segment == self.drift_segment] = DRIFT_FACTOR
        return hazard * rise

    def activity_from_day(self) -> int:
        """First window day with usage logs and logins written: the last history_days
        days of the written history (short-history), else the first."""
        if self.scenario != SHORT_HISTORY:
            return 0
        return max(self.written_days - (self.history_days or DEFAULT_HISTORY_DAYS), 0)

    def wind_down_days(self, decline_days: np.ndarray) -> np.ndarray:
        if self.scenario == CONTRACT_DRIVEN:
            return np.full_like(decline_days, NO_WIND_DOWN_DAYS)
        return decline_days


def hooks_for(scenario: str, history_days: int | None, days: int) -> TimelineHooks:
    """`days`: days of written history (the drift starts inside it)."""
    segment = [s.name for s in SEGMENTS].index(DRIFT_SEGMENT)
    return TimelineHooks(scenario, history_days, segment,
                         max(days - DRIFT_DAYS_BEFORE_END, 0), days)
