"""Reading the validated lake back into the typed container the features expect."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

import pandas as pd

from features.customer import LakeTables


def read_tables(paths: Mapping[str, str]) -> LakeTables:
    """`paths` maps collection name → Parquet file of its validated rows."""
    names = [f.name for f in fields(LakeTables)]
    missing = [n for n in names if n not in paths]
    if missing:
        raise ValueError(f"no validated lake file for: {', '.join(missing)}")
    return LakeTables(**{name: pd.read_parquet(paths[name]) for name in names})
