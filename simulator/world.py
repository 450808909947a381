"""The simulated world, computed (not written): who the customers are and what happens
to them, over the written history and `future_days` beyond it.

`simulate()` writes the observed part into the app's collections and keeps the future
only in the truth; the price-response API and the benchmark rebuild the same world
from the same `SimulationSpec` without touching a database.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simulator import documents as docs
from simulator import scenarios
from simulator.encode import (
    SECONDS_PER_DAY,
    STREAM_IDS,
    STREAM_POPULATION,
    STREAM_TIMELINE,
    epoch_seconds,
    rng_for,
)
from simulator.population import Population, draw_population
from simulator.timeline import Timeline, Window, build_timeline, observed

CATALOGUE_LEAD_DAYS = 30  # plans and admins exist a month before the first customer


@dataclass(frozen=True)
class SimulationSpec:
    """Everything that determines a simulated world: same spec, same world."""

    customers: int
    days: int  # days of written history, ending on `end` (inclusive)
    seed: int
    end: dt.date
    sessions_per_day: float = 1.5
    annual_churn: float = 0.25
    future_days: int = 60  # simulated after `end`, kept only in the truth
    scenario: str = scenarios.DEFAULT  # simulator/scenarios.py
    history_days: int | None = None  # short-history: days of usage/logins kept (None: 60)

    def check(self) -> None:
        scenarios.check(self.scenario, self.history_days)
        if self.customers < 1 or self.days < 1:
            raise ValueError("customers and days must be at least 1")
        if self.sessions_per_day <= 0:
            raise ValueError("sessions_per_day must be positive")
        if not 0 <= self.annual_churn < 1:
            raise ValueError("annual_churn must be in [0, 1)")
        if self.future_days < 0:
            raise ValueError("future_days must not be negative")

    @property
    def start(self) -> dt.date:
        return self.end - dt.timedelta(days=self.days - 1)

    def save(self, path: Path) -> None:
        """Write the spec as JSON (what `bbx simulate` ran), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({**asdict(self), "end": self.end.isoformat()}, indent=2))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> SimulationSpec:
        raw = json.loads(path.read_text())
        return cls(**{**raw, "end": dt.date.fromisoformat(raw["end"])})


@dataclass(frozen=True)
class World:
    spec: SimulationSpec
    pop: Population
    full: Timeline  # history and future
    seen: Timeline  # the written history only
    keys: docs.Keys

    def day_index(self, day: dt.date) -> int:
        """Window day index of `day` (0: first written day; spec.days: the day after end)."""
        return (day - self.spec.start).days

    def date_of(self, day_index: int) -> dt.date:
        return self.spec.start + dt.timedelta(days=int(day_index))

    @property
    def user_ids(self) -> list[str]:
        """Customers' ids as the lake writes them (24-char hex)."""
        return [str(oid) for oid in self.keys.user_ids]


def build_world(spec: SimulationSpec) -> World:
    spec.check()
    total_days = spec.days + spec.future_days
    full_window = Window(epoch_seconds(spec.start), total_days)
    # The population is drawn for the written window: nobody joins in the hidden future.
    pop = draw_population(
        rng_for(spec.seed, STREAM_POPULATION),
        spec.customers,
        spec.days,
        full_window.start_seconds,
        spec.sessions_per_day,
    )
    pop = scenarios.population_for(spec.scenario, spec.seed, pop)
    hooks = (None if spec.scenario == scenarios.DEFAULT
             else scenarios.hooks_for(spec.scenario, spec.history_days, spec.days))
    full = build_timeline(rng_for(spec.seed, STREAM_TIMELINE), pop, full_window, spec.annual_churn,
                          hooks)
    seen = observed(full, pop, spec.days)
    catalogue_seconds = int(pop.start_seconds.min()) - CATALOGUE_LEAD_DAYS * SECONDS_PER_DAY
    keys = docs.draw_keys(rng_for(spec.seed, STREAM_IDS), pop, catalogue_seconds)
    return World(spec=spec, pop=pop, full=full, seen=seen, keys=keys)


def in_service(world: World, day_index: int) -> np.ndarray:
    """Customers with a live subscription at midnight starting `day_index` (bool per customer)."""
    tl = world.full
    started = world.pop.start_day < day_index
    not_cancelled = (tl.cancel_day < 0) | (tl.cancel_day >= day_index)
    not_lapsed = (tl.nonrenewal_day < 0) | (tl.nonrenewal_day >= day_index)
    return started & not_cancelled & not_lapsed
