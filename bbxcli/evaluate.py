"""`bbx evaluate`: the pipeline's scores against the simulator's ground truth.

For each as-of date, the scores the nightly run wrote to the lake
(`<home>/lake/scores/dt=<as-of>/part-0.parquet`, kept night after night so several
dates can be pooled) are joined on user_id with the truth for that date: whether
the customer actually churned within the next 30 days in the simulation (which ran
on past the written history, so "today"'s scores are judged on a future the
pipeline never saw), the true churn probability given the latent state, and the
latent segment. The truth is read through `simulator.truth` only; pipeline code
never reads it.

Churn metrics, for the model's churn_probability and for the true probability on
the same rows (the Bayes-optimal reference, i.e. the ceiling):
  roc_auc, pr_auc (average precision), brier;
  precision, recall, f1 of "p >= the pipeline's decision_threshold" (each row uses
  its own night's threshold; the reference is cut at the same threshold);
  ece: expected calibration error over 10 equal-width bins of p on [0, 1]
  (the last bin includes 1): sum over bins of (rows in bin / rows) x
  |observed churn rate in bin - mean p in bin|.
The observable reference (simulator/observable.py) on the same rows and threshold:
the probability of cancelling within 30 days given what the app's documents show up to
the as-of date (a filter over the simulator's own model of daily sessions, logins,
feedback and calls about leaving, given each customer's latent rates, with the coming
weeks' incidents, failed charges and tickets integrated out; in contract-driven, the
hazard read off the documents with the coming weeks integrated out). Unlike the oracle it
is reachable: the goal a model is held to. It needs the simulation's spec
(`<home>/simulation/spec.json`, written by `bbx simulate`) to rebuild the world, and reads
the last weeks of usagelogs, logins, supporttickets and feedbacks.
Segments: adjusted Rand index of the pipeline's segment_id against the latent
segment. Undefined figures (e.g. AUC with no churner) are None (null in JSON).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bbx import lake
from bbx.settings import Settings
from models.metrics import METRIC_KEYS, churn_metrics

TRUTH_HORIZON_DAYS = 30  # the truth's probabilities and outcomes are for 30 days
SCORE_COLUMNS = ["user_id", "churn_probability", "decision_threshold", "segment_id"]


class ScoresMissingError(LookupError):
    """No scores in the lake for an as-of date that was asked for."""


def read_scores(lake_dir: Path, as_of_dates: Sequence[dt.date]) -> pd.DataFrame:
    """The nightly scores for each date, pooled, with an as_of column."""
    missing = [d for d in as_of_dates if not lake.scores_path(lake_dir, d).exists()]
    if missing:
        have = scored_dates(lake_dir)
        raise ScoresMissingError(
            f"no scores in the lake for {', '.join(map(str, missing))} (looked in "
            f"{lake_dir / 'scores'}); run `bbx run nightly --as-of DATE` first. "
            f"Scored dates: {', '.join(map(str, have)) or 'none'}"
        )
    frames = []
    for as_of in as_of_dates:
        scores = pd.read_parquet(lake.scores_path(lake_dir, as_of), columns=SCORE_COLUMNS)
        frames.append(scores.assign(as_of=as_of))
    return pd.concat(frames, ignore_index=True)


def scored_dates(lake_dir: Path) -> list[dt.date]:
    """Dates with a scores partition in the lake."""
    dates = []
    for folder in sorted((lake_dir / "scores").glob("dt=*")):
        try:
            day = dt.date.fromisoformat(folder.name.removeprefix("dt="))
        except ValueError:
            continue
        if (folder / "part-0.parquet").exists():
            dates.append(day)
    return dates


def expand_as_of(values: Sequence[str], lake_dir: Path) -> list[dt.date]:
    """'YYYY-MM-DD' or a range 'YYYY-MM-DD..YYYY-MM-DD' (every scored date inside it)."""
    dates: list[dt.date] = []
    for value in values:
        if ".." in value:
            first, last = (dt.date.fromisoformat(v) for v in value.split("..", 1))
            inside = [d for d in scored_dates(lake_dir) if first <= d <= last]
            if not inside:
                raise ScoresMissingError(f"no scored dates in the lake between {first} and {last}")
            dates.extend(inside)
        else:
            dates.append(dt.date.fromisoformat(value))
    return sorted(set(dates))


def compare(scores: pd.DataFrame, truth: pd.DataFrame, definition: str,
            observable: pd.DataFrame | None = None) -> dict:
    """The figures, from scores (user_id, as_of, churn_probability, decision_threshold,
    segment_id) and truth (user_id, as_of, latent_segment, p_cancel_30d, p_leave_30d,
    cancelled_30d, left_30d), and the observable reference (as_of, user_id,
    p_observable_30d) when given. Only customers in both scores and truth are compared."""
    from sklearn.metrics import adjusted_rand_score

    true_p, outcome = (
        ("p_cancel_30d", "cancelled_30d")
        if definition == "cancelled"
        else ("p_leave_30d", "left_30d")
    )
    rows = scores.merge(truth, on=["as_of", "user_id"], how="inner")
    if rows.empty:
        raise LookupError(
            "no scored customer is in the truth: were these scores computed on this simulation?"
        )
    y = rows[outcome].to_numpy(dtype=int)
    threshold = rows["decision_threshold"].to_numpy(dtype=float)
    churn = {
        "model": churn_metrics(y, rows["churn_probability"].to_numpy(float), threshold),
        "bayes": churn_metrics(y, rows[true_p].to_numpy(float), threshold),
        "n": int(len(rows)),
        "positives": int(y.sum()),
    }
    if observable is not None:
        reference = rows[["as_of", "user_id"]].merge(observable, on=["as_of", "user_id"],
                                                     how="left")["p_observable_30d"]
        if reference.isna().any():
            raise LookupError(f"{int(reference.isna().sum())} compared customers have no "
                              "observable reference: is the spec of this simulation?")
        churn["observable"] = churn_metrics(y, reference.to_numpy(float), threshold)
    return {
        "churn": churn,
        "segments": {"ari": float(adjusted_rand_score(rows["latent_segment"], rows["segment_id"]))},
    }


def evaluate(settings: Settings, db, as_of_dates: Sequence[dt.date]) -> dict:
    """Read the scores for `as_of_dates` from the lake and the truth from `db`; compare."""
    from simulator.truth import read_truth

    if not as_of_dates:
        raise ValueError("give at least one as-of date")
    if settings.churn.horizon_days != TRUTH_HORIZON_DAYS:
        raise ValueError(
            f"the truth is for {TRUTH_HORIZON_DAYS}-day churn; "
            f"churn.horizon_days is {settings.churn.horizon_days}"
        )
    scores = read_scores(settings.lake_dir, as_of_dates)
    truth = read_truth(db, as_of_dates)
    observable = observable_reference(db, simulation_spec(settings), as_of_dates)
    return compare(scores, truth, settings.churn.definition, observable)


def simulation_spec(settings: Settings):
    """The spec `bbx simulate` saved (what rebuilds the simulated world)."""
    from simulator.truth import TruthUnavailableError
    from simulator.world import SimulationSpec

    path = settings.home / "simulation" / "spec.json"
    if not path.exists():
        raise TruthUnavailableError(
            f"no simulation spec at {path}: the observable reference rebuilds the world "
            "from it; run `bbx simulate` (it writes the spec)"
        )
    return SimulationSpec.load(path)


def observable_reference(db, spec, as_of_dates: Sequence[dt.date]) -> pd.DataFrame:
    """as_of, user_id, p_observable_30d for every customer live at each date, from the
    documents of the days before it (usagelogs, login auditlogs, supporttickets, feedbacks)
    and the rebuilt world."""
    from simulator.observable import RecentDocuments, lookback_days, observable_probability
    from simulator.truth import TruthUnavailableError
    from simulator.world import build_world

    world = build_world(spec)
    ids = world.user_ids
    position = {user: i for i, user in enumerate(ids)}

    def who(docs: list[dict], field: str) -> np.ndarray:
        return np.array([position.get(str(d.get(field)), -1) for d in docs], dtype=int)

    def when(docs: list[dict], field: str) -> np.ndarray:
        return np.array([_epoch(d[field]) for d in docs], dtype=np.int64)

    frames = []
    for as_of in as_of_dates:
        day = world.day_index(as_of)
        documents = RecentDocuments(world, day)
        end = dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=dt.UTC)
        window = {"$gte": end - dt.timedelta(days=lookback_days(spec.scenario)), "$lt": end}
        sessions = list(db["usagelogs"].find(
            {"timestamp": window},
            {"_id": 0, "userId": 1, "timestamp": 1, "download": 1, "sessionDuration": 1}))
        logins = list(db["auditlogs"].find(
            {"action": "login", "timestamp": window}, {"_id": 0, "userId": 1, "timestamp": 1}))
        tickets = list(db["supporttickets"].find(
            {"createdAt": window}, {"_id": 0, "customer": 1, "createdAt": 1, "category": 1}))
        forms = list(db["feedbacks"].find(
            {"createdAt": window}, {"_id": 0, "user": 1, "createdAt": 1, "rating": 1}))
        documents.add_sessions(
            who(sessions, "userId"), when(sessions, "timestamp"),
            np.array([float(d.get("download") or 0.0) for d in sessions]),
            np.array([float(d.get("sessionDuration") or 0.0) for d in sessions]),
        )
        documents.add_logins(who(logins, "userId"), when(logins, "timestamp"))
        documents.add_tickets(who(tickets, "customer"), when(tickets, "createdAt"),
                              np.array([str(d.get("category")) for d in tickets]))
        documents.add_feedback(
            who(forms, "user"), when(forms, "createdAt"),
            np.array([float((d.get("rating") or {}).get("overall") or np.nan) for d in forms]))
        try:
            p = observable_probability(world, day, documents)
        except ValueError as error:
            raise TruthUnavailableError(f"no observable reference for {as_of}: {error}") from error
        live = ~np.isnan(p)
        if not live.any():
            raise TruthUnavailableError(f"no customer of the simulation is live at {as_of}")
        frames.append(pd.DataFrame({"as_of": as_of, "user_id": np.asarray(ids)[live],
                                    "p_observable_30d": p[live]}))
    return pd.concat(frames, ignore_index=True)


def _epoch(when: dt.datetime) -> int:
    aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return int(aware.timestamp())


def format_table(figures: dict, as_of_dates: Sequence[dt.date]) -> str:
    churn = figures["churn"]
    dates = ", ".join(map(str, as_of_dates))
    lines = [
        f"as-of {dates}: {churn['n']:,} scored customers, "
        f"{churn['positives']:,} churned within {TRUTH_HORIZON_DAYS} days",
        f"{'churn':<10} {'model':>8} {'observ.':>8} {'bayes':>8}",
    ]
    for key in METRIC_KEYS:
        cells = [churn.get(who, {}).get(key) for who in ("model", "observable", "bayes")]
        lines.append(
            f"{key:<10} " + " ".join(f"{'n/a' if v is None else f'{v:.3f}':>8}" for v in cells)
        )
    lines.append(f"segments   ARI {figures['segments']['ari']:.3f} (vs the latent segments)")
    return "\n".join(lines)
