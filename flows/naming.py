"""What a run is called, and the date field its form shows."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import WithJsonSchema

# A date field the UI's form may leave empty (= today, UTC): a plain date in the
# parameter schema, not "date or null", which the form shows as a type to pick.
OptionalDate = Annotated[dt.date | None, WithJsonSchema({"type": "string", "format": "date"})]


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def night_label(as_of: dt.date | str | None, dry_run: bool = False) -> str:
    """`2026-12-01`, `2026-12-01 (dry run)`: what a run's name says about its night."""
    day = as_of.isoformat() if isinstance(as_of, dt.date) else (as_of or today_utc().isoformat())
    return f"{day} (dry run)" if dry_run else day
