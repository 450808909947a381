"""Reading the validated lake back into the typed container the features expect.

A path per collection is either one Parquet file, or a table version file written by
the gate (`lake/clean/<c>/_versions/dt=<as_of>.json`) listing the clean partitions
that together are the collection's full validated history. Partitions are read file
by file (so no hive `dt` column appears) in order, and rows are de-duplicated on the
table's key keeping the newest partition's copy (incremental extracts overlap).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bbx.lake import TABLES, from_record, lake_dir_of_version
from features.customer import LakeTables


def table_parts(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.suffix == ".json":
        lake_dir = lake_dir_of_version(path)
        return [from_record(lake_dir, p) for p in json.loads(path.read_text())["parts"]]
    return [path]


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
    key = TABLES[collection].key if collection in TABLES else None
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
