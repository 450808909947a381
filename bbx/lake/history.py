"""The validated history as of a night: Delta table versions, and reading them back.

Each collection's validated rows are one Delta Lake table, `clean/<c>/`, partitioned by
the night (`dt`, ISO date text). The gate commits a night's validated rows with an
overwrite of exactly that night's partition (a rerun replaces its night and nothing
else; a backfill never touches newer nights) and records which table version holds
them.

A table version file (`clean/<c>/_versions/dt=<as_of>.json`, also kept in the night's
manifest entry as `history`) says what the collection's full validated history at the
as-of date is: a list of segments read in order,

    {"table": "clean/usagelogs", "version": 7, "nights": [...], "fingerprints": [...]}
        the nights' partitions of that table as of that version (time travel)
    {"parts": [...], "fingerprints": [...]}
        plain Parquet parts: the history of a lake written before its clean tables
        were Delta tables, read in place until the collection's next full read

This night's segment is the night alone for snapshots and full extracts; for increments,
the previous validated night's nights plus this one, all at the version just written
(so they read what they held when this night was validated, whatever is rewritten
later). A dry run's history starts with the live lake's table at its recorded version
and ends with its own lake's table: it never writes the live one.

Rows are read file by file in history order (no `dt` column appears; the Delta files
are cast back to the lake's types, its timestamps being microseconds) and
de-duplicated on the table's key keeping the newest night's copy (incremental extracts
overlap). Each night carries the sha256 of its validated Parquet rows, so a history's
content fingerprint changes whenever any night's content does, and not when a rerun
writes the same rows again (input-keyed caches of later steps use it).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import deltalake
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bbx import lake
from bbx.lake.files import COMPRESSION, file_sha256, read_json, remove_stale, write_json
from bbx.lake.manifests import FULL, SNAPSHOT, manifest_entry, read_manifest
from features.customer import LakeTables

NIGHT_COLUMN = "dt"  # the clean tables' partition column: the as-of date, ISO text
# One data file per night and write: rows keep their order, as the de-duplication needs.
ONE_FILE = 1 << 62
# Every recorded version stays readable (a backfill time-travels to it): the table's log
# is never cleaned up, and nothing here vacuums its files.
TABLE_CONFIGURATION = {"delta.enableExpiredLogCleanup": "false"}


# ---------------------------------------------------------------- the clean tables


def _night_files(table: str, version: int) -> dict[str, tuple[str, ...]]:
    """night → its data files (absolute) in `table` as of `version`. A table version never
    changes, so this is remembered per process (keyed by its commit file too: a table
    removed and written afresh starts its versions again)."""
    commit = Path(table) / "_delta_log" / f"{version:020d}.json"
    stamp = commit.stat().st_mtime_ns if commit.exists() else 0
    return _night_files_at(table, version, stamp)


@functools.lru_cache(maxsize=256)
def _night_files_at(table: str, version: int, _stamp: int) -> dict[str, tuple[str, ...]]:
    actions = pa.table(deltalake.DeltaTable(table, version=version)
                       .get_add_actions(flatten=True))
    files: dict[str, list[str]] = {}
    paths = actions.column("path").to_pylist()
    nights = actions.column(f"partition.{NIGHT_COLUMN}").to_pylist()
    for path, night in zip(paths, nights, strict=True):
        files.setdefault(night, []).append(str(Path(table) / path))
    return {night: tuple(sorted(names)) for night, names in files.items()}


def latest_version(table: Path) -> int | None:
    if not deltalake.DeltaTable.is_deltatable(str(table)):
        return None
    return deltalake.DeltaTable(str(table)).version()


class NightOrderError(RuntimeError):
    """The clean table did not keep a night's rows in their validated order."""


def commit_night(table: Path, as_of: dt.date, rows_file: Path, key: str) -> int:
    """Replace the night's partition of the clean table with the rows of `rows_file`
    (creating the table on first use; new columns are added); returns the table version
    written.

    The rows go in as one record batch: delta-rs writes a single batch in order (several
    batches are written in parallel, out of order), and the order is checked on the
    file written, by `key`, since newest-copy reads and the features depend on it."""
    night = as_of.isoformat()
    rows = pq.read_table(rows_file).combine_chunks()
    data = rows.append_column(NIGHT_COLUMN, pa.array([night] * rows.num_rows, pa.string()))
    deltalake.write_deltalake(
        str(table), data, partition_by=[NIGHT_COLUMN], mode="overwrite",
        predicate=f"{NIGHT_COLUMN} = '{night}'", schema_mode="merge",
        target_file_size=ONE_FILE, configuration=TABLE_CONFIGURATION,
        writer_properties=deltalake.WriterProperties(compression=COMPRESSION.upper()),
        post_commithook_properties=deltalake.PostCommitHookProperties(
            cleanup_expired_logs=False),
    )
    version = latest_version(table)
    assert version is not None
    files = _night_files(str(table), version).get(night, ())
    written = [pq.read_table(f, columns=[key]).column(key) for f in files]
    keys = pa.chunked_array([c for w in written for c in w.chunks], rows.schema.field(key).type)
    if not keys.equals(rows.column(key)):
        raise NightOrderError(
            f"{table}: the rows written for {night} are not in their validated order "
            f"({len(files)} file(s)); the night is not recorded as validated")
    return version


# ---------------------------------------------------------------- writing a version


def _segments(lake_dir: Path, entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A manifest entry's history as segments (an entry from before the clean tables
    were Delta tables lists plain parts, with fingerprints keyed by part)."""
    history = (entry or {}).get("history") or []
    if history and all(isinstance(p, str) for p in history):
        known = entry.get("fingerprints") or {}
        parts = [lake.to_record(lake_dir, p) for p in history]
        return [{"parts": parts,
                 "fingerprints": [known.get(p) or known.get(r) for p, r in zip(history, parts,
                                                                                strict=True)]}]
    return [dict(s) for s in history]


def _same_table(lake_dir: Path, recorded: str, table: Path) -> bool:
    return lake.from_record(lake_dir, recorded).resolve() == table.resolve()


def _fingerprinted(lake_dir: Path, segment: dict[str, Any]) -> dict[str, Any]:
    """Legacy parts written before their fingerprints were kept get them now."""
    if "parts" in segment and not all(segment.get("fingerprints") or [None]):
        segment["fingerprints"] = [
            file_sha256(lake.from_record(lake_dir, p)) for p in segment["parts"]]
        if None in segment["fingerprints"]:
            raise FileNotFoundError(f"lake partition missing in {segment['parts']}")
    return segment


def _reusable_version(
    lake_dir: Path, table: Path, recorded: Path, segment: dict[str, Any]
) -> int | None:
    """The version an earlier run of this night recorded, when the table still holds
    exactly those nights' files at its latest version and the rows are the same: an
    identical rerun then writes nothing and records the same version."""
    if not recorded.exists():
        return None
    earlier = next((s for s in read_json(recorded).get("history", [])
                    if "table" in s and _same_table(lake_dir, s["table"], table)), None)
    if earlier is None or earlier.get("nights") != segment["nights"] \
            or earlier.get("fingerprints") != segment["fingerprints"]:
        return None
    latest = latest_version(table)
    if latest is None:
        return None
    try:
        before, now = _night_files(str(table), earlier["version"]), _night_files(str(table), latest)
    except Exception:  # noqa: BLE001 - a version no longer readable: write again
        return None
    if any(before.get(n) != now.get(n) for n in segment["nights"]):
        return None
    return int(earlier["version"])


def write_table_version(
    lake_dir: Path, collection: str, as_of: dt.date, entry: dict[str, Any] | None,
    previous: dict[str, Any] | None, clean_file: str | Path,
) -> tuple[Path, str | None]:
    """Commit the night's validated rows (`clean_file`, written by the validation) into
    the collection's clean table and record its validated history at `as_of`; the
    manifest `entry` (when there is one) keeps the history for the next night.

    Returns the version file and the night's data file in the table (None when the
    night has no rows)."""
    table = lake.clean_table_path(lake_dir, collection)
    night = as_of.isoformat()
    fingerprint = file_sha256(clean_file)
    if fingerprint is None:
        raise FileNotFoundError(f"{collection}: validated rows missing: {clean_file}")
    restart = entry is None or entry["mode"] in (SNAPSHOT, FULL) or previous is None
    earlier = [] if restart else [
        _fingerprinted(lake_dir, s)
        for s in _segments(lake_dir, manifest_entry(previous, collection))]
    ours = {"table": lake.to_record(lake_dir, table), "version": None, "nights": [],
            "fingerprints": []}
    segments = []
    for segment in earlier:
        if "table" in segment and _same_table(lake_dir, segment["table"], table):
            ours["nights"] += segment["nights"]
            ours["fingerprints"] += segment["fingerprints"]
        else:
            segments.append(segment)
    ours["nights"].append(night)
    ours["fingerprints"].append(fingerprint)
    recorded = lake.table_version_path(lake_dir, collection, as_of)
    version = _reusable_version(lake_dir, table, recorded, ours)
    if version is None:
        version = commit_night(table, as_of, Path(clean_file), lake.TABLES[collection].key)
    ours["version"] = version
    segments.append(ours)
    remove_stale([clean_file])
    write_json(recorded, {
        "collection": collection,
        "as_of": night,
        "key": lake.TABLES[collection].key,
        "history": segments,
    })
    if entry is not None:
        entry["history"] = segments
        entry.pop("fingerprints", None)
    night_files = _night_files(str(table), version).get(night, ())
    return recorded, night_files[0] if night_files else None


def validated_versions(lake_dir: Path, as_of: dt.date) -> dict[str, str] | None:
    """Per collection, the version file of the lake's validated state of `as_of`, or None
    when the lake does not hold all of it."""
    manifest_file = lake.manifest_path(lake_dir, as_of)
    if not manifest_file.exists() or not read_manifest(manifest_file).get("validated"):
        return None
    versions = {}
    for collection in lake.TABLES:
        version = lake.table_version_path(lake_dir, collection, as_of)
        if not version.exists():
            return None
        try:
            parts = table_parts(version)
        except Exception:  # noqa: BLE001 - a table or version no longer readable
            return None
        if not all(p.exists() for p in parts):
            return None
        versions[collection] = str(version)
    return versions


# ---------------------------------------------------------------- reading it back


def _history(path: Path) -> tuple[Path, list[dict[str, Any]]]:
    record = read_json(path)
    lake_dir = lake.lake_dir_of_version(path)
    if "history" in record:
        return lake_dir, record["history"]
    return lake_dir, [{"parts": record["parts"]}]  # a version file of a Parquet-parts lake


def table_parts(path: str | Path) -> list[Path]:
    """The Parquet files behind a path, in history order: a version file's nights (each
    table at its recorded version) and parts, or the file itself."""
    path = Path(path)
    if path.suffix != ".json":
        return [path]
    lake_dir, segments = _history(path)
    files: list[Path] = []
    for segment in segments:
        if "parts" in segment:
            files += [lake.from_record(lake_dir, p) for p in segment["parts"]]
            continue
        table = lake.from_record(lake_dir, segment["table"])
        by_night = _night_files(str(table), int(segment["version"]))
        files += [Path(f) for n in segment["nights"] for f in by_night.get(n, ())]
    return files


def content_fingerprint(path: str | Path) -> str | None:
    """What a clean path holds, by content: a version file's nights' and parts' sha256
    (not the table versions: an identical rerun keeps it), or a file's sha256; None when
    missing."""
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        return file_sha256(path)
    record = read_json(path)
    if "history" not in record:
        return file_sha256(path)
    prints = [f for s in record["history"] for f in s.get("fingerprints") or []]
    text = json.dumps([record.get("collection"), prints])
    return hashlib.sha256(text.encode()).hexdigest()


def lake_types(collection: str, table: pa.Table) -> pa.Table:
    """A part read back with the lake's declared types (Delta keeps timestamps in µs)."""
    spec = lake.TABLES.get(collection)
    if spec is None:
        return table
    declared = lake.lake_schema(spec)
    for i, f in enumerate(table.schema):
        want = declared.field(f.name).type if f.name in declared.names else None
        if want is not None and f.type != want:
            # A finer timestamp is truncated to the lake's milliseconds (the extract's unit);
            # any other cast must be exact.
            exact = not (pa.types.is_timestamp(f.type) and pa.types.is_timestamp(want))
            table = table.set_column(i, f.name, table.column(i).cast(want, safe=exact))
    return table


def part_schema(collection: str, part: Path) -> pa.Schema:
    return lake_types(collection, pq.read_schema(part).empty_table()).schema


def part_batches(collection: str, part: Path, batch_rows: int) -> Iterator[pa.Table]:
    """A part's rows in record batches, with the lake's types."""
    for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_rows):
        yield lake_types(collection, pa.Table.from_batches([batch]))


def history_schema(collection: str, path: str | Path) -> pa.Schema:
    """The columns of a clean path (its first part's; the lake's own when it has none)."""
    parts = table_parts(path)
    if parts:
        return part_schema(collection, parts[0])
    return lake.lake_schema(lake.TABLES[collection])


def stored_rows(path: str | Path) -> int:
    """Rows of a clean table from its Parquet footers (parts that overlap count twice)."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in table_parts(path))


def read_table(collection: str, path: str | Path) -> pd.DataFrame:
    """One collection's validated rows: every part, newest copy of each key."""
    parts = table_parts(path)
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{collection}: lake partition(s) missing: {', '.join(missing)}")
    if not parts:
        return lake.lake_schema(lake.TABLES[collection]).empty_table().to_pandas()
    tables = [lake_types(collection, pq.read_table(p)) for p in parts]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
    return newest_copies(collection, table.to_pandas(), overlapping=len(parts) > 1)


def newest_copies(collection: str, frame: pd.DataFrame, overlapping: bool) -> pd.DataFrame:
    """Rows in part order, each key once (its last copy) when the parts may overlap."""
    key = lake.TABLES[collection].key if collection in lake.TABLES else None
    if overlapping and key in frame.columns:
        frame = frame.drop_duplicates(subset=[key], keep="last", ignore_index=True)
    return frame


def read_tables(paths: Mapping[str, str]) -> LakeTables:
    """`paths` maps collection name → its validated rows (Parquet file or version file)."""
    names = [f.name for f in fields(LakeTables)]
    missing = [n for n in names if n not in paths]
    if missing:
        raise ValueError(f"no validated lake file for: {', '.join(missing)}")
    return LakeTables(**{name: read_table(name, paths[name]) for name in names})
