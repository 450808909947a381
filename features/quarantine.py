"""Which rows of a raw lake table are quarantined, and why; and the volume rule.

Pure functions over Arrow tables and row positions: the gate (tasks/validate.py)
runs the Great Expectations suite and writes files; what counts as an orphan, a
repeated read or a duplicate event, how reasons combine and what a person is told
are decided here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REASON_COLUMN = "quarantine_reason"
ORPHAN_REASON = "orphan user_id"
DUPLICATE_REASON = "identical to an earlier document (same event written twice)"
USER_KEY = "user_id"


def orphan_rows(table: pa.Table, known_user_ids: set[str]) -> np.ndarray:
    """Rows whose (non-null) user_id is not a known customer."""
    user_ids = table.column(USER_KEY)
    known = pa.array(list(known_user_ids), type=pa.string())
    orphan = pc.and_(pc.is_valid(user_ids), pc.invert(pc.is_in(user_ids, value_set=known)))
    return np.flatnonzero(orphan.to_numpy(zero_copy_only=False))


def drop_repeated_reads(
    table: pa.Table, key: str, updated_column: str | None
) -> tuple[pa.Table, int]:
    """Keep one copy of a document the extract read twice (same key): the latest one.

    A cursor can return a document again when it moves during the scan; the copies are
    the same document, so this is not bad data. Rows without a key are left for the
    suite's critical not-null check. Returns the table and how many copies were dropped.
    """
    if table.num_rows == 0:
        return table, 0
    columns = [key] + ([updated_column] if updated_column in table.column_names else [])
    frame = table.select(columns).to_pandas()
    keyed = frame[frame[key].notna()]
    if not keyed[key].duplicated().any():
        return table, 0
    if len(columns) == 2:
        keyed = keyed.sort_values(updated_column, kind="stable", na_position="first")
    keep = np.sort(np.concatenate([
        keyed.drop_duplicates(key, keep="last").index.to_numpy(),
        frame.index[frame[key].isna()].to_numpy(),
    ]))
    return table.take(pa.array(keep)), table.num_rows - len(keep)


def identical_rows(table: pa.Table, columns: list[str]) -> np.ndarray:
    """Rows equal to an earlier row in every given column (the first copy is kept)."""
    if not columns or table.num_rows == 0:
        return np.array([], dtype=np.int64)
    frame = table.select(columns).to_pandas()
    return np.flatnonzero(frame.duplicated(keep="first").to_numpy())


def quarantine_reasons(n_rows: int, row_failures: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per row: '; '-joined labels of every quarantine rule it broke ('' = clean)."""
    reasons = np.full(n_rows, "", dtype=object)
    for label, rows in row_failures.items():
        if rows.size == 0:
            continue
        current = reasons[rows]
        reasons[rows] = np.where(current == "", label, current + "; " + label)
    return reasons


def share_message(
    collection: str, rows: int, quarantined: int, row_failures: Mapping[str, np.ndarray],
    limit: float,
) -> str:
    """Why a table stopped the run: its quarantined share is above `limit`."""
    counts = sorted(((len(r), label) for label, r in row_failures.items() if len(r)), reverse=True)
    what = (
        f"failed {counts[0][1]}"
        if len(counts) == 1
        else "failed " + ", ".join(f"{label} ({n})" for n, label in counts)
    )
    return (
        f"{collection}: {quarantined} of {rows} rows ({quarantined / rows:.1%}) {what} — "
        f"above the {limit:.1%} quarantine limit; run stopped before features"
    )


def quarantine_line(
    collection: str, rows: int, quarantined: int, reasons: Mapping[str, int],
    repeated_reads: int,
) -> str:
    """One line a person reads: how many rows a table quarantined, and why."""
    if not quarantined:
        line = f"{collection}: 0 of {rows} rows quarantined"
    else:
        listed = ", ".join(
            f"{label} ({n})" for label, n in sorted(reasons.items(), key=lambda kv: -kv[1])
        )
        line = (f"{collection}: {quarantined} of {rows} rows "
                f"({quarantined / max(rows, 1):.2%}) quarantined: {listed}")
    if repeated_reads:
        line += f"; {repeated_reads} repeated reads of a document kept once"
    return line


# ---------------------------------------------------------------- volume


@dataclass(frozen=True)
class TableVolume:
    """What one night read of a collection, as its manifest records it."""

    mode: Literal["snapshot", "full", "incremental"]
    rows: int  # rows in the night's file
    new_rows: int  # rows newer than the previous watermark
    days_since_previous: int | None = None  # the night it was compared with, in days


def volume_warning(
    now: TableVolume, before: TableVolume, days: int, tolerance: float
) -> str | None:
    """Volume against the previous validated night: snapshot rows, or new rows per day.

    A jump or a drop beyond `tolerance` (a share) often means a broken app job or
    extract. A full read is not comparable with an increment, so it is never judged.
    """
    if days <= 0:
        return None
    if now.mode == "snapshot":
        current, previous, what = float(now.rows), float(before.rows), "rows"
    elif now.mode != "full" and before.mode != "full":
        previous_days = before.days_since_previous or days
        current, previous = now.new_rows / days, before.new_rows / previous_days
        what = "new rows per day"
    else:
        return None
    if previous == 0:
        return None if current == 0 else f"volume: {what} {current:.0f}, previous run had none"
    change = (current - previous) / previous
    if abs(change) <= tolerance:
        return None
    return (
        f"volume: {what} {current:.0f} vs {previous:.0f} in the previous run ({change:+.0%}, "
        f"tolerance ±{tolerance:.0%})"
    )
