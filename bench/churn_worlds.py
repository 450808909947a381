"""Churn accuracy per simulated world: `python -m bench churn_worlds [--scenario=NAME]
[--customers=10000 --days=365 --seed=42 --usage-days=N --lake-cache=DIR]`.

The simulator writes the raw lake directly (bench/_lake_writer.py: the extract's own
BSON → Arrow conversion), once per (scenario, customers, days, seed) under
--lake-cache. Then the pipeline's pure training runs on it as the nightly would for
as-of = the day after the history: point-in-time rows at the built cutoffs, the
out-of-time choice of training cutoffs, tuning, calibration on the latest labelled
cutoff. The model scores every live customer at as-of and is compared, on the 30 days
the simulation ran past the history, with two references (bbxcli/evaluate.py's metrics):
- bayes: the simulator's true probability (knows latent decisions; the ceiling);
- observable: the probability of leaving given what the documents show up to as-of
  (simulator/observable.py), the reference the data can reach, given each customer's
  latent usage rates (as issue #15 defines it; its goals are set against it);
- documents: the same with sessions per day and bytes per session integrated out over
  what the customer's written history and the population show (rates=): what the
  documents alone give, without the latent rates.
--usage-days=N keeps only the last N days of usage logs and logins of the same lake
(the short-history comparison on the very same world); its documents reference reads
those N days (as with --score-usage-days), and "docs, whole" the same reference from the
whole history: the two show what the shorter history itself costs any model (sessions
and bytes; the login rate stays known). --score-usage-days=N keeps the
whole history for training and only the last N days for scoring: how much a model that
learnt from long histories loses when it is shown N days (the information a short
history holds, apart from what its training rows lack). Also printed: the headline test
metric (test customers at the latest labelled cutoff), the training time, and each goal
of the world with a paired bootstrap interval over the scored customers (one seed's world
is one draw: at a few hundred churners, ROC-AUC's own standard error is about 0.02).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bbx.settings import Settings
    from features.customer import LakeTables
    from features.training import ChurnSplits
    from models.churn import ChurnModel, CutoffChoice

END = dt.date(2026, 11, 25)
NEW_CUSTOMER_DAYS = 20  # customers this new are reported apart (_new_customers)


def _lake(root: Path, scenario: str, customers: int, days: int, seed: int,
          history_days: int | None) -> tuple[dict[str, str], object]:
    from simulator.world import SimulationSpec

    spec = SimulationSpec(customers=customers, days=days, seed=seed, end=END,
                          scenario=scenario,
                          **({"history_days": history_days} if history_days else {}))
    name = f"{scenario}-{customers}-{days}-{seed}" + (f"-h{history_days}" if history_days
                                                     else "")
    folder = root / name
    done = folder / "spec.json"
    if not done.exists():
        from bench._lake_writer import LakeDatabase
        from simulator import simulate

        sink = LakeDatabase(folder, END + dt.timedelta(days=1))
        began = time.perf_counter()
        try:
            simulate(sink, customers=customers, days=days, seed=seed, end=END,  # type: ignore[arg-type]
                     scenario=scenario, history_days=history_days)
        finally:
            sink.close()
        print(f"simulated {name} in {time.perf_counter() - began:.0f}s", flush=True)
        spec.save(done)
    from bbx import lake

    paths = {c: str(lake.raw_path(folder, c, END + dt.timedelta(days=1))) for c in lake.TABLES}
    return paths, spec


def _metrics_table(rows: dict[str, dict[str, float | None]]) -> str:
    keys = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "ece")
    who = list(rows)
    lines = [f"{'':<10}" + "".join(f"{w:>12}" for w in who)]
    for k in keys:
        cells = [rows[w].get(k) for w in who]
        lines.append(f"{k:<10}" + "".join(
            f"{'n/a' if v is None else f'{v:.3f}':>12}" for v in cells))
    return "\n".join(lines)


def _goals(scenario: str, y: np.ndarray, scores: dict[str, np.ndarray],
           draws: int) -> list[dict[str, object]]:
    """Issue #15's goals for this world, each as model minus its bar, with the paired
    bootstrap's 90% interval: a bar the interval straddles is neither met nor missed
    beyond one world's noise."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from models.metrics import interval, paired_bootstrap

    reference = "bayes" if scenario == "contract-driven" else "observable"
    # (goal, metric, model minus bar from each score's figure: whole sample or one draw)
    bars = [(f"roc_auc - ({reference} - 0.02)", roc_auc_score,
             lambda f: f["model"] - f[reference] + 0.02)]
    if reference == "observable":
        bars.append(("pr_auc - 0.9 x observable", average_precision_score,
                     lambda f: f["model"] - 0.9 * f["observable"]))
        if "documents" in scores:  # beside the goal: the bar without the latent rates
            bars.append(("aside: pr_auc - 0.9 x documents", average_precision_score,
                         lambda f: f["model"] - 0.9 * f["documents"]))
    goals: list[dict[str, object]] = []
    drawn = {}
    for name, metric, margin in bars:
        drawn[metric] = paired_bootstrap(y, scores, metric, draws)
        low, high = interval(margin(drawn[metric]))
        verdict = "met" if low > 0 else "missed" if high < 0 else "within noise"
        point = margin({k: metric(y, score) for k, score in scores.items()})
        goals.append({"goal": name, "margin": point, "low": low, "high": high,
                      "verdict": verdict})
    low, high = interval(drawn[roc_auc_score]["model"])
    goals.append({"goal": "model roc_auc alone", "margin": roc_auc_score(y, scores["model"]),
                  "low": low, "high": high, "verdict": ""})
    return goals


def _new_customers(y: np.ndarray, model: np.ndarray, observable: np.ndarray,
                   new: np.ndarray, documents: np.ndarray | None = None) -> str:
    """The customers in their first weeks, apart: the observable reference knows each
    customer's usage rate, which a model (and the documents reference) must estimate
    from the days it has seen."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(np.unique(y[new])) < 2:
        return f"customers in their first {NEW_CUSTOMER_DAYS} days: too few to compare"

    def figures(score: np.ndarray) -> str:
        return (f"roc_auc {roc_auc_score(y[new], score[new]):.3f} "
                f"pr_auc {average_precision_score(y[new], score[new]):.3f}")

    swapped = average_precision_score(y, np.where(new, observable, model))
    return (f"customers in their first {NEW_CUSTOMER_DAYS} days: {int(new.sum()):,} "
            f"({int(y[new].sum())} of the {int(y.sum())} churners): model {figures(model)}, "
            f"observable {figures(observable)}"
            + ("" if documents is None else f", documents {figures(documents)}")
            + f"; the model's pr_auc with the observable's probabilities for them: "
            f"{swapped:.3f}")


@dataclass
class NightTraining:
    """What the churn training of one night gives (tasks/train.py's steps, without I/O)."""

    model: ChurnModel
    splits: ChurnSplits
    choice: CutoffChoice
    rows: int  # customer-cutoffs built
    built_seconds: float
    fit_seconds: float


def train_as_the_night(tables: LakeTables, as_of: dt.date, settings: Settings,
                       trials: int | None = None) -> NightTraining:
    """Train the churn model on `tables` as the nightly of `as_of` would: the built and
    the partly labelled cutoffs, the out-of-time choice, tuning, calibration on the latest
    labelled cutoff, and the scoring cap of the newest rows' usage history."""
    from features.coverage import event_days
    from features.cutoffs import as_of_cutoff, cutoff_candidates
    from features.registry import CHURN_FEATURE_NAMES
    from features.training import (
        build_training_set,
        scoring_history_days,
        split_train_valid_test,
    )
    from models.churn import fit_churn_model
    from tasks.train import churn_cutoffs, churn_params, latest_refit_rows

    c = settings.churn
    started = time.perf_counter()
    cutoffs, partial = churn_cutoffs(settings, as_of)
    data = build_training_set(tables, cutoffs + partial, c.horizon_days, c.definition,
                              labels_until=as_of_cutoff(as_of))
    built = time.perf_counter() - started
    splits = split_train_valid_test(data, c.validation_share, c.test_share, c.test_cutoffs,
                                    c.seed)
    candidates = cutoff_candidates(cutoffs, c.test_cutoffs, list(c.cutoff_candidates))
    model, _, choice = fit_churn_model(splits.train, splits.valid, splits.calibration,
                                       candidates, list(CHURN_FEATURE_NAMES),
                                       churn_params(settings), trials or c.tuning_trials,
                                       latest_refit_rows(settings, splits))
    model.history_days = scoring_history_days(event_days(tables), cutoffs + partial)
    return NightTraining(model, splits, choice, len(data), built,
                         time.perf_counter() - started - built)


def _keep_last_days(tables: LakeTables, since: pd.Timestamp) -> None:
    """Drop the usage logs and logins before `since` from `tables` (in place)."""
    tables.usagelogs = tables.usagelogs[tables.usagelogs["timestamp"] >= since]
    tables.auditlogs = tables.auditlogs[tables.auditlogs["timestamp"] >= since]


def _goals_table(goals: list[dict[str, object]], draws: int) -> str:
    lines = [f"goals, model minus bar (paired bootstrap over customers, {draws:,} draws, "
             "90% interval; the short-history goal compares two runs: not here):"]
    for g in goals:
        sign = "+" if g["verdict"] else ""  # a margin is signed, a figure alone is not
        lines.append(f"  {g['goal']:<32} {g['margin']:{sign}.3f} [{g['low']:{sign}.3f}, "
                     f"{g['high']:{sign}.3f}] {g['verdict']}".rstrip())
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench churn_worlds")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--usage-days", type=int, default=None,
                        help="keep only the last N days of usage logs and logins")
    parser.add_argument("--score-usage-days", type=int, default=None,
                        help="train on the whole history, score with its last N days")
    parser.add_argument("--bootstrap-draws", type=int, default=1000)
    parser.add_argument("--history-days", type=int, default=None,
                        help="short-history scenario: N days of usage/logins simulated")
    parser.add_argument("--lake-cache", default="/tmp/bbx-churn-worlds")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args(argv)

    from bbx.lake.history import read_tables
    from bbx.settings import load_settings
    from features.customer import DAYS_PER_MONTH, build_churn_features
    from features.cutoffs import as_of_cutoff
    from models.metrics import churn_metrics, evaluate_churn
    from simulator.observable import (
        documents_from_lake,
        observable_probability,
        rates_from_lake,
    )
    from simulator.truth import churn_probabilities
    from simulator.world import build_world

    settings = load_settings()
    c = settings.churn
    paths, spec = _lake(Path(args.lake_cache), args.scenario, args.customers, args.days,
                        args.seed, args.history_days)
    tables = read_tables(paths)
    as_of = END + dt.timedelta(days=1)
    cut = as_of_cutoff(as_of)
    # The observable reference reads the untruncated lake's last 60 days: it takes the days
    # that carry documents from the simulation, so a truncation here would read as no use.
    untruncated = tables.usagelogs, tables.auditlogs
    if args.usage_days:
        _keep_last_days(tables, cut - pd.Timedelta(days=args.usage_days))

    started, cpu = time.perf_counter(), time.process_time()
    night = train_as_the_night(tables, as_of, settings, args.trials)
    model, splits, choice = night.model, night.splits, night.choice
    headline = evaluate_churn(splits.test["label"].to_numpy(),
                              model.predict_proba(splits.test), model.threshold)
    pooled = evaluate_churn(splits.test_pooled["label"].to_numpy(),
                            model.predict_proba(splits.test_pooled), model.threshold)
    train_wall, train_cpu = time.perf_counter() - started, time.process_time() - cpu

    # Score today's customers and compare with the simulation's future.
    if args.score_usage_days:
        _keep_last_days(tables, cut - pd.Timedelta(days=args.score_usage_days))
    features = build_churn_features(tables, cut, history_days=model.history_days)
    probability = model.predict_proba(features)
    world = build_world(spec)
    day = world.day_index(as_of)
    ids = np.array(world.user_ids)
    _, p_cancel, p_leave = churn_probabilities(world, day)
    tl = world.full
    leave = np.where(tl.cancel_day >= 0, tl.cancel_day, 10**9)
    if c.definition != "cancelled":
        leave = np.minimum(leave, np.where(tl.nonrenewal_day >= 0, tl.nonrenewal_day, 10**9))
    outcome = (leave >= day) & (leave < day + 30)
    recent = cut - pd.Timedelta(days=60)
    documents = documents_from_lake(
        world, day, untruncated[0][untruncated[0]["timestamp"] >= recent],
        untruncated[1][untruncated[1]["timestamp"] >= recent],
        tables.supporttickets[tables.supporttickets["created_at"] >= recent],
        tables.feedbacks[tables.feedbacks["created_at"] >= recent])
    observable = observable_probability(world, day, documents)
    # The rates from the history this run keeps (--usage-days: its last N days, the days
    # before carrying nothing), and, beside it, from the whole written history.
    shown = args.score_usage_days or args.usage_days  # days of usage the scoring is shown
    kept_from = day - shown if shown else 0
    documents_only = (observable_probability(
        world, day, documents, rates=rates_from_lake(world, day, tables.usagelogs, kept_from))
        if args.scenario != "contract-driven" else observable)
    whole_documents = (observable_probability(
        world, day, documents, rates=rates_from_lake(world, day, untruncated[0]))
        if shown and args.scenario != "contract-driven" else None)
    position = pd.Series(np.arange(len(ids)), index=ids)
    rows = position.reindex(features.index).to_numpy()
    known = ~np.isnan(rows.astype(float))
    rows = rows[known].astype(int)
    p_model = probability[known]
    y = outcome[rows].astype(int)
    reference = p_cancel if c.definition == "cancelled" else p_leave
    threshold = model.threshold
    figures = {
        "model": churn_metrics(y, p_model, threshold),
        "observable": churn_metrics(y, observable[rows], threshold),
        "documents": churn_metrics(y, documents_only[rows], threshold),
        "bayes": churn_metrics(y, reference[rows], threshold),
    }
    if whole_documents is not None:  # what the same documents reach with the whole history
        figures["docs, whole"] = churn_metrics(y, whole_documents[rows], threshold)
    print(f"world {args.scenario} {args.customers} x {args.days} days seed {args.seed}"
          + (f", usage/logins kept for the last {args.usage_days} days" if args.usage_days
             else "")
          + (f", scored with the last {args.score_usage_days} days of usage/logins"
             if args.score_usage_days else "")
          + f": {len(y):,} live at {as_of}, {int(y.sum())} cancelled within 30 days "
          f"(mean model p {p_model.mean():.3f}, observed {y.mean():.3f})")
    print(_metrics_table(figures))
    goals = _goals(args.scenario, y, {"model": p_model, "observable": observable[rows],
                                      "documents": documents_only[rows],
                                      "bayes": reference[rows]}, args.bootstrap_draws)
    print(_goals_table(goals, args.bootstrap_draws))
    tenure_days = features["customer_tenure_months"].to_numpy(float)[known] * DAYS_PER_MONTH
    print(_new_customers(y, p_model, observable[rows], tenure_days < NEW_CUSTOMER_DAYS,
                         documents_only[rows]))
    print("cutoff check (ROC-AUC at the latest labelled cutoff): "
          + ", ".join(f"{k} {v:.3f}" for k, v in choice.scores.items())
          + f" -> {choice.name}")
    print(f"headline test (latest labelled cutoff, {len(splits.test):,} rows): "
          f"roc_auc {headline['roc_auc']:.3f} pr_auc {headline['pr_auc']:.3f} "
          f"ece {headline['ece']:.3f}; pooled over all cutoffs: roc_auc "
          f"{pooled['roc_auc']:.3f} pr_auc {pooled['pr_auc']:.3f}")
    print("scoring history: " + (", ".join(f"{k} {v:g} days" for k, v in
                                           model.history_days.items()) or "uncapped"))
    print(f"training: {night.rows:,} customer-cutoffs built in {night.built_seconds:.0f}s, "
          f"fit {night.fit_seconds:.0f}s; total {train_wall:.0f}s wall, {train_cpu:.0f}s CPU")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "figures": figures, "goals": goals, "headline": headline, "pooled": pooled,
            "choice": choice.name, "scores": choice.scores, "train_wall": train_wall,
        }, indent=2, default=float))
