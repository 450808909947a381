"""Soak: consecutive nights beside the live app, over a world that grows a day at a time.

    python -m bench soak [--nights=14 --customers=2000 --days=120 --seed=42]

On a fresh embedded server (in memory) the simulator writes `--days` of clean history
ending `--nights` + 1 days before today. Then, night after night:

1. the nightly flow runs for the next as-of (the day after the last simulated one),
   exactly as a deployment runs it (training when due, publishing, app views);
2. on every other night (the 1st, 3rd, ...) the app's admin approves and applies the
   pipeline's pending price proposal (each changed plan's `pricing.monthly` becomes the
   proposed price, as the app's "apply" does);
   (the soak's proposal cool-down is 0 days by default, so a new proposal can follow
   every apply: the case where a band that followed the list price would ratchet);
3. the world grows by one day with the app's own background writers on (hourly usage
   in same-timestamp batches, analytics in MB, the expiry and auto-renewal service, the
   app's 6-hourly churn scan) and ordinary customer activity.

Per night it prints: published or not, the rows extracted and quarantined (by table),
the wall time of the nightly run, and the largest |price / anchor − 1| among the
night's plan proposals and among every published dynamic price (monthly basis). The
goals: every night published, quarantined rows under 0.1% of the night's rows, every
price inside the plan's band around its anchor (±20% by default).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo.database import Database


@dataclass
class NightReport:
    night: int
    as_of: dt.date
    published: bool
    wall_seconds: float
    rows: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    proposed_plans: int = 0
    max_proposal_deviation: float | None = None  # |proposed / anchor − 1|, this night
    max_price_deviation: float | None = None  # |dynamic / anchor − 1| over published prices
    applied: dict[str, float] = field(default_factory=dict)  # plan → price the admin applied
    error: str | None = None

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())

    @property
    def quarantined_share(self) -> float:
        return self.quarantined_rows / self.rows if self.rows else 0.0


def _anchors(db: Database) -> dict[Any, float]:
    return {d["planId"]: float(d["monthly"]) for d in db.ml_price_anchors.find()
            if d.get("monthly")}


def _deviations(db: Database, since: dt.datetime) -> tuple[int, float | None, float | None]:
    """Tonight's proposed plans and the largest relative distances from their anchors."""
    anchors = _anchors(db)
    proposal_devs = [
        abs(change["proposedPrice"] / anchors[change["plan"]] - 1)
        for proposal in db.pricingproposals.find({"source": "bbx-ml-pipeline",
                                                  "createdAt": {"$gte": since}})
        for change in proposal.get("changes", [])
        if change.get("plan") in anchors
    ]
    price_devs = [
        abs(d["price"]["monthly"]["dynamic"] / d["price"]["monthly"]["anchor"] - 1)
        for d in db.ml_customer_scores.find({}, {"price.monthly": 1})
        if (d.get("price") or {}).get("monthly", {}).get("anchor")
    ]
    return (len(proposal_devs), max(proposal_devs, default=None),
            max(price_devs, default=None))


def run_soak(
    db: Database,
    nights: int,
    first_as_of: dt.date,
    seed: int = 42,
    apply_every: int = 2,
    progress: Callable[[str], None] = print,
) -> list[NightReport]:
    """Nightly runs over `db` (already simulated up to `first_as_of` − 1), growing it
    by a day between nights. The flow reads its settings from the environment
    (BBX_HOME, MONGODB_URI, BBX_MONGO__DATABASE), as a deployment does."""
    from flows.nightly import nightly
    from simulator.admin import approve_and_apply_pending
    from simulator.continuation import continue_world

    reports: list[NightReport] = []
    for night in range(1, nights + 1):
        as_of = first_as_of + dt.timedelta(days=night - 1)
        started_at = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        report = NightReport(night, as_of, published=False, wall_seconds=0.0)
        try:
            summary = nightly(as_of=as_of)
        except Exception as exc:  # a stopped night is a figure of the soak, not its end
            report.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            summary = None
        report.wall_seconds = time.perf_counter() - started
        if summary is not None:
            published = summary.get("published") or {}
            report.published = bool(published.get("swapped", False))
            report.rows = sum(summary.get("rows_extracted", {}).values())
            report.quarantined = {c: n for c, n in summary.get("rows_quarantined", {}).items()
                                  if n}
            (report.proposed_plans, report.max_proposal_deviation,
             report.max_price_deviation) = _deviations(db, started_at)
        if night % apply_every == 1 % apply_every:
            when = dt.datetime.combine(as_of, dt.time(10), tzinfo=dt.UTC)
            for applied in approve_and_apply_pending(db, when):
                report.applied |= applied.plans
        reports.append(report)
        progress(format_night(report))
        if night < nights:
            continue_world(db, 1, seed=seed, app_writers=True)
    return reports


HEADER = ("night  as-of       published  rows       quarantined (share, by table)"
          "                wall s   proposals  max |prop/anchor-1|  max |price/anchor-1|  applied")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def format_night(r: NightReport) -> str:
    tables = ", ".join(f"{c} {n}" for c, n in sorted(r.quarantined.items())) or "none"
    applied = ", ".join(f"{p} {v:.0f}" for p, v in r.applied.items()) or "-"
    status = "yes" if r.published else f"NO ({r.error or 'not swapped'})"
    return (f"{r.night:>5}  {r.as_of}  {status:<9}  {r.rows:>9,}  "
            f"{r.quarantined_rows:>6} ({r.quarantined_share:.3%}; {tables})".ljust(72)
            + f"{r.wall_seconds:>7.1f}   {r.proposed_plans:>9}  "
            f"{_pct(r.max_proposal_deviation):>19}  {_pct(r.max_price_deviation):>20}  {applied}")


def verdict(reports: list[NightReport], band: float) -> list[str]:
    published = sum(r.published for r in reports)
    share = max((r.quarantined_share for r in reports), default=0.0)
    devs = [d for r in reports for d in (r.max_proposal_deviation, r.max_price_deviation)
            if d is not None]
    worst = max(devs, default=0.0)
    return [
        f"published: {published} of {len(reports)} nights "
        f"({'OK' if published == len(reports) else 'MISSED'})",
        f"largest quarantined share of a night: {share:.3%} "
        f"(goal < 0.1%: {'OK' if share < 0.001 else 'MISSED'})",
        f"largest |price / anchor - 1|: {worst:.2%} (band ±{band:.0%}: "
        f"{'OK' if worst <= band + 1e-4 else 'MISSED'})",
        f"nightly wall time: mean {sum(r.wall_seconds for r in reports) / len(reports):.1f} s, "
        f"max {max(r.wall_seconds for r in reports):.1f} s",
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--nights", type=int, default=14)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cooldown-days", type=float, default=0.0,
                        help="pricing.proposal_cooldown_days for the soak (default 0: a new "
                             "proposal may follow every apply, the hardest case for the band)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from pymongo import MongoClient

    from bbx.mongo import start_embedded, stop_process
    from bbx.settings import load_settings
    from simulator import simulate

    today = dt.datetime.now(dt.UTC).date()
    first_as_of = today - dt.timedelta(days=args.nights)
    with tempfile.TemporaryDirectory(prefix="bbx-soak-") as home:
        settings = load_settings(home=Path(home), mongo={"embedded_storage": ":memory:"})
        server, process = start_embedded(settings)
        try:
            os.environ.update({"BBX_HOME": home, "MONGODB_URI": server.uri,
                               "BBX_MONGO__DATABASE": settings.mongo.database,
                               "BBX_PRICING__PROPOSAL_COOLDOWN_DAYS": str(args.cooldown_days)})
            client: MongoClient = MongoClient(server.uri, tz_aware=True)
            db = client[settings.mongo.database]
            t = time.perf_counter()
            simulate(db, customers=args.customers, days=args.days, seed=args.seed,
                     end=first_as_of - dt.timedelta(days=1))
            print(f"proposal cool-down {args.cooldown_days} days; band ×"
                  f"[{settings.pricing.min_ratio}, {settings.pricing.max_ratio}] of the anchor")
            print(f"simulated {args.customers} customers x {args.days} days in "
                  f"{time.perf_counter() - t:.0f}s; nights {first_as_of} .. "
                  f"{first_as_of + dt.timedelta(days=args.nights - 1)}", flush=True)
            print(HEADER, flush=True)
            reports = run_soak(db, args.nights, first_as_of, seed=args.seed,
                               progress=lambda line: print(line, flush=True))
            band = max(settings.pricing.max_ratio - 1, 1 - settings.pricing.min_ratio)
            print("\n".join(verdict(reports, band)))
            with contextlib.suppress(Exception):
                client.close()
        finally:
            stop_process(process)
