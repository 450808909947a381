"""No PII, ever: after a whole nightly run, no customer's name, email, phone, street,
zip code or password hash is anywhere under the home folder (lake, quarantine,
manifests, data docs, MLflow store and artifacts)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bbx.settings import Settings

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 5, 31)  # the shared world's night (tests/test_ui_runs.py uses it too)


def _pii(db) -> tuple[set[str], set[str]]:
    """(texts that must not occur anywhere, names that must not be a whole lake cell)."""
    texts: set[str] = set()
    names: set[str] = set()
    for user in db.users.find({"role": "customer"}):
        first, last = user["firstName"], user["lastName"]
        names |= {first, last}
        phone = user["phone"]
        texts |= {f"{first} {last}", user["email"], phone, phone.replace(" ", "").lstrip("+"),
                  user["password"], user["address"]["street"]}
        texts.add(phone.split()[-1])  # the bare 10 digits
    return texts, names


def _parquet_cells(path: Path) -> set[str]:
    table = pq.read_table(path)
    cells: set[str] = set(table.column_names)
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            cells |= {v for v in column.to_pylist() if v is not None}
    return cells


def _blobs(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [archive.read(name) for name in archive.namelist()]
    return [data]


def test_no_pii_in_any_lake_file_or_mlflow_artifact(
    prepared_world, mongo_client, tmp_path: Path
) -> None:
    # A real night (a dry run removes its lake at the end), only read here.
    world = prepared_world(customers=200, days=100, seed=5, end=AS_OF, as_of=AS_OF)
    db = mongo_client[world.settings.mongo.database]
    texts, names = _pii(db)
    assert len(texts) > 600 and names
    _assert_gate_artifacts(world.summary["run_id"], world.settings)

    home = world.settings.home
    files = [p for p in home.rglob("*") if p.is_file()]
    parquet = [p for p in files if p.suffix == ".parquet"]
    assert any("lake/raw" in str(p) for p in parquet)
    assert any("lake/clean" in str(p) for p in parquet)
    assert list(world.settings.mlflow_artifacts_dir.rglob("*")), "no MLflow artifacts to scan"
    leaks = _scan(home, texts, names)
    assert not leaks, "PII found:\n" + "\n".join(leaks)

    # The scan itself finds PII when there is some (a control, not a tautology), in a
    # folder of its own: the world is shared.
    email = next(t for t in texts if "@" in t)
    planted = tmp_path / "lake" / "raw" / "planted.parquet"
    planted.parent.mkdir(parents=True)
    pq.write_table(pa.table({"note": [f"contact {email}"]}), planted)
    assert _scan(tmp_path, texts, names) == [f"lake/raw/planted.parquet: {[email]}"]


def _scan(home: Path, texts: set[str], names: set[str]) -> list[str]:
    encoded = [t.encode() for t in texts]
    leaks: list[str] = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            cells = _parquet_cells(path)
            # One search per text over all cells (NUL occurs in no text, so no match
            # spans two cells): the same hits as text x cell, in a fraction of the time.
            joined = "\x00".join(cells)
            hits = (cells & names) | {t for t in texts if t in joined}
        else:
            hits = {t.decode() for blob in _blobs(path) for t in encoded if t in blob}
        if hits:
            leaks.append(f"{path.relative_to(home)}: {sorted(hits)[:3]}")
    return leaks


def _assert_gate_artifacts(flow_run_id: str, settings: Settings) -> None:
    """The run's Prefect artifacts: the gate's table and the link to its Data Docs."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))
    by_key = {a.key: a for a in artifacts}
    table = by_key["data-validation"]
    assert "usagelogs" in str(table.data) and "rows quarantined" in str(table.data)
    index = settings.data_docs_dir / "index.html"  # GX's site index
    assert index.exists()
    assert index.as_uri() in str(by_key["data-docs"].data)
    assert f"'_table_row_link_path': 'validations/usagelogs/{AS_OF.isoformat()}/" in (
        index.read_text())
