"""Who the customers are: latent traits drawn once per customer (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.catalog import (
    CITIES,
    DEVICE_TYPE_WEIGHTS,
    HAZARD_WEIGHTS,
    MAX_TENURE_DAYS,
    PAYMENT_METHOD_WEIGHTS,
    PLAN_INDEX,
    PLANS,
    SEGMENTS,
)
from simulator.encode import SECONDS_PER_DAY

MAX_DEVICES = max(seg.devices[1] for seg in SEGMENTS)


@dataclass(frozen=True)
class Population:
    segment: np.ndarray  # index into SEGMENTS
    plan: np.ndarray  # index into PLANS
    yearly: np.ndarray  # bool: billed yearly
    start_day: np.ndarray  # contract start, window day index (negative: before the window)
    start_seconds: np.ndarray  # contract start, epoch seconds
    city: np.ndarray  # index into CITIES
    elasticity: np.ndarray
    payment_stress: np.ndarray  # chance a single charge fails
    latency_ms: np.ndarray  # typical latency of the line
    packet_loss_pct: np.ndarray  # typical packet loss of the line
    speed_factor: np.ndarray  # share of the plan's speed the line delivers
    monthly_gb: np.ndarray  # usual monthly download volume
    sessions_per_day: np.ndarray
    logins_per_day: np.ndarray
    peak_share: np.ndarray
    devices: np.ndarray  # number of devices in the home
    device_types: np.ndarray  # (n, MAX_DEVICES) index into DEVICE_TYPES
    payment_method: np.ndarray  # index into PAYMENT_METHODS
    discount_rate: np.ndarray  # promotional discount on the base price
    static_log_hazard: np.ndarray  # latent churn propensity from lasting traits
    satisfaction: np.ndarray  # standardised latent satisfaction (high = happy)
    reference_price: np.ndarray  # monthly price the customer compares theirs with
    price_pressure_spread: float  # std of price pressure, its z-score's denominator

    @property
    def size(self) -> int:
        return len(self.segment)

    @property
    def monthly_list_price(self) -> np.ndarray:
        return np.array([p.monthly for p in PLANS])[self.plan]

    @property
    def cycle_base_price(self) -> np.ndarray:
        """Price per billing cycle: yearly contracts pay 12 months less 10 % up front."""
        yearly_list_price = np.array([p.yearly for p in PLANS])[self.plan]
        return np.where(self.yearly, yearly_list_price, self.monthly_list_price)


def _zscore(x: np.ndarray) -> np.ndarray:
    spread = x.std()
    return (x - x.mean()) / spread if spread > 0 else np.zeros_like(x)


def _choose(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=weights / weights.sum())


def _plans_for(rng: np.random.Generator, segment: np.ndarray) -> np.ndarray:
    plan = np.empty_like(segment)
    for s, spec in enumerate(SEGMENTS):
        members = np.flatnonzero(segment == s)
        names = list(spec.plan_mix)
        picks = _choose(rng, np.array([spec.plan_mix[k] for k in names]), len(members))
        plan[members] = np.array([PLAN_INDEX[k] for k in names])[picks]
    return plan


def _segment_table(values: list[float], segment: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)[segment]


def draw_population(
    rng: np.random.Generator, n: int, days: int, window_start_seconds: int, sessions_per_day: float
) -> Population:
    segment = _choose(rng, np.array([s.share for s in SEGMENTS]), n)
    plan = _plans_for(rng, segment)
    yearly = rng.random(n) < _segment_table([s.yearly_share for s in SEGMENTS], segment)
    # Tenure at the end of the window, uniform up to three years: the book grew steadily.
    tenure_days = rng.integers(0, MAX_TENURE_DAYS, size=n)
    start_day = (days - 1) - tenure_days
    start_seconds = (
        window_start_seconds + start_day * SECONDS_PER_DAY + rng.integers(3 * 3600, 15 * 3600, n)
    )
    city = _choose(rng, np.array([c.share for c in CITIES]), n)
    elasticity = np.minimum(
        _segment_table([s.elasticity for s in SEGMENTS], segment) + rng.normal(0, 0.15, n), -0.05
    )
    stress_a = _segment_table([s.payment_stress[0] for s in SEGMENTS], segment)
    stress_b = _segment_table([s.payment_stress[1] for s in SEGMENTS], segment)
    payment_stress = np.minimum(rng.beta(stress_a, stress_b), 0.6)

    cheap = np.array([p.cheap for p in PLANS])[plan]
    city_latency = np.array([c.latency_ms for c in CITIES])[city]
    # Entry plans ride contended links: more latency and loss than premium ones.
    latency_ms = city_latency * np.where(cheap, 1.5, 1.0) * rng.lognormal(0, 0.35, n)
    packet_loss_pct = np.where(cheap, 0.6, 0.25) * rng.lognormal(0, 0.7, n)
    speed_factor = np.clip(rng.normal(np.where(cheap, 0.78, 0.9), 0.08), 0.4, 0.99)

    gb_lo = _segment_table([s.monthly_gb[0] for s in SEGMENTS], segment)
    gb_hi = _segment_table([s.monthly_gb[1] for s in SEGMENTS], segment)
    monthly_gb = rng.uniform(gb_lo, gb_hi)
    weights = np.array([s.session_weight for s in SEGMENTS])
    mean_weight = float(weights @ np.array([s.share for s in SEGMENTS]))
    sessions = sessions_per_day * weights[segment] / mean_weight * rng.lognormal(-0.045, 0.3, n)
    logins = _segment_table([s.login_rate for s in SEGMENTS], segment) * rng.lognormal(0, 0.3, n)
    peak_share = np.clip(
        _segment_table([s.peak_share for s in SEGMENTS], segment) + rng.normal(0, 0.05, n),
        0.05,
        0.95,
    )
    dev_lo = np.array([s.devices[0] for s in SEGMENTS])[segment]
    dev_hi = np.array([s.devices[1] for s in SEGMENTS])[segment]
    devices = rng.integers(dev_lo, dev_hi + 1)
    device_types = _choose(rng, np.array(DEVICE_TYPE_WEIGHTS), n * MAX_DEVICES).reshape(
        n, MAX_DEVICES
    )
    payment_method = _choose(rng, np.array(PAYMENT_METHOD_WEIGHTS), n)
    discount_rate = np.where(rng.random(n) < 0.15, rng.choice([0.1, 0.15, 0.2], n), 0.0)

    # Price pressure: paying above what the segment usually pays (the reference price).
    list_price = np.array([p.monthly for p in PLANS])[plan] * (1 - discount_rate)
    segment_typical = np.array(
        [
            np.median(list_price[segment == s]) if np.any(segment == s) else 1.0
            for s in range(len(SEGMENTS))
        ]
    )[segment]
    price_pressure = price_pressure_of(list_price, segment_typical, elasticity)

    w = HAZARD_WEIGHTS
    drivers = (
        w["latency"] * _zscore(np.log(latency_ms))
        + w["packet_loss"] * _zscore(np.log(packet_loss_pct))
        + w["payment_stress"] * _zscore(payment_stress)
        + w["price_pressure"] * _zscore(price_pressure)
        + w["noise"] * rng.normal(0, 1, n)
    )
    return Population(
        segment=segment,
        plan=plan,
        yearly=yearly,
        start_day=start_day,
        start_seconds=start_seconds,
        city=city,
        elasticity=elasticity,
        payment_stress=payment_stress,
        latency_ms=latency_ms,
        packet_loss_pct=packet_loss_pct,
        speed_factor=speed_factor,
        monthly_gb=monthly_gb,
        sessions_per_day=sessions,
        logins_per_day=logins,
        peak_share=peak_share,
        devices=devices,
        device_types=device_types,
        payment_method=payment_method,
        discount_rate=discount_rate,
        static_log_hazard=drivers,
        satisfaction=-_zscore(drivers),
        reference_price=segment_typical,
        price_pressure_spread=float(price_pressure.std()) or 1.0,
    )


def price_pressure_of(
    monthly_price: np.ndarray, reference_price: np.ndarray, elasticity: np.ndarray
) -> np.ndarray:
    """How much the price hurts: paying above the reference price, felt through elasticity
    (the constant term makes price-sensitive customers restless at any price)."""
    return -elasticity * np.log(monthly_price / reference_price) + 0.3 * -elasticity
