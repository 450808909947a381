"""Synthetic BroadbandX app data: customers, plans, subscriptions and their history,
written in the app's MongoDB shapes, plus a separate ground-truth collection."""

from simulator.core import APP_COLLECTIONS, TRUTH_COLLECTION, SimulationReport, simulate

__all__ = ["APP_COLLECTIONS", "TRUTH_COLLECTION", "SimulationReport", "simulate"]
