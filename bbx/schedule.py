"""What a schedule means in UTC: which as-of date a scheduled run processes.

A run with an empty `as_of` processes the UTC date current at its start. A daily
cron in a timezone east of UTC (02:00 Asia/Kolkata = 20:30 UTC) therefore processes
the previous calendar day of that timezone. These sentences go into the deployment
descriptions (`bbx up`) and the run summaries.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

REFERENCE_DAY = dt.date(2026, 12, 2)  # any day: only the clock offsets matter


def _daily_time(cron: str) -> tuple[int, int] | None:
    fields = cron.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()):
        return None
    return int(fields[1]), int(fields[0])


def schedule_note(cron: str, timezone: str) -> str:
    """`02:00 Asia/Kolkata (20:30 UTC the day before): processes the UTC date ...`."""
    daily = _daily_time(cron)
    if daily is None:
        return (f"Schedule: cron `{cron}` in {timezone}; each run processes the UTC date "
                "current at its start.")
    hour, minute = daily
    weekly = cron.split()[4] != "*"
    local = dt.datetime.combine(REFERENCE_DAY, dt.time(hour, minute), tzinfo=ZoneInfo(timezone))
    utc = local.astimezone(dt.UTC)
    shift = {-1: " the day before", 0: "", 1: " the day after"}[(utc.date() - local.date()).days]
    when = f"cron `{cron}`, at " if weekly else ""
    day = {-1: "the previous day's date", 0: "the same day's date",
           1: "the next day's date"}[(utc.date() - local.date()).days]
    example = "" if weekly else (f" (the run at {hour:02d}:{minute:02d} on {local:%-d %b} "
                                 f"processes as-of {utc:%Y-%m-%d})")
    return (
        f"Schedule: {when}{hour:02d}:{minute:02d} {timezone} = {utc:%H:%M} UTC{shift}. A "
        f"scheduled run processes the UTC date current at its start, {day}{example}."
    )


def as_of_note(as_of: dt.date, timezone: str) -> str:
    """`as-of 2026-12-01 = the app's data up to 2026-12-02 00:00 UTC (05:30 ... IST)`."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    local = end.astimezone(ZoneInfo(timezone))
    return (f"as-of {as_of} is a UTC date: the app's data up to {end:%Y-%m-%d %H:%M} UTC "
            f"({local:%Y-%m-%d %H:%M} {timezone})")
