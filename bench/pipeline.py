"""Pipeline benchmark: every stage of the nightly run against the raw work, at scale.

    python -m bench pipeline [--customers=10000,100000 --days=180]
                             [--io-customers=10000 --io-days=60 --repeats=2 --reads=10000]
                             [--trials=N --memory-limit-gb=6 --lake-cache=DIR --seed=42]

Compute stages (features, churn training, segmentation training, scoring), at each of
--customers with --days of history: the simulator writes the raw lake directly
(bench/_lake_writer.py: the extract's own BSON → Arrow conversion, streamed to
`lake/raw/<c>/dt=<as_of>/part-0.parquet`; reused from --lake-cache if given), and the
pipeline's own task functions run on it through `.fn` (tasks.train.train_churn_task,
tasks.train.train_segmentation_task, tasks.score.score_customers_task; "features" is the
flow's split of the lake into hash buckets of customers (tasks.partition.partition_lake,
which the later tasks reuse, as in flows/nightly.py) and each bucket's churn and
segmentation features from the pure features/ builders). The raw lake
stands in for the clean one (validation is not timed). Each stage runs in its own
process, so its peak memory is its own: the kernel's high-water mark (VmHWM, reset at
the stage's start) of that process, plus any children it starts (sampled); a stage whose
process grows past --memory-limit-gb is killed and reported as such.

I/O stages at --io-customers x --io-days against a fresh in-memory embedded SecantusDB:
the extract against a raw `find_arrow_all` of the same collections (bench/extract.py's
helpers), and the publish (tasks.publish.publish_scores, twice: the first night, then a
night that replaces it) against a raw journaled `insert_many` + `renameCollection` of
the same score documents. Then the app's read path: `ml_customer_scores` as the publish
leaves it, the explain() of a point read by userId, and the latency of --reads random
point reads.

Raw baselines ("the same work without the pipeline"), measured in the same process on
the same data right after each stage:
- features: pandas read of the same Parquet files, a million rows at a time (pyarrow
  record batches → DataFrame; the feature arithmetic itself has no raw equivalent);
- churn training: xgboost.train on the same train/validation matrices with the same
  parameters and early stopping, once per tuning trial the pipeline ran (so the same
  boosting work; the matrices are built untimed by the pipeline's feature code);
- segmentation training: one sklearn KMeans (same k, n_init, seed) on the same customers'
  clustering columns (median-filled, log, robust-scaled untimed);
- scoring (features + scoring): pandas read of the same Parquet + Booster.predict of the
  champion on the same feature matrix the task scored.
The goals (issue #8): each compute stage's time per customer does not grow from the
smallest to the largest size; peak memory at the largest size (100k) under 3 GB; the
pipeline (extract + both trainings + scoring + publish, at --io-customers) at most 1.3x
the sum of its raw baselines. The I/O stages run right after the compute stages of the
size nearest --io-customers (they publish its scores), before any larger size.
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
COMPUTE_STAGES = ("features", "train churn", "train segmentation", "score")
PIPELINE_STAGES = ("extract", "train churn", "train segmentation", "score", "publish")
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


RAW_READ_ROWS = 1_000_000  # the raw read's record batch: memory stays bounded at 100k


def _read_pandas(paths: dict[str, str]) -> int:
    """The same Parquet files into pandas, a million rows at a time (a whole-table
    pd.read_parquet of 100k customers' sessions would hold them all at once)."""
    import pyarrow.parquet as pq

    rows = 0
    for path in paths.values():
        for batch in pq.ParquetFile(path).iter_batches(batch_size=RAW_READ_ROWS):
            rows += len(batch.to_pandas())
    return rows


def _stage_features(settings, as_of, paths):
    """What the flow does before training: split the lake into hash buckets of customers
    (tasks.partition, reused by the tasks after it, as in flows/nightly.py), then each
    bucket's churn and segmentation features. Without buckets: the whole lake at once."""
    from features.customer import build_churn_features
    from features.cutoffs import as_of_cutoff
    from features.segmentation import build_segmentation_features
    from tasks.lake_io import read_tables

    try:
        from tasks.partition import partition_lake, read_bucket
    except ImportError:  # before the pipeline worked in buckets
        partition_lake = read_bucket = None

    def work():
        cutoff = as_of_cutoff(as_of)
        if partition_lake is None:
            tables = read_tables(paths)
            return {"buckets": 1, "churn_rows": len(build_churn_features(tables, cutoff)),
                    "segmentation_rows": len(build_segmentation_features(tables, cutoff))}
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
        wall, cpu, peak, rows = measured(lambda: _read_pandas(paths))
        return wall, cpu, peak, {"rows_read": rows}

    return work, raw, "pandas read of the same files (1M-row batches)"


def _stage_train_churn(settings, as_of, paths):
    from tasks.train import train_churn_task

    def work():
        result = train_churn_task.fn(settings, as_of, paths)
        return {"version": result.version, "promoted": result.promoted,
                "test_pr_auc": round(result.metrics.get("pr_auc", float("nan")), 3)}

    def raw():
        import numpy as np
        import xgboost as xgb

        from features.cutoffs import training_cutoffs
        from features.registry import CHURN_FEATURE_NAMES
        from features.training import split_train_valid_test
        from models.churn import N_THREADS, candidate_params
        from tasks.partition import partition_lake
        from tasks.train import churn_params, churn_training_set

        c = settings.churn
        cutoffs = training_cutoffs(as_of, c.horizon_days, c.training_cutoffs,
                                   c.cutoff_spacing_days)
        # The task's own rows, bucket by bucket (untimed here).
        data = churn_training_set(partition_lake(settings, as_of, paths), cutoffs,
                                  c.horizon_days, c.definition)
        splits = split_train_valid_test(data, c.validation_share, c.test_share,
                                        c.test_cutoffs, c.seed)
        names = list(CHURN_FEATURE_NAMES)
        train = splits.train[names].astype("float64").to_numpy(np.float32)
        valid = splits.valid[names].astype("float64").to_numpy(np.float32)
        y_train = splits.train["label"].to_numpy(float)
        y_valid = splits.valid["label"].to_numpy(float)
        candidates = candidate_params(churn_params(settings), max(1, c.tuning_trials))
        del data, splits

        def fits():
            dtrain = xgb.DMatrix(train, label=y_train, feature_names=names, nthread=N_THREADS)
            dvalid = xgb.DMatrix(valid, label=y_valid, feature_names=names, nthread=N_THREADS)
            pos = y_train.sum()
            for p in candidates:
                xgb.train({"objective": "binary:logistic", "eval_metric": "aucpr",
                           "max_depth": p.max_depth, "eta": p.learning_rate,
                           "subsample": p.subsample, "colsample_bytree": p.colsample_bytree,
                           "min_child_weight": p.min_child_weight,
                           "scale_pos_weight": float(np.sqrt((len(y_train) - pos) / pos)),
                           "seed": p.seed, "nthread": N_THREADS, "tree_method": "hist"},
                          dtrain, num_boost_round=p.n_estimators, evals=[(dvalid, "valid")],
                          early_stopping_rounds=p.early_stopping_rounds, verbose_eval=False)
            return len(candidates)

        wall, cpu, peak, count = measured(fits)
        return wall, cpu, peak, {"raw_fits": count, "train_rows": len(train),
                                 "valid_rows": len(valid)}

    return work, raw, "xgboost.train, same matrices/params/early stopping, x trials"


def _stage_train_segmentation(settings, as_of, paths):
    from tasks.train import train_segmentation_task

    def work():
        result = train_segmentation_task.fn(settings, as_of, paths)
        return {"version": result.version}

    def raw():
        import numpy as np
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import RobustScaler

        from features.cutoffs import as_of_cutoff
        from features.segmentation import build_segmentation_features
        from models.segmentation import N_INIT
        from tasks.lake_io import read_tables

        seg = settings.segmentation
        try:  # the task's own customers, bucket by bucket (untimed here)
            from tasks.partition import partition_lake
            from tasks.train import segmentation_training_features

            features = segmentation_training_features(partition_lake(settings, as_of, paths),
                                                      as_of_cutoff(as_of))
        except ImportError:  # before the pipeline worked in buckets
            features = build_segmentation_features(read_tables(paths), as_of_cutoff(as_of))
        columns = list(seg.clustering_weights)
        frame = features[columns].astype("float64")
        matrix = frame.fillna(frame.median()).fillna(0.0).to_numpy()
        for j, name in enumerate(columns):
            if name in seg.log_features:
                matrix[:, j] = np.log1p(np.clip(matrix[:, j], 0.0, None))
        matrix = RobustScaler().fit_transform(matrix)
        wall, cpu, peak, _ = measured(
            lambda: KMeans(n_clusters=seg.k, n_init=N_INIT, random_state=seg.seed).fit(matrix))
        return wall, cpu, peak, {"customers": len(matrix)}

    return work, raw, "one sklearn KMeans fit on the same customers' columns"


def _stage_score(settings, as_of, paths):
    from tasks.score import score_customers_task

    result_box: dict[str, Any] = {}

    def work():
        result = score_customers_task.fn(settings, as_of, paths)
        result_box["result"] = result
        return {"scored": result.customers, "scores_path": result.path,
                "bands": result.band_counts}

    def raw():
        import pandas as pd
        import xgboost as xgb

        from models.churn import N_THREADS
        from tasks import registry

        registry.configure(settings, "churn")
        model, _ = registry.load_by_alias(registry.CHURN_MODEL)
        names = list(model.feature_names)
        features = pd.read_parquet(result_box["result"].features_path, columns=names)
        matrix = features.astype("float64").to_numpy(dtype="float32")

        def work_raw():
            rows = _read_pandas(paths)
            model.booster.predict(xgb.DMatrix(matrix, feature_names=names, nthread=N_THREADS),
                                  iteration_range=(0, model.best_iteration + 1))
            return rows

        wall, cpu, peak, _ = measured(work_raw)
        return wall, cpu, peak, {"predicted": len(matrix)}

    return work, raw, "pandas read of the same files + Booster.predict, same matrix"


STAGE_FUNCTIONS = {
    "features": _stage_features,
    "train churn": _stage_train_churn,
    "train segmentation": _stage_train_segmentation,
    "score": _stage_score,
}


def _stage_child(conn, stage: str, paths: dict[str, str], home: str, as_of: str,
                 trials: int | None) -> None:
    """Runs in its own (spawned) process: the stage, then its raw baseline."""
    warnings.simplefilter("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    try:
        import logging

        import tasks.score  # noqa: F401  imports are not part of the stage
        import tasks.train  # noqa: F401

        logging.getLogger("prefect").setLevel(logging.ERROR)
        settings = _settings(home, trials)
        work, raw, label = STAGE_FUNCTIONS[stage](settings, dt.date.fromisoformat(as_of), paths)
        wall, cpu, peak, extra = measured(work)
        conn.send({"wall": wall, "cpu": cpu, "peak": peak, "extra": extra,
                   "hwm_reset": reset_peak_rss()})
        raw_wall, raw_cpu, raw_peak, raw_extra = raw()
        conn.send({"raw_wall": raw_wall, "raw_cpu": raw_cpu, "raw_peak": raw_peak,
                   "raw_label": label, "raw_extra": raw_extra})
    except BaseException:  # reported by the parent as this stage's failure
        conn.send({"error": traceback.format_exc(limit=6)})
    finally:
        conn.close()


def run_compute_stage(stage: str, customers: int, paths: dict[str, str], rows: int,
                      home: Path, trials: int | None, limit_bytes: float) -> Figure:
    figure = Figure(stage, customers, rows=rows)
    ctx = mp.get_context("spawn")  # a fresh process: its memory is this stage's alone
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
    from pymongo import MongoClient

    from bbx.lake import SCORES_COLLECTION
    from bbx.mongo import start_embedded, stop_process
    from bbx.settings import load_settings
    from bench.extract import Clock, _extract_all, _raw_all
    from simulator import simulate
    from tasks.publish import publish_scores, score_documents, uses_transaction

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
            documents = score_documents(scores, AS_OF, "bench-raw", dt.datetime.now(dt.UTC))
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
    chosen = {f.stage: f for f in io if f.stage in ("extract", "publish (next night)")}
    small_compute = [f for f in compute if f.customers == (io_size if io_size in sizes
                                                           else (sizes[0] if sizes else 0))]
    chosen |= {f.stage: f for f in small_compute if f.stage in PIPELINE_STAGES}
    missing = [s for s in ("extract", "train churn", "train segmentation", "score",
                           "publish (next night)") if s not in chosen or chosen[s].failed]
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
          "start, incl. imported libraries; compute stages run one per spawned process); "
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
