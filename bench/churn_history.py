"""A short usage history against the whole one, on the same world, at several as-of dates:
`python -m bench churn_history [--scenario=default --customers=10000 --days=365 --seeds=42
--usage-days=60 --as-of-back=0,28,56,84 --lake-cache=DIR --trials=N]`.

Issue #15's short-history goal: ROC-AUC no more than 0.01 below the same world with its
full history. At one as-of a 10k-customer world has about 150 leavers, so one ROC-AUC has a
standard error near 0.015 and one comparison says little. Here the world is scored at as-of
dates `--as-of-back` days before the day after its history (28 apart: disjoint 30-day
outcome windows). For each date the pipeline's pure training runs twice as the nightly
would for that date (bench/churn_worlds.py, the same code): on the whole lake, and with
usage logs and logins kept only for the `--usage-days` before that date. Both models score
the same live customers against what the simulation did in the next 30 days. The
difference short minus whole is paired (same customers, same outcomes); its interval is
a bootstrap over customers within each date (1,000 draws, 90%), averaged over the dates.

One simulated world is one draw of a population, and its dates share its customers:
`--seeds=42,43` repeats the whole comparison on independently simulated worlds and pools
every (world, date) pair into the mean and its interval, with each world's own mean beside.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.churn_worlds import END, _keep_last_days, _lake, train_as_the_night

if TYPE_CHECKING:
    from bbx.settings import Settings
    from features.customer import LakeTables


def _scores(tables: LakeTables, as_of: dt.date, settings: Settings) -> pd.Series:
    """Churn probability per live customer at `as_of`, from the model the nightly of that
    date would train on `tables`."""
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff

    model = train_as_the_night(tables, as_of, settings).model
    features = build_churn_features(tables, as_of_cutoff(as_of), history_days=model.history_days)
    return pd.Series(model.predict_proba(features), index=features.index)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench churn_history")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seeds", "--seed", default="42",
                        help="comma-separated world seeds, pooled")
    parser.add_argument("--usage-days", type=int, default=60)
    parser.add_argument("--as-of-back", default="0,28,56,84")
    parser.add_argument("--lake-cache", default="/tmp/bbx-churn-worlds")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--bootstrap-draws", type=int, default=1000)
    args = parser.parse_args(argv)

    from sklearn.metrics import average_precision_score, roc_auc_score

    from bbx.lake.history import read_tables
    from bbx.settings import load_settings
    from features.cutoffs import as_of_cutoff
    from models.metrics import interval, paired_bootstrap
    from simulator.world import build_world

    settings = load_settings()
    if args.trials:
        settings = settings.model_copy(update={"churn": settings.churn.model_copy(
            update={"tuning_trials": args.trials})})
    seeds = [int(seed) for seed in args.seeds.split(",")]
    backs = [int(back) for back in args.as_of_back.split(",")]
    differences, draws = [], []
    for seed in seeds:
        paths, spec = _lake(Path(args.lake_cache), args.scenario, args.customers, args.days,
                            seed, None)
        whole = read_tables(paths)
        world = build_world(spec)
        leave = np.where(world.full.cancel_day >= 0, world.full.cancel_day, 10**9)
        position = pd.Series(np.arange(len(world.user_ids)), index=np.array(world.user_ids))
        print(f"world {args.scenario} {args.customers} x {args.days} days seed {seed}; short: "
              f"usage logs and logins kept for the {args.usage_days} days before each as-of")
        print(f"{'as-of':<11}{'leavers':>8}{'whole ROC':>10}{'short ROC':>10}{'whole PR':>9}"
              f"{'short PR':>9}{'ROC diff':>9}  90% interval{'':>5}train s")
        for back in backs:
            as_of = END + dt.timedelta(days=1) - dt.timedelta(days=back)
            started = time.perf_counter()
            full_p = _scores(whole, as_of, settings)
            short = copy.copy(whole)
            _keep_last_days(short, as_of_cutoff(as_of) - pd.Timedelta(days=args.usage_days))
            short_p = _scores(short, as_of, settings).reindex(full_p.index)
            seconds = time.perf_counter() - started
            rows = position.reindex(full_p.index).to_numpy(dtype=float)
            known = ~np.isnan(rows) & short_p.notna().to_numpy()
            day = world.day_index(as_of)
            y = ((leave >= day) & (leave < day + 30))[rows[known].astype(int)].astype(int)
            scores = {"whole": full_p.to_numpy()[known], "short": short_p.to_numpy()[known]}
            roc = {k: roc_auc_score(y, s) for k, s in scores.items()}
            pr = {k: average_precision_score(y, s) for k, s in scores.items()}
            drawn = paired_bootstrap(y, scores, roc_auc_score, args.bootstrap_draws)
            diff = drawn["short"] - drawn["whole"]
            low, high = interval(diff)
            differences.append(roc["short"] - roc["whole"])
            draws.append(diff)
            print(f"{as_of.isoformat():<11}{int(y.sum()):>8}{roc['whole']:>10.3f}"
                  f"{roc['short']:>10.3f}{pr['whole']:>9.3f}{pr['short']:>9.3f}"
                  f"{differences[-1]:>+9.3f}  [{low:+.3f}, {high:+.3f}]{seconds:>9.0f}",
                  flush=True)
        low, high = interval(np.mean(draws[-len(backs):], axis=0))
        print(f"seed {seed} mean ROC diff {np.mean(differences[-len(backs):]):+.3f} "
              f"[{low:+.3f}, {high:+.3f}]", flush=True)
    low, high = interval(np.mean(draws, axis=0))
    mean = float(np.mean(differences))
    verdict = ("met" if low > -0.01 else "missed" if high < -0.01 else "within noise")
    print(f"mean ROC diff (short - whole) over {len(differences)} world-dates {mean:+.3f} "
          f"[{low:+.3f}, {high:+.3f}]; goal >= -0.010: {verdict}")
