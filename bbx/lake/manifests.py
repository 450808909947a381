"""Run manifests: what each night extracted, and whether the gate validated it.

`manifests/<as_of>.json` holds one entry per collection (mode, rows, watermark, the
full extract its history starts from, schema fingerprint, durations). It stays
`validated: false` until the gate passes; only validated runs seed the next run's
watermarks and table histories, so a stopped night is read again next time.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bbx import lake
from bbx.lake.files import read_json, write_json

# How a collection was read: the whole collection (snapshot), everything of an
# append-only collection (full), or its events since the previous watermark.
SNAPSHOT = "snapshot"
FULL = "full"
INCREMENTAL = "incremental"


def read_manifest(path: str | Path) -> dict[str, Any]:
    return read_json(path)


def manifest_entry(manifest: dict[str, Any] | None, collection: str) -> dict[str, Any] | None:
    if not manifest:
        return None
    return next((t for t in manifest.get("tables", []) if t["collection"] == collection), None)


def previous_validated_manifest(lake_dir: Path, as_of: dt.date) -> dict[str, Any] | None:
    """The newest manifest before `as_of` whose run passed the gate.

    Strictly before: rerunning an as-of starts from the same place (idempotent).
    """
    folder = lake.manifests_dir(lake_dir)
    if not folder.exists():
        return None
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            day = dt.date.fromisoformat(path.stem)
        except ValueError:
            continue
        if day >= as_of:
            continue
        manifest = read_manifest(path)
        if manifest.get("validated"):
            return manifest
    return None


def write_manifest(
    lake_dir: Path, as_of: dt.date, entries: list[Mapping[str, Any]]
) -> Path:
    """Record a night's extract: one entry per collection (its `path` is the raw file),
    with the file's schema, and `validated: false` until the gate passes."""
    path = lake.manifest_path(lake_dir, as_of)
    tables = []
    for given in entries:
        entry = dict(given)
        entry["schema"] = pq.read_schema(entry["path"]).to_string(show_schema_metadata=False)
        for name in ("path", "merged_onto"):  # relative: a moved home keeps working
            if entry.get(name):
                entry[name] = lake.to_record(lake_dir, entry[name])
        tables.append(entry)
    previous = previous_validated_manifest(lake_dir, as_of)
    write_json(path, {
        "as_of": as_of.isoformat(),
        "written_at": dt.datetime.now(dt.UTC).isoformat(),
        "previous_as_of": previous["as_of"] if previous else None,
        "validated": False,
        "extract_seconds": round(sum(e.get("seconds", 0.0) for e in entries), 3),
        "tables": tables,
    })
    return path


def mark_validated(lake_dir: Path, as_of: dt.date, manifest: dict[str, Any],
                   quarantined: Mapping[str, int]) -> None:
    """The gate passed: this night's watermarks and histories seed the next night."""
    manifest["validated"] = True
    manifest["validated_at"] = dt.datetime.now(dt.UTC).isoformat()
    manifest["quarantined"] = dict(quarantined)
    write_json(lake.manifest_path(lake_dir, as_of), manifest)


def seed_from(live_lake: Path, lake_dir: Path, as_of: dt.date) -> None:
    """Start another lake (a dry run's) from copies of `live_lake`'s manifests before
    `as_of`, pointing at the live files: it extracts incrementally from the last
    validated night without ever writing next to the live history."""
    source = lake.manifests_dir(live_lake)
    target = lake.manifests_dir(lake_dir)
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.json")) if source.exists() else []:
        try:
            day = dt.date.fromisoformat(path.stem)
        except ValueError:
            continue
        if day < as_of:
            write_json(target / path.name, _pointing_at(live_lake, read_manifest(path)))
    live_source = lake.source_path(live_lake)
    if live_source.exists():  # the same source check as a real night, no marker to write
        shutil.copy2(live_source, lake.source_path(lake_dir))


def _pointing_at(live_lake: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest whose lake-relative records name the live lake's files."""
    def absolute(recorded: str) -> str:
        return str(lake.from_record(live_lake, recorded))

    for entry in manifest.get("tables", []):
        for name in ("path", "merged_onto"):
            if entry.get(name):
                entry[name] = absolute(entry[name])
        history = entry.get("history") or []
        if history and all(isinstance(p, str) for p in history):  # a Parquet-parts lake's
            entry["history"] = [absolute(p) for p in history]
            entry["fingerprints"] = {absolute(p): f
                                     for p, f in (entry.get("fingerprints") or {}).items()}
        else:  # segments: the live table at its recorded version, or live parts
            for segment in history:
                if segment.get("table"):
                    segment["table"] = absolute(segment["table"])
                if segment.get("parts"):
                    segment["parts"] = [absolute(p) for p in segment["parts"]]
    return manifest
