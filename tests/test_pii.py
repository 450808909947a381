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
from flows.nightly import nightly
from simulator import simulate

pytestmark = pytest.mark.slow

AS_OF = dt.date(2026, 6, 1)


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


def test_no_pii_in_any_lake_file_or_mlflow_artifact(flow_env: Settings, mongo_client) -> None:
    db = mongo_client[flow_env.mongo.database]
    simulate(db, customers=200, days=90, seed=5, end=AS_OF - dt.timedelta(days=1))
    texts, names = _pii(db)
    assert len(texts) > 600 and names

    summary = nightly(as_of=AS_OF)  # a real night: a dry run removes its lake at the end
    _assert_gate_artifacts(summary["run_id"], flow_env)

    home = flow_env.home
    files = [p for p in home.rglob("*") if p.is_file()]
    parquet = [p for p in files if p.suffix == ".parquet"]
    assert any("lake/raw" in str(p) for p in parquet)
    assert any("lake/clean" in str(p) for p in parquet)
    assert list(flow_env.mlflow_artifacts_dir.rglob("*")), "no MLflow artifacts to scan"
    leaks = _scan(home, texts, names)
    assert not leaks, "PII found:\n" + "\n".join(leaks)

    # The scan itself finds PII when there is some (a control, not a tautology).
    email = next(t for t in texts if "@" in t)
    planted = home / "lake" / "raw" / "planted.parquet"
    pq.write_table(pa.table({"note": [f"contact {email}"]}), planted)
    assert _scan(home, texts, names) == [f"lake/raw/planted.parquet: {[email]}"]


def _scan(home: Path, texts: set[str], names: set[str]) -> list[str]:
    encoded = [t.encode() for t in texts]
    leaks: list[str] = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            cells = _parquet_cells(path)
            hits = (cells & names) | {t for t in texts for c in cells if t in c}
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
    index = settings.data_docs_dir / f"index-{AS_OF.isoformat()}.html"
    assert index.exists() and (settings.data_docs_dir / "index.html").exists()
    assert index.as_uri() in str(by_key["data-docs"].data)
    assert 'href="usagelogs/' in index.read_text()
