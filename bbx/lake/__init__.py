"""The lake: its contract, its layout, and (in the submodules) every read and write of it.

- this module: which app fields the pipeline reads, under which names, and where each
  file lives (declarations and path helpers only, no I/O);
- `bbx.lake.files`: the one atomic Parquet writer and JSON writer every lake file goes
  through;
- `bbx.lake.manifests`: what each night extracted, and whether the gate validated it;
- `bbx.lake.snapshots`: raw partitions, and snapshots merged onto the previous night's;
- `bbx.lake.history`: the clean Delta tables, their versions (the validated history
  as of a night) and reading them back as the features expect;
- `bbx.lake.buckets`: the validated lake split into hash buckets of customers.

The tasks only read MongoDB and run Great Expectations; they hand Arrow batches and
results to these modules.

Each app collection maps to one raw lake table. Only the fields listed here are
projected from MongoDB, so PII (names, email, phone, street, zip code, IP
address, password hash) never leaves the app's database. Nested fields are
flattened to business names; units are normalised here, once (bytes → GB with
1 GB = 10^9 bytes, as ISPs bill; every date is a UTC timestamp).

Layout under `<home>/lake/` (hive partitions by night, `dt=<as_of>`):

    raw/<c>/dt=<as_of>/part-0.parquet         what this run extracted: a snapshot
                                              (users, subscriptions, plans; the first
                                              two refreshed from the previous one by
                                              updatedAt between full reads) or, for
                                              append-only collections, the increment
                                              since the previous watermark (or all)
    quarantine/<c>/dt=<as_of>/part-0.parquet  rejected rows with quarantine_reason
                                              (the rules: features/quarantine.py)
    staged/<c>/dt=<as_of>/part-0.parquet      validated rows waiting for the gate
                                              (removed once committed)
    clean/<c>/                                a Delta Lake table of validated rows,
                                              partitioned by `dt`: one commit per night
                                              the gate passed (bbx.lake.history)
    clean/<c>/_versions/dt=<as_of>.json       the table version (and nights) that is the
                                              collection's full validated history at as_of
    manifests/<as_of>.json                    rows, watermarks, schema fingerprint,
                                              durations; `validated` once gated, with
                                              each table's history (version, nights)
    source.json                               the server and database this lake was
                                              extracted from (one source per home)
    buckets/dt=<as_of>/...                    the clean tables split by customer hash
                                              (derived, rebuilt on demand)
    scores/dt=<as_of>/part-0.parquet          the night's scores
    prices/dt=<as_of>/part-0.parquet          the night's prices (joined to the scores
                                              by user_id when published)

Only the validated history is a Delta table (`deltalake`, delta-rs): it is what
reruns replace night by night, backfills read as of a version, and people query.
raw/ and quarantine/ are per-run extracts, and buckets/, scores/, prices/ derived
per-night artifacts: plain Parquet files (zstd), as are the JSON records. Every write
goes through this package (`bbx.lake.files`, and `bbx.lake.history.commit_night` for
the clean tables), one writer per night.

Reading the validated history: `bbx.lake.history.read_table` in Python (the nights of
the recorded version, each key's newest copy). pandas:
`deltalake.DeltaTable("lake/clean/usagelogs").to_pandas()` (add `version=` for time
travel); DuckDB without its delta extension (which would download at run time):
register `DeltaTable(...).to_pyarrow_dataset()` and query it (docs/architecture.md).

Paths inside the lake's own records (manifests, table versions) are relative to the
lake folder, so a copied or moved home keeps working.

"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

OBJECT_ID = "objectid"  # marker: read as ObjectId, stored in the lake as 24-char hex text
TS = pa.timestamp("ms", tz="UTC")
BYTES_PER_GB = 1e9


@dataclass(frozen=True)
class Column:
    name: str  # lake column name (business name)
    source: str  # dotted path in the app's document
    type: pa.DataType | str  # arrow type, or OBJECT_ID
    scale: float | None = None  # multiply the source value by this (unit normalisation)


@dataclass(frozen=True)
class TableSpec:
    collection: str  # app collection
    key: str  # lake column that identifies a row
    columns: tuple[Column, ...]
    time_column: str | None = None  # event time: set = append-only, extracted incrementally
    query: dict = field(default_factory=dict)  # server-side filter (e.g. only logins)
    # A row whose every column but the key equals an earlier row's is the same event
    # written twice under two _ids, and is quarantined. Only where the lake's columns
    # are the document's content: a usage session's measurements (bytes, speeds,
    # latency, loss, duration) do not repeat by chance. Elsewhere the lake sees too
    # little to call two documents identical: a login row is only who and when (the
    # app may log one user twice in a millisecond), and payments and invoices carry
    # unique order and invoice numbers the lake does not read.
    identical_content_is_duplicate: bool = False
    # Snapshots only: the column the app stamps on every change (Mongoose timestamps'
    # updatedAt). Set = the snapshot is refreshed from the documents changed since the
    # previous one (bbx.lake.snapshots); unset = read in full every run.
    updated_column: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def content_columns(self) -> list[str]:
        """Every column but the key: what "identical content" compares."""
        return [c.name for c in self.columns if c.name != self.key]

    @property
    def incremental(self) -> bool:
        """Append-only collections are extracted from a watermark; the rest are snapshots."""
        return self.time_column is not None

    @property
    def time_source(self) -> str | None:
        """The app field behind time_column (what the incremental query filters on)."""
        return next((c.source for c in self.columns if c.name == self.time_column), None)

    @property
    def updated_source(self) -> str | None:
        """The app field behind updated_column (what an incremental snapshot filters on)."""
        return next((c.source for c in self.columns if c.name == self.updated_column), None)


def _c(name: str, source: str, type_: pa.DataType | str, scale: float | None = None) -> Column:
    return Column(name, source, type_, scale)


STR = pa.string()
F64 = pa.float64()
BOOL = pa.bool_()

TABLES: dict[str, TableSpec] = {
    spec.collection: spec
    for spec in (
        TableSpec(
            "users",
            key="user_id",
            updated_column="updated_at",
            columns=(
                _c("user_id", "_id", OBJECT_ID),
                _c("role", "role", STR),
                _c("account_status", "status", STR),
                _c("last_login_at", "lastLogin", TS),
                _c("customer_since", "customerSince", TS),
                _c("created_at", "createdAt", TS),
                _c("updated_at", "updatedAt", TS),
                _c("nps_score", "npsScore", F64),
                _c("city", "address.city", STR),
                _c("state", "address.state", STR),
                _c("date_of_birth", "dateOfBirth", TS),
            ),
        ),
        TableSpec(
            "plans",
            key="plan_id",
            columns=(
                _c("plan_id", "_id", OBJECT_ID),
                _c("plan_name", "name", STR),
                _c("category", "category", STR),
                _c("monthly_price", "pricing.monthly", F64),
                _c("yearly_price", "pricing.yearly", F64),
                _c("currency", "pricing.currency", STR),
                _c("download_mbps", "features.speed.download", F64),
                _c("upload_mbps", "features.speed.upload", F64),
                _c("data_limit_amount", "features.dataLimit.amount", F64),
                _c("data_limit_unit", "features.dataLimit.unit", STR),
                _c("data_unlimited", "features.dataLimit.unlimited", BOOL),
                _c("plan_status", "status", STR),
            ),
        ),
        TableSpec(
            "subscriptions",
            key="subscription_id",
            updated_column="updated_at",
            columns=(
                _c("subscription_id", "_id", OBJECT_ID),
                _c("user_id", "user", OBJECT_ID),
                _c("plan_id", "plan", OBJECT_ID),
                _c("subscription_status", "status", STR),
                _c("start_date", "startDate", TS),
                _c("end_date", "endDate", TS),
                _c("billing_cycle", "billingCycle", STR),
                _c("base_price", "pricing.basePrice", F64),
                _c("discount_applied", "pricing.discountApplied", F64),
                _c("final_price", "pricing.finalPrice", F64),
                _c("total_amount", "pricing.totalAmount", F64),
                _c("auto_renewal", "autoRenewal.enabled", BOOL),
                _c("cancel_requested_at", "cancellation.requestDate", TS),
                _c("cancel_effective_at", "cancellation.effectiveDate", TS),
                _c("cancellation_reason", "cancellation.reason", STR),
                _c("created_at", "createdAt", TS),
                _c("updated_at", "updatedAt", TS),
            ),
        ),
        TableSpec(
            "usagelogs",
            key="session_id",
            time_column="timestamp",
            identical_content_is_duplicate=True,
            columns=(
                _c("session_id", "_id", OBJECT_ID),
                _c("user_id", "userId", OBJECT_ID),
                _c("timestamp", "timestamp", TS),
                _c("download_gb", "download", F64, 1 / BYTES_PER_GB),
                _c("upload_gb", "upload", F64, 1 / BYTES_PER_GB),
                _c("download_mbps", "downloadSpeed", F64),
                _c("upload_mbps", "uploadSpeed", F64),
                _c("latency_ms", "latency", F64),
                _c("packet_loss_pct", "packetLoss", F64),
                _c("session_minutes", "sessionDuration", F64),
                _c("device_type", "deviceType", STR),
            ),
        ),
        TableSpec(
            "payments",
            key="payment_id",
            time_column="created_at",
            columns=(
                _c("payment_id", "_id", OBJECT_ID),
                _c("user_id", "user", OBJECT_ID),
                _c("subscription_id", "subscription", OBJECT_ID),
                _c("amount", "amount", F64),
                _c("currency", "currency", STR),
                _c("payment_status", "status", STR),
                _c("method", "method", STR),
                _c("created_at", "createdAt", TS),
                _c("captured_at", "capturedAt", TS),
                _c("failed_at", "failedAt", TS),
                _c("attempt_count", "attemptCount", F64),
            ),
        ),
        TableSpec(
            "billings",
            key="invoice_id",
            time_column="created_at",
            columns=(
                _c("invoice_id", "_id", OBJECT_ID),
                _c("user_id", "user", OBJECT_ID),
                _c("subscription_id", "subscription", OBJECT_ID),
                _c("amount", "amount", F64),
                _c("total", "total", F64),
                _c("invoice_status", "status", STR),
                _c("due_date", "dueDate", TS),
                _c("period_start", "billingPeriod.start", TS),
                _c("period_end", "billingPeriod.end", TS),
                _c("paid_at", "paymentDate", TS),
                _c("created_at", "createdAt", TS),
            ),
        ),
        TableSpec(
            "supporttickets",
            key="ticket_id",
            time_column="created_at",
            columns=(
                _c("ticket_id", "_id", OBJECT_ID),
                _c("user_id", "customer", OBJECT_ID),
                _c("created_at", "createdAt", TS),
                _c("updated_at", "updatedAt", TS),
                _c("ticket_status", "status", STR),
                _c("priority", "priority", STR),
                _c("category", "category", STR),
                _c("satisfaction_rating", "satisfaction.rating", F64),
            ),
        ),
        TableSpec(
            "auditlogs",
            key="login_id",
            time_column="timestamp",
            query={"action": "login"},  # only logins: the full login history
            columns=(
                _c("login_id", "_id", OBJECT_ID),
                _c("user_id", "userId", OBJECT_ID),
                _c("timestamp", "timestamp", TS),
            ),
        ),
        TableSpec(
            "feedbacks",
            key="feedback_id",
            time_column="created_at",
            columns=(
                _c("feedback_id", "_id", OBJECT_ID),
                _c("user_id", "user", OBJECT_ID),
                _c("overall_rating", "rating.overall", F64),
                _c("sentiment", "sentiment", STR),
                _c("created_at", "createdAt", TS),
            ),
        ),
    )
}

# Collections the pipeline owns and writes (the app only reads them).
SCORES_COLLECTION = "ml_customer_scores"


def lake_schema(spec: TableSpec) -> pa.Schema:
    """A raw or clean table's schema: ObjectIds as hex text, everything else as declared."""
    return pa.schema(
        [(c.name, pa.string() if c.type == OBJECT_ID else c.type) for c in spec.columns]
    )


def schema_fingerprint(schema: pa.Schema) -> str:
    text = schema.to_string(show_schema_metadata=False, show_field_metadata=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def partition(as_of: dt.date) -> str:
    return f"dt={as_of.isoformat()}"


def raw_path(lake_dir: Path, collection: str, as_of: dt.date) -> Path:
    return lake_dir / "raw" / collection / partition(as_of) / "part-0.parquet"


def quarantine_path(lake_dir: Path, collection: str, as_of: dt.date) -> Path:
    return lake_dir / "quarantine" / collection / partition(as_of) / "part-0.parquet"


def staged_path(lake_dir: Path, collection: str, as_of: dt.date) -> Path:
    """A night's validated rows (quarantined ones removed) until the gate commits them
    into the clean table."""
    return lake_dir / "staged" / collection / partition(as_of) / "part-0.parquet"


def clean_table_path(lake_dir: Path, collection: str) -> Path:
    """The collection's Delta table of validated rows, partitioned by night."""
    return lake_dir / "clean" / collection


def features_path(lake_dir: Path, name: str, as_of: dt.date) -> Path:
    return lake_dir / "features" / name / partition(as_of) / "part-0.parquet"


def scores_path(lake_dir: Path, as_of: dt.date) -> Path:
    return lake_dir / "scores" / partition(as_of) / "part-0.parquet"


def prices_path(lake_dir: Path, as_of: dt.date) -> Path:
    return lake_dir / "prices" / partition(as_of) / "part-0.parquet"


def manifest_path(lake_dir: Path, as_of: dt.date) -> Path:
    return lake_dir / "manifests" / f"{as_of.isoformat()}.json"


def manifests_dir(lake_dir: Path) -> Path:
    return lake_dir / "manifests"


def table_version_path(lake_dir: Path, collection: str, as_of: dt.date) -> Path:
    """JSON naming the clean table version and nights that are its full history at as_of.

    Under `_versions/` so Delta and hive-partition readers of `clean/<collection>/` skip it.
    """
    return lake_dir / "clean" / collection / "_versions" / f"{partition(as_of)}.json"


def source_path(lake_dir: Path) -> Path:
    """Which MongoDB database this lake holds the history of (tasks/lake_source.py)."""
    return lake_dir / "source.json"


def to_record(lake_dir: Path, path: str | Path) -> str:
    """A path as the lake's own records keep it: relative to the lake folder."""
    path = Path(path)
    for base, target in ((lake_dir, path), (lake_dir.resolve(), path.resolve())):
        try:
            return target.relative_to(base).as_posix()
        except ValueError:
            continue
    return str(path)  # outside the lake: kept as it is


def from_record(lake_dir: Path, recorded: str | Path) -> Path:
    """The file a record names (records written before paths were relative are absolute)."""
    return lake_dir / recorded


def lake_dir_of_version(version_file: Path) -> Path:
    """The lake folder of a table version file (clean/<c>/_versions/<file>.json)."""
    return Path(version_file).parents[3]
