"""Pipeline benchmark: every stage of the nightly run against the raw work, at scale.

    python -m bench pipeline [--customers=10000,100000 --days=180]
                             [--io-customers=10000 --io-days=60 --repeats=2 --reads=10000]
                             [--trials=N --memory-limit-gb=6 --lake-cache=DIR --seed=42]

Compute stages (partition, features, churn training, segmentation training, scoring,
pricing), at each of --customers with --days of history: the simulator writes the raw lake directly
(bench/_lake_writer.py: the extract's own BSON → Arrow conversion, streamed to
`lake/raw/<c>/dt=<as_of>/part-0.parquet`; reused from --lake-cache if given), and the
pipeline's own task functions run on it through `.fn`: "partition" is the flow's split of
the lake into hash buckets of customers (bbx.lake.buckets.partition_lake, as
`partition_lake_task` in flows/nightly.py), which the later stages reuse; "features" is
each bucket's churn and segmentation features (the first step of the trainings and the
scoring, shown on its own for its scaling); then tasks.train.train_churn_task,
tasks.train.train_segmentation_task, the nightly's scoring subflow
(flows.buckets.score_in_buckets) and its pricing of those scores
(tasks.pricing.price_scores, the price task without the recorded plan anchors: bands
from the list prices), each handed the partition stage's split. The raw lake
stands in for the clean one (validation is not timed). Each stage runs in its own
process, so its peak memory is its own: the kernel's high-water mark (VmHWM, reset at
the stage's start) of that process. The processes are forked from a multiprocessing
forkserver that imported the tasks' libraries once, so a stage does not pay seconds of
imports (its peak still counts the imported libraries, as a fresh process would). A
stage whose process grows past --memory-limit-gb is killed and reported as such.
Libraries the tasks import on first use and the MLflow store's creation are done before
the clock starts (a nightly process pays them once).

I/O stages at --io-customers x --io-days against a fresh in-memory embedded SecantusDB:
the extract against a raw `find_arrow_all` of the same collections (bench/extract.py's
helpers), and the publish (tasks.publish.publish_scores, twice: the first night, then a
night that replaces it) against a raw journaled `insert_many` + `renameCollection` of
the same score documents. Then the app's read path: `ml_customer_scores` as the publish
leaves it, the explain() of a point read by userId, and the latency of --reads random
point reads.

Raw baselines: the same work without the pipeline (no buckets, no intermediate Parquet
parts, no registry, tracking, plots or baselines), measured in the same process on the
same data right after each stage:
- partition: none; the raw work reads the lake whole, so the split is all overhead and
  counts with a raw time of 0;
- features: the lake read whole into pandas, then the same pure feature builders
  (features/) on every customer at once;
- churn training: the lake read whole, the same point-in-time rows (build_training_set)
  and split, then the same model fit (models.churn.fit_churn_model: the out-of-time
  cutoff check's boosters, the tuning trials, the refit with the latest cutoff; until
  2026-12-03 only the tuning trials on plain DMatrix, which left the cutoff check and the
  refit, added since, counted as overhead);
- segmentation training: the lake read whole, the same segmentation features, then one
  sklearn KMeans (same k, n_init, seed) on the median-filled, log, robust-scaled columns;
- scoring: the lake read whole, then the same scoring in memory: churn features,
  calibrated probabilities, reasons, segment assignment, demand and prices
  (assemble_scores), with the same champions (loaded untimed);
- pricing: the lake read whole, then the same pricing once over every customer
  (tasks.pricing.price_from_pieces: elasticity per segment, the learned weights, prices,
  arms, fairness, demand by hour), nothing written or tracked.
The goals: each compute stage's time per customer does not grow from the
smallest to the largest size; peak memory at the largest size (100k) under 3 GB; the
pipeline (extract + partition + both trainings + scoring + pricing + publish, at
--io-customers)
at most 1.3x the sum of its raw baselines. The I/O stages run right after the compute
stages of the size nearest --io-customers (they publish its scores), before any larger
size. (Until 2026-11-27 the raw features and scoring were only a pandas read and the raw
trainings only the fits, without the rows they are fitted on; see BENCHMARKS.md.)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

END = dt.date(2026, 11, 25)  # last simulated day; the runs are for as-of END + 1
AS_OF = END + dt.timedelta(days=1)
COMPUTE_STAGES = ("partition", "features", "train churn", "train segmentation", "score",
                  "price")
# The night's stages in the overall ratio (a first night's publish has no previous one).
PIPELINE_STAGES = ("extract", "partition", "train churn", "train segmentation", "score",
                   "price", "publish (next night)")
MEMORY_GOAL_BYTES = 3e9
OVERALL_GOAL = 1.3
MB = 1e6


# ---------------------------------------------------------------- memory + time


def reset_peak_rss() -> bool:
    """Reset this process's kernel RSS high-water mark (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """VmHWM of this process in bytes (ru_maxrss if /proc is not there)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants now (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total
    except psutil.Error:
        return 0


class RssSampler:
    """Samples the RSS of process trees every `interval` s in a thread: the peak of
    each, and (optionally) kills the first tree when it passes `limit` bytes."""

    def __init__(self, pids: list[int], interval: float = 0.1, limit: float | None = None):
        self.pids, self.interval, self.limit = pids, interval, limit
        self.peaks = [0] * len(pids)
        self.killed_at = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for i, pid in enumerate(self.pids):
                rss = tree_rss(pid)
                self.peaks[i] = max(self.peaks[i], rss)
                if i == 0 and self.limit and rss > self.limit and not self.killed_at:
                    self.killed_at = rss
                    import psutil

                    try:
                        for proc in [*psutil.Process(pid).children(recursive=True),
                                     psutil.Process(pid)]:
                            proc.kill()
                    except psutil.Error:
                        pass
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    own = os.times()
    return own.user + own.system


def measured(work) -> tuple[float, float, int, Any]:
    """(wall s, CPU s of this process, peak RSS bytes, result) of `work()`."""
    reset_peak_rss()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    result = work()
    return time.perf_counter() - wall, _cpu_seconds() - cpu, peak_rss(), result


# ---------------------------------------------------------------- figures


@dataclass
class Figure:
    stage: str
    customers: int
    wall: float = float("nan")
    cpu: float = float("nan")
    rows: int = 0
    peak: int = 0
    raw_label: str = ""
    raw_wall: float = float("nan")
    raw_cpu: float = float("nan")
    raw_peak: int = 0
    note: str = ""
    failed: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.wall / self.raw_wall if self.raw_wall > 0 else float("nan")

    @property
    def cpu_ratio(self) -> float:
        return self.cpu / self.raw_cpu if self.raw_cpu > 0 else float("nan")

    def line(self) -> str:
        if self.failed:
            return f"{self.stage:<21} {self.customers:>8,}  FAILED: {self.failed}"
        rate = self.rows / self.wall if self.wall > 0 else float("nan")
        text = (f"{self.stage:<21} {self.customers:>8,}  {self.wall:8.2f} {self.cpu:8.2f} "
                f"{self.rows:>11,} {rate:>10,.0f} {self.peak / MB:8.0f}")
        if self.note:
            text += f"  | {self.note}"
        elif self.raw_label and self.raw_wall == 0:
            text += f"  | raw: {self.raw_label}"
        elif self.raw_label:
            text += (f"  | raw {self.raw_wall:7.2f} s wall {self.raw_cpu:7.2f} s CPU "
                     f"{self.raw_peak / MB:6.0f} MB; ratio {self.ratio:5.2f} wall "
                     f"{self.cpu_ratio:5.2f} CPU")
        return text


HEADER = (f"{'stage':<21} {'customers':>8}  {'wall s':>8} {'CPU s':>8} {'rows':>11} "
          f"{'rows/s':>10} {'peak MB':>8}  | raw baseline (same run, same data)")


# ---------------------------------------------------------------- compute stages (child)


def _settings(home: str, trials: int | None):
    from bbx.settings import load_settings

    overrides: dict[str, Any] = {"home": Path(home)}
    if trials:
        overrides["churn"] = {"tuning_trials": trials}
    return load_settings(**overrides)


def _whole_lake(paths):
    """The raw way: every collection into pandas at once (no buckets, no parts)."""
    from bbx.lake.history import read_tables

    return read_tables(paths)


def _stage_partition(settings, as_of, paths):
    """The flow's split of the lake into hash buckets of customers (bbx.lake.buckets,
    `partition_lake_task` in flows/nightly.py), which every later stage reads. The raw
    work has no such step: it is all overhead (raw time 0 in the overall ratio)."""
    from bbx.lake.buckets import partition_lake

    def work():
        partitions = partition_lake(settings, as_of, paths)
        return {"buckets": partitions.buckets}

    return work, None, "none (the raw work reads the lake whole)"


def _stage_features(settings, as_of, paths):
    """Each bucket's churn and segmentation features, bucket after bucket (what the
    trainings and the scoring each do first). Raw: the same builders on the whole lake
    read at once."""
    from bbx.lake.buckets import partition_lake, read_bucket
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff
    from features.segmentation import build_segmentation_features

    cutoff = as_of_cutoff(as_of)

    def work():
        partitions = partition_lake(settings, as_of, paths)
        churn = segmentation = 0
        for bucket in range(partitions.buckets):
            tables = read_bucket(partitions, bucket)
            churn += len(build_churn_features(tables, cutoff))
            segmentation += len(build_segmentation_features(tables, cutoff))
            del tables
        return {"buckets": partitions.buckets, "churn_rows": churn,
                "segmentation_rows": segmentation}

    def raw():
        def whole():
            tables = _whole_lake(paths)
            return (len(build_churn_features(tables, cutoff))
                    + len(build_segmentation_features(tables, cutoff)))

        wall, cpu, peak, rows = measured(whole)
        return wall, cpu, peak, {"raw_feature_rows": rows}

    return work, raw, "the same feature builders on the whole lake read at once"


def _stage_train_churn(settings, as_of, paths):
    from bbx.lake.buckets import partition_lake
    from tasks.train import train_churn_task

    partitions = partition_lake(settings, as_of, paths)  # the partition stage's split

    def work():
        result = train_churn_task.fn(settings, as_of, partitions)
        return {"version": result.version, "promoted": result.promoted,
                "test_pr_auc": round(result.metrics.get("pr_auc", float("nan")), 3),
                "boosting_rounds": _boosting_rounds(result.run_id)}

    def raw():
        from features.cutoffs import as_of_cutoff, cutoff_candidates
        from features.registry import CHURN_FEATURE_NAMES
        from features.training import build_training_set, split_train_valid_test
        from models.churn import fit_churn_model
        from tasks.train import churn_cutoffs, churn_params, latest_refit_rows

        c = settings.churn
        labelled, partial = churn_cutoffs(settings, as_of)  # the pipeline's rows
        candidates = cutoff_candidates(labelled, c.test_cutoffs, list(c.cutoff_candidates))
        sizes: dict[str, int] = {}

        def whole():
            tables = _whole_lake(paths)
            data = build_training_set(tables, labelled + partial, c.horizon_days,
                                      c.definition, labels_until=as_of_cutoff(as_of))
            del tables
            splits = split_train_valid_test(data, c.validation_share, c.test_share,
                                            c.test_cutoffs, c.seed)
            del data
            sizes.update(train_rows=len(splits.train), valid_rows=len(splits.valid))
            # The same model fit as the pipeline's: the out-of-time cutoff check, the
            # tuning trials and the refit with the latest cutoff.
            latest = latest_refit_rows(settings, splits)
            _, trials, choice = fit_churn_model(
                splits.train, splits.valid, splits.calibration, candidates,
                list(CHURN_FEATURE_NAMES), churn_params(settings), c.tuning_trials, latest)
            return len(choice.scores) + len(trials) + int(latest is not None)

        wall, cpu, peak, count = measured(whole)
        return wall, cpu, peak, {"raw_fits": count, **sizes}

    return work, raw, ("whole-lake point-in-time rows (same builder) + the same model fit "
                       "(models.churn.fit_churn_model: cutoff check, trials, refit)")


def _boosting_rounds(run_id: str) -> int:
    """Rounds the tuning trials boosted (early stopping ends each one `early_stopping_rounds`
    after its best), from the run's tuning table: the model's size, which the data decides."""
    import mlflow

    table = mlflow.artifacts.load_dict(f"runs:/{run_id}/tuning_trials.json")
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    return int(sum(min(r["n_estimators"], r["best_iteration"] + 1 + r["early_stopping_rounds"])
                   for r in rows))


def _stage_train_segmentation(settings, as_of, paths):
    from bbx.lake.buckets import partition_lake
    from tasks.train import train_segmentation_task

    partitions = partition_lake(settings, as_of, paths)  # the partition stage's split

    def work():
        result = train_segmentation_task.fn(settings, as_of, partitions)
        return {"version": result.version}

    def raw():
        import numpy as np
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import RobustScaler

        from features.cutoffs import as_of_cutoff
        from features.segmentation import build_segmentation_features
        from models.segmentation import N_INIT

        seg = settings.segmentation
        columns = list(seg.clustering_weights)

        def whole():
            features = build_segmentation_features(_whole_lake(paths), as_of_cutoff(as_of))
            frame = features[columns].astype("float64")
            matrix = frame.fillna(frame.median()).fillna(0.0).to_numpy()
            for j, name in enumerate(columns):
                if name in seg.log_features:
                    matrix[:, j] = np.log1p(np.clip(matrix[:, j], 0.0, None))
            matrix = RobustScaler().fit_transform(matrix)
            KMeans(n_clusters=seg.k, n_init=N_INIT, random_state=seg.seed).fit(matrix)
            return len(matrix)

        wall, cpu, peak, customers = measured(whole)
        return wall, cpu, peak, {"customers": customers}

    return work, raw, ("whole-lake segmentation features (same builder) + one sklearn "
                       "KMeans fit")


def _stage_score(settings, as_of, paths):
    from bbx.lake.buckets import partition_lake
    from flows.buckets import score_in_buckets

    result_box: dict[str, Any] = {}
    partitions = partition_lake(settings, as_of, paths)  # the partition stage's split

    def work():
        result = score_in_buckets(settings, as_of, partitions)
        result_box["result"] = result
        return {"scored": result.customers, "scores_path": result.path,
                "bands": result.band_counts}

    def raw():
        from features.buckets import daily_network_load, demand_from_daily_load
        from features.customer import build_churn_features
        from features.cutoffs import as_of_cutoff
        from features.registry import CHURN_FEATURE_NAMES
        from features.segmentation import build_segmentation_features
        from models.reasons import churn_reasons, reasons_to_json
        from models.scoring import assemble_scores
        from tasks import registry
        from tasks.score import scoring_policy

        registry.configure(settings, "churn")
        churn_model, _ = registry.load_by_alias(registry.CHURN_MODEL)
        segment_model, _ = registry.load_by_alias(registry.SEGMENT_MODEL)
        cutoff, pricing = as_of_cutoff(as_of), settings.pricing

        def whole():
            tables = _whole_lake(paths)
            customers = build_churn_features(tables, cutoff)
            inputs = customers[list(CHURN_FEATURE_NAMES)]
            probability = churn_model.predict_proba(inputs)
            reasons_to_json(churn_reasons(inputs, churn_model.contributions(inputs),
                                          churn_model.feature_names,
                                          settings.churn.reasons_per_customer))
            segments = segment_model.assign(build_segmentation_features(tables, cutoff))
            daily = daily_network_load(tables.usagelogs, cutoff, pricing.demand_baseline_days)
            demand = demand_from_daily_load(daily, cutoff, pricing.demand_window_days,
                                            pricing.demand_baseline_days)["demand"]
            scores = assemble_scores(customers, probability, segments, tables.plans, demand,
                                     scoring_policy(settings))
            return len(scores)

        wall, cpu, peak, scored = measured(whole)
        return wall, cpu, peak, {"raw_scored": scored}

    return work, raw, ("the same scoring in memory on the whole lake (features, "
                       "probabilities, reasons, segments, demand, prices; no parts/Parquet)")


def _stage_price(settings, as_of, paths):
    """The nightly's pricing of the score stage's scores (tasks.pricing.price_scores: the
    lake bucket by bucket, elasticity per segment, the learned weights, prices, arms,
    fairness, demand by hour; the prices Parquet and the MLflow run). Raw: the lake read
    whole and the same pricing once over every customer (`price_from_pieces`), nothing
    written or tracked."""
    from bbx import lake
    from bbx.lake.buckets import partition_lake
    from tasks import registry
    from tasks.pricing import LakePieces, add_lake_pieces, price_from_pieces, price_scores

    partitions = partition_lake(settings, as_of, paths)  # the partition stage's split
    scores_file = str(lake.scores_path(settings.lake_dir, as_of))  # the score stage's

    def work():
        result = price_scores(settings, as_of, partitions, scores_file)
        return {"revenue_uplift": round(result.revenue_uplift, 4),
                "weights": {k: round(v, 3) for k, v in result.weights.items()}}

    def raw():
        import pandas as pd

        from features.buckets import first_usage

        registry.configure(settings, registry.SEGMENT_MODEL)
        segment_model, _ = registry.load_by_alias(registry.SEGMENT_MODEL)

        def whole():
            tables = _whole_lake(paths)
            scores = pd.read_parquet(scores_file)
            pieces = LakePieces()
            add_lake_pieces(pieces, tables, settings, as_of, first_usage(tables.usagelogs),
                            scores)
            night = price_from_pieces(settings, as_of, scores, pieces, tables.plans, None,
                                      segment_model)
            return round(night.fit.revenue_uplift, 4) if night.fit else None

        wall, cpu, peak, uplift = measured(whole)
        return wall, cpu, peak, {"raw_revenue_uplift": uplift}

    return work, raw, ("the same pricing in memory on the whole lake (elasticity, learned "
                       "weights, prices, fairness, demand by hour; nothing written or tracked)")


STAGE_FUNCTIONS = {
    "partition": _stage_partition,
    "features": _stage_features,
    "train churn": _stage_train_churn,
    "train segmentation": _stage_train_segmentation,
    "score": _stage_score,
    "price": _stage_price,
}


# Modules the tasks import lazily on first use (plots, the MLflow SQL store, model
# flavours): a nightly process pays them once, so no stage's figure includes them.
WARM_IMPORTS = ("matplotlib.pyplot", "mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store",
                "sklearn.cluster", "sklearn.linear_model", "sklearn.isotonic",
                "sklearn.metrics", "sklearn.preprocessing", "sklearn.impute")


def _stage_child(conn, stage: str, paths: dict[str, str], home: str, as_of: str,
                 trials: int | None) -> None:
    """Runs in its own process (forked from the forkserver): the stage, then its raw
    baseline."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        import importlib
        import logging

        import tasks.pricing  # noqa: F401  imports are not part of the stage
        import tasks.score  # noqa: F401
        import tasks.train  # noqa: F401
        from tasks import registry

        for module in WARM_IMPORTS:  # nor those the tasks import on first use
            importlib.import_module(module)
        logging.getLogger("prefect").setLevel(logging.ERROR)
        settings = _settings(home, trials)
        registry.configure(settings, "churn")  # a nightly run finds its MLflow store made
        work, raw, label = STAGE_FUNCTIONS[stage](settings, dt.date.fromisoformat(as_of), paths)
        wall, cpu, peak, extra = measured(work)
        conn.send({"wall": wall, "cpu": cpu, "peak": peak, "extra": extra,
                   "hwm_reset": reset_peak_rss()})
        if raw is None:
            conn.send({"raw_wall": 0.0, "raw_cpu": 0.0, "raw_peak": 0, "raw_label": label,
                       "raw_extra": {}})
            return
        raw_wall, raw_cpu, raw_peak, raw_extra = raw()
        conn.send({"raw_wall": raw_wall, "raw_cpu": raw_cpu, "raw_peak": raw_peak,
                   "raw_label": label, "raw_extra": raw_extra})
    except BaseException:  # reported by the parent as this stage's failure
        conn.send({"error": traceback.format_exc(limit=6)})
    finally:
        conn.close()


def _stage_context():
    """A process of its own per stage (its memory is this stage's alone), forked from a
    server that imported the tasks and their libraries once."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tasks.score", "tasks.train", "tasks.pricing", *WARM_IMPORTS])
    return ctx


def run_compute_stage(stage: str, customers: int, paths: dict[str, str], rows: int,
                      home: Path, trials: int | None, limit_bytes: float) -> Figure:
    figure = Figure(stage, customers, rows=rows)
    ctx = _stage_context()
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_stage_child,
                          args=(child, stage, paths, str(home), AS_OF.isoformat(), trials))
    process.start()
    child.close()
    messages: list[dict] = []
    with RssSampler([process.pid], limit=limit_bytes) as sampler:
        while True:
            try:
                messages.append(parent.recv())
            except EOFError:
                break
            if "wall" in messages[-1]:  # the raw baseline reads the lake whole: no limit
                sampler.limit = None
        process.join()
    merged = {k: v for m in messages for k, v in m.items()}
    killed = (f"killed: its process reached {sampler.killed_at / 1e9:.1f} GB "
              f"(--memory-limit-gb={limit_bytes / 1e9:g})")
    if "error" in merged:
        print(merged["error"], flush=True)
        problem = merged["error"].strip().splitlines()[-1]
    else:
        problem = killed if sampler.killed_at else f"process exited with {process.exitcode}"
    if "wall" not in merged:
        figure.failed = problem
        figure.peak = sampler.killed_at
    elif "raw_wall" not in merged:
        figure.note = f"raw baseline failed: {problem}"
    if "wall" in merged:
        figure.wall, figure.cpu, figure.extra = merged["wall"], merged["cpu"], merged["extra"]
        figure.peak = merged["peak"]  # the kernel's mark for the stage's own process
    if "raw_wall" in merged:
        figure.raw_wall, figure.raw_cpu = merged["raw_wall"], merged["raw_cpu"]
        figure.raw_peak, figure.raw_label = merged["raw_peak"], merged["raw_label"]
        figure.extra |= merged["raw_extra"]
    return figure


# ---------------------------------------------------------------- the lake


def _lake(customers: int, days: int, seed: int, root: Path) -> tuple[dict[str, str], bool]:
    """The raw lake for this size (reused when `root` already holds a finished one)."""
    from bbx import lake
    from bench._lake_writer import write_lake

    folder = root / f"c{customers}-d{days}-s{seed}-e{END.isoformat()}"
    done = folder / "_SUCCESS"
    if done.exists():
        paths = {c: str(lake.raw_path(folder / "lake", c, AS_OF)) for c in lake.TABLES}
        if all(Path(p).exists() for p in paths.values()):
            return paths, True
    paths, _, seconds = write_lake(folder / "lake", customers=customers, days=days, seed=seed,
                                   end=END)
    done.write_text(json.dumps({"seconds": round(seconds, 1)}))
    return paths, False


def _lake_rows(paths: dict[str, str]) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {c: pq.ParquetFile(p).metadata.num_rows for c, p in paths.items()}


def run_compute(sizes: list[int], days: int, seed: int, tmp: Path, cache: Path | None,
                trials: int | None, limit_bytes: float) -> tuple[list[Figure], dict[int, str]]:
    figures: list[Figure] = []
    scores: dict[int, str] = {}
    for customers in sizes:
        began = time.perf_counter()
        paths, reused = _lake(customers, days, seed, cache or tmp / "lakes")
        counts = _lake_rows(paths)
        rows = sum(counts.values())
        print(f"lake {customers:,} customers x {days} days: {rows:,} rows "
              f"({counts['usagelogs']:,} usage sessions, {counts['auditlogs']:,} logins), "
              + ("reused from --lake-cache" if reused else
                 f"simulated straight to Parquet in {time.perf_counter() - began:.0f} s"),
              flush=True)
        home = tmp / f"home-{customers}"
        for stage in COMPUTE_STAGES:
            figure = run_compute_stage(stage, customers, paths, rows, home, trials, limit_bytes)
            figures.append(figure)
            print(figure.line(), flush=True)
            if stage == "score" and not figure.failed:
                scores[customers] = figure.extra["scores_path"]
    return figures, scores


# ---------------------------------------------------------------- I/O stages


def _journaled_raw_publish(db, documents: list[dict], batch: int) -> None:
    """The raw work of a publish: insert the documents, rename them into place."""
    from tasks.publish import JOURNALED

    journaled = db.client.get_database(db.name, write_concern=JOURNALED)
    journaled["raw_scores_staging"].drop()
    for start in range(0, len(documents), batch):
        journaled["raw_scores_staging"].insert_many(documents[start:start + batch],
                                                    ordered=False)
    db.client.admin.command("renameCollection", f"{db.name}.raw_scores_staging",
                            to=f"{db.name}.raw_scores", dropTarget=True,
                            writeConcern=JOURNALED.document)


def run_io(customers: int, days: int, seed: int, repeats: int, reads: int, scores_file: str,
           scores_customers: int, tmp: Path) -> tuple[list[Figure], list[str]]:
    import numpy as np
    import pandas as pd
    from bson import ObjectId
    from pymongo import MongoClient

    from bbx.lake import SCORES_COLLECTION
    from bbx.mongo import start_embedded, stop_process
    from bbx.settings import load_settings
    from bench.extract import Clock, _extract_all, _raw_all
    from models.app_documents import score_documents
    from simulator import simulate
    from tasks.publish import publish_scores, uses_transaction

    figures: list[Figure] = []
    notes: list[str] = []
    settings = load_settings(home=tmp / "io",
                             mongo={"embedded_storage": ":memory:", "database": "bench"})
    server, process = start_embedded(settings)
    try:
        settings.mongo.uri = uri = server.uri
        client: MongoClient = MongoClient(uri, tz_aware=True)
        db = client["bench"]
        began = time.perf_counter()
        report = simulate(db, customers=customers, days=days, seed=seed, end=END)
        print(f"embedded SecantusDB (in memory): {customers:,} customers x {days} days, "
              f"{sum(report.documents.values()):,} documents (loaded in "
              f"{time.perf_counter() - began:.0f} s)", flush=True)
        clock = Clock(server.pid)

        # Extract vs find_arrow_all, alternating, best of `repeats` (bench/extract.py).
        runs: dict[str, list[tuple[float, float, int]]] = {"extract": [], "raw": []}
        rows = raw_rows = 0
        for _ in range(repeats):
            for kind in ("extract", "raw"):
                reset_peak_rss()
                with RssSampler([server.pid]) as sampler:
                    if kind == "extract":
                        wall, cpu, (_, results) = clock.measure(
                            lambda: _extract_all(settings, uri, AS_OF, AS_OF))
                        rows = sum(r.rows for r in results)
                    else:
                        wall, cpu, (_, raw_rows) = clock.measure(
                            lambda: _raw_all(settings, uri, AS_OF, AS_OF))
                runs[kind].append((wall, cpu, peak_rss()))
                notes.append(f"{kind} run: {wall:.2f} s wall, {cpu:.2f} s CPU; server RSS "
                             f"peak {sampler.peaks[0] / MB:.0f} MB (sampled)")
        assert rows == raw_rows, (rows, raw_rows)
        best, best_raw = min(runs["extract"]), min(runs["raw"])
        figures.append(Figure(
            "extract", customers, wall=best[0], cpu=best[1], rows=rows,
            peak=max(r[2] for r in runs["extract"]),
            raw_label="find_arrow_all, same queries/projections/schemas",
            raw_wall=best_raw[0], raw_cpu=best_raw[1], raw_peak=max(r[2] for r in runs["raw"]),
        ))
        print(figures[-1].line(), flush=True)

        # Publish (twice: the first night, then one that replaces it) vs raw.
        scores = pd.read_parquet(scores_file)
        method = "transaction" if uses_transaction(client, settings.publish.swap_method) \
            else "staging + renameCollection"
        for night in ("first night", "next night"):
            reset_peak_rss()
            wall, cpu, _ = clock.measure(
                lambda run=f"bench-{night}": publish_scores(uri, settings, AS_OF, run, scores_file))
            peak = peak_rss()
            documents = [d | {"userId": ObjectId(d["userId"]), "planId": ObjectId(d["planId"])}
                         for d in score_documents(scores, AS_OF, "bench-raw",
                                                  dt.datetime.now(dt.UTC))]
            reset_peak_rss()
            raw_wall, raw_cpu, _ = clock.measure(
                lambda docs=documents: _journaled_raw_publish(db, docs, settings.mongo.batch_size))
            figures.append(Figure(
                f"publish ({night})", scores_customers, wall=wall, cpu=cpu, rows=len(scores),
                peak=peak, raw_label="journaled insert_many + renameCollection, same documents",
                raw_wall=raw_wall, raw_cpu=raw_cpu, raw_peak=peak_rss(),
            ))
            print(figures[-1].line(), flush=True)
        notes.append(f"publish swap method on SecantusDB: {method} (publish.swap_method "
                     f"{settings.publish.swap_method}); raw = insert + rename, no indexes")

        notes.extend(read_path(db[SCORES_COLLECTION], reads, seed, np))
        client.close()
    finally:
        stop_process(process)
    return figures, notes


def read_path(collection, reads: int, seed: int, np) -> list[str]:
    """explain() of a point read by userId, and the latency of `reads` random ones."""
    lines = []
    indexes = collection.index_information()
    lines.append(f"read path: {collection.name} holds {collection.estimated_document_count():,} "
                 f"documents; indexes {sorted(indexes)}")
    ids = [d["userId"] for d in collection.find({}, {"userId": 1, "_id": 0})]
    plan = collection.find({"userId": ids[0]}).explain()
    planner = plan.get("queryPlanner", {})
    winning = planner.get("winningPlan", plan)
    text = json.dumps(winning, default=str)
    stages = _plan_stages(winning)
    uses_index = "IXSCAN" in stages or any("userId" in json.dumps(v, default=str)
                                           for k, v in _plan_items(winning) if k == "keyPattern")
    lines.append(f"  explain() winning plan: {text[:400]}")
    lines.append(f"  plan stages {stages}: point read by userId uses the index: "
                 f"{'YES (IXSCAN)' if uses_index else 'NO'}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ids), size=reads)
    times = np.empty(reads)
    found = 0
    for i, j in enumerate(picks):
        t0 = time.perf_counter()
        found += collection.find_one({"userId": ids[j]}, {"_id": 1}) is not None
        times[i] = time.perf_counter() - t0
    p50, p99 = np.percentile(times, [50, 99]) * 1000
    lines.append(f"  {reads:,} random point reads by userId (one client, sequential): "
                 f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {times.max() * 1000:.2f} ms, "
                 f"{reads / times.sum():,.0f} reads/s; found {found:,}/{reads:,}")
    return lines


def _plan_items(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _plan_items(value)
    elif isinstance(node, list):
        for value in node:
            yield from _plan_items(value)


def _plan_stages(node: Any) -> list[str]:
    return [v for k, v in _plan_items(node) if k == "stage"]


# ---------------------------------------------------------------- goals


def goals(compute: list[Figure], io: list[Figure]) -> list[str]:
    lines = []
    sizes = sorted({f.customers for f in compute})
    if len(sizes) >= 2:
        small, big = sizes[0], sizes[-1]
        for stage in COMPUTE_STAGES:
            a = next((f for f in compute if f.stage == stage and f.customers == small), None)
            b = next((f for f in compute if f.stage == stage and f.customers == big), None)
            if not a or not b or a.failed or b.failed:
                lines.append(f"linear {stage}: not measured at both sizes: MISSED")
                continue
            wall = (b.wall / big) / (a.wall / small)
            cpu = (b.cpu / big) / (a.cpu / small)
            lines.append(
                f"linear {stage}: time per customer at {big:,} / at {small:,} = {wall:.2f} wall "
                f"({cpu:.2f} CPU) (goal <= 1.00): {'OK' if wall <= 1.0 else 'MISSED'}")
            rounds = (a.extra.get("boosting_rounds"), b.extra.get("boosting_rounds"))
            if all(rounds):  # early stopping sizes the model: more data, more trees
                lines.append(
                    f"  {stage}: boosting rounds {rounds[0]:,} at {small:,}, {rounds[1]:,} at "
                    f"{big:,} (x{rounds[1] / rounds[0]:.2f} for x{big / small:.3g} the customers: "
                    "early stopping grows the model with the data)")
    else:
        lines.append("linear: one size only, not judged (give --customers=10000,100000)")
    big = max(sizes) if sizes else 0
    at_big = [f for f in compute if f.customers == big]
    if at_big:
        worst = max(at_big, key=lambda f: f.peak)
        killed = [f.stage for f in at_big if f.failed]
        ok = not killed and worst.peak < MEMORY_GOAL_BYTES
        lines.append(
            f"memory at {big:,} customers: peak {worst.peak / 1e9:.2f} GB ({worst.stage})"
            + (f", failed: {', '.join(killed)}" if killed else "")
            + f" (goal < 3 GB{'' if big >= 100_000 else ', stated for 100k'}): "
            + ("OK" if ok else "MISSED"))
    io_size = io[0].customers if io else 0
    chosen = {f.stage: f for f in io if f.stage in PIPELINE_STAGES}
    small_compute = [f for f in compute if f.customers == (io_size if io_size in sizes
                                                           else (sizes[0] if sizes else 0))]
    chosen |= {f.stage: f for f in small_compute if f.stage in PIPELINE_STAGES}
    missing = [s for s in PIPELINE_STAGES if s not in chosen or chosen[s].failed]
    if missing:
        lines.append(f"overall: not measured ({', '.join(missing)} missing): MISSED")
    else:
        total = sum(f.wall for f in chosen.values())
        raw = sum(f.raw_wall for f in chosen.values())
        total_cpu = sum(f.cpu for f in chosen.values())
        raw_cpu = sum(f.raw_cpu for f in chosen.values())
        lines.append(
            f"overall ({' + '.join(chosen)}; {chosen['score'].customers:,} customers): "
            f"{total:.1f} s vs raw {raw:.1f} s = {total / raw:.2f}x wall "
            f"({total_cpu / raw_cpu:.2f}x CPU) (goal <= {OVERALL_GOAL}): "
            f"{'OK' if total / raw <= OVERALL_GOAL else 'MISSED'}")
    return lines


# ---------------------------------------------------------------- main


def _prefect_api():
    """Tasks create artifacts: give them a temporary Prefect API unless one is set."""
    if os.environ.get("PREFECT_API_URL"):
        return contextlib.nullcontext()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    @contextlib.contextmanager
    def harness():
        import prefect.settings
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=180):
            os.environ["PREFECT_API_URL"] = prefect.settings.PREFECT_API_URL.value()
            try:
                yield
            finally:
                os.environ.pop("PREFECT_API_URL", None)

    return harness()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench pipeline")
    parser.add_argument("--customers", default="10000,100000",
                        help="compute-stage sizes, comma-separated")
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--io-customers", type=int, default=10_000)
    parser.add_argument("--io-days", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2, help="extract runs (best of)")
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=None,
                        help="churn tuning budget (default: churn.tuning_trials)")
    parser.add_argument("--memory-limit-gb", type=float, default=6.0,
                        help="kill a compute stage whose process grows past this")
    parser.add_argument("--lake-cache", type=Path, default=None,
                        help="keep/reuse the simulated lakes here (keyed by size and seed)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    sizes = sorted(int(s) for s in args.customers.split(","))

    from bbx.settings import load_settings

    trials = args.trials or load_settings().churn.tuning_trials
    load = os.getloadavg()
    print(f"as-of {AS_OF}; churn tuning trials {trials}; {os.cpu_count()} CPUs; load average "
          f"at start {load[0]:.1f} (other work on the machine shows here)", flush=True)
    print("peak = peak RSS of the stage's own process (kernel VmHWM reset at the stage's "
          "start, incl. imported libraries; compute stages run one per process, forked "
          "from a forkserver with the libraries imported); "
          "CPU = that process's user + system seconds (I/O stages: + the server's); "
          "rows = lake rows read (compute), documents read (extract) or published", flush=True)
    with tempfile.TemporaryDirectory(prefix="bbx-bench-pipeline-") as tmp_name, _prefect_api():
        tmp = Path(tmp_name)
        print(HEADER, flush=True)
        compute: list[Figure] = []
        io: list[Figure] = []
        notes: list[str] = []
        # The I/O stages publish the scores of the size nearest --io-customers, right after
        # that size is scored (so the long largest size comes last).
        publish_size = min(sizes, key=lambda n: abs(n - args.io_customers))
        for customers in sizes:
            figures, scores = run_compute([customers], args.days, args.seed, tmp,
                                          args.lake_cache, trials, args.memory_limit_gb * 1e9)
            compute += figures
            if customers != publish_size:
                continue
            if customers in scores:
                io, notes = run_io(args.io_customers, args.io_days, args.seed, args.repeats,
                                   args.reads, scores[customers], customers, tmp)
            else:
                notes.append(f"I/O stages skipped: {customers:,} customers were not scored, "
                             "nothing to publish")
    print("\n== per stage")
    print(HEADER)
    for figure in [*compute, *io]:
        print(figure.line())
    print("raw baselines: " + "; ".join(sorted({f"{f.stage.split(' (')[0]} = {f.raw_label}"
                                                for f in [*compute, *io] if f.raw_label})))
    for line in notes:
        print(line)
    print("\n== goals")
    for line in goals(compute, io):
        print(line)
    print(f"load average at end {os.getloadavg()[0]:.1f}")
