"""The validated history as of a night: table versions, and reading them back.

A table version file (`clean/<c>/_versions/dt=<as_of>.json`) lists the clean parts
that together are a collection's full validated history at the as-of date: this
night's part for snapshots and full extracts; for increments, the previous validated
night's list plus this night's part. Each part carries its sha256, so the version
file changes whenever any part's content does (input-keyed caches of later steps
fingerprint the version file).

Parts are read file by file (so no hive `dt` column appears) in order, and rows are
de-duplicated on the table's key keeping the newest part's copy (incremental extracts
overlap).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bbx import lake
from bbx.lake.files import file_sha256, read_json, write_json
from bbx.lake.manifests import FULL, SNAPSHOT, manifest_entry, read_manifest
from features.customer import LakeTables

# ---------------------------------------------------------------- writing a version


def history_parts(
    lake_dir: Path, collection: str, entry: dict[str, Any] | None,
    previous: dict[str, Any] | None, clean_file: str | Path,
) -> list[str]:
    """The clean parts making up the table's history, as lake-relative records."""
    current = lake.to_record(lake_dir, clean_file)
    if entry is None or entry["mode"] in (SNAPSHOT, FULL) or previous is None:
        return [current]
    earlier = manifest_entry(previous, collection) or {}
    return [*(lake.to_record(lake_dir, p) for p in earlier.get("history", [])), current]


def part_fingerprints(
    lake_dir: Path, collection: str, parts: list[str], previous: dict[str, Any] | None,
    clean_file: str | Path,
) -> dict[str, str]:
    """sha256 per part; earlier parts reuse the previous night's (they never change)."""
    earlier = manifest_entry(previous, collection) or {}
    known = {lake.to_record(lake_dir, p): f for p, f in (earlier.get("fingerprints") or {}).items()}
    current = lake.to_record(lake_dir, clean_file)
    def sha256(part: str) -> str:
        digest = file_sha256(lake.from_record(lake_dir, part))
        if digest is None:
            raise FileNotFoundError(f"{collection}: lake partition missing: {part}")
        return digest

    return {
        part: known[part] if part != current and part in known else sha256(part)
        for part in parts
    }


def write_table_version(
    lake_dir: Path, collection: str, as_of: dt.date, entry: dict[str, Any] | None,
    previous: dict[str, Any] | None, clean_file: str | Path,
) -> Path:
    """Record the collection's validated history at `as_of`; the manifest `entry` (when
    there is one) keeps the parts and fingerprints for the next night."""
    parts = history_parts(lake_dir, collection, entry, previous, clean_file)
    fingerprints = part_fingerprints(lake_dir, collection, parts, previous, clean_file)
    version = lake.table_version_path(lake_dir, collection, as_of)
    write_json(version, {
        "collection": collection,
        "as_of": as_of.isoformat(),
        "key": lake.TABLES[collection].key,
        "parts": parts,
        "fingerprints": fingerprints,
    })
    if entry is not None:
        entry["history"] = parts
        entry["fingerprints"] = fingerprints
    return version


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
        if not all(p.exists() for p in table_parts(version)):
            return None
        versions[collection] = str(version)
    return versions


# ---------------------------------------------------------------- reading it back


def table_parts(path: str | Path) -> list[Path]:
    """The Parquet files behind a path: a version file's parts, or the file itself."""
    path = Path(path)
    if path.suffix == ".json":
        lake_dir = lake.lake_dir_of_version(path)
        return [lake.from_record(lake_dir, p) for p in read_json(path)["parts"]]
    return [path]


def stored_rows(path: str | Path) -> int:
    """Rows of a clean table from its Parquet footers (parts that overlap count twice)."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in table_parts(path))


def read_table(collection: str, path: str | Path) -> pd.DataFrame:
    """One collection's validated rows: every part, newest copy of each key."""
    parts = table_parts(path)
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{collection}: lake partition(s) missing: {', '.join(missing)}")
    tables = [pq.read_table(p) for p in parts]
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
