"""Synthetic BroadbandX app data: customers, plans, subscriptions and their history,
written in the app's MongoDB shapes, plus a separate ground-truth collection."""

from simulator.core import APP_COLLECTIONS, SimulationReport, simulate
from simulator.truth import TRUTH_COLLECTION
from simulator.world import SimulationSpec, build_world

__all__ = [
    "APP_COLLECTIONS",
    "TRUTH_COLLECTION",
    "SimulationReport",
    "SimulationSpec",
    "build_world",
    "simulate",
]
