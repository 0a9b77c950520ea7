"""Date parsing and date-range checks shared by the CLI and planning (no clock reading)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from outreach.errors import PlanError

__all__ = ["parse_date", "check_range", "days"]

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str, field: str) -> date:
    """Parse an ISO date (YYYY-MM-DD) given for `field` (e.g. "--from").

    Raises PlanError naming the field and the expected form. Only the plain
    YYYY-MM-DD form is accepted (not 20260101 or week dates), so that what a
    user typed is what they get.
    """
    cleaned = text.strip()
    if _ISO.fullmatch(cleaned):
        try:
            return date.fromisoformat(cleaned)
        except ValueError:
            pass
    raise PlanError(f"{field}: {text!r} is not a date; use YYYY-MM-DD")


def check_range(start: date, end: date, *, max_days: int = 366, what: str = "date range") -> None:
    """Check that start..end (inclusive) runs forwards and spans at most `max_days` days.

    Raises PlanError for a backwards range or one that is too long.
    """
    if end < start:
        raise PlanError(
            f"{what}: {start.isoformat()}..{end.isoformat()} is backwards; "
            "the end date must be on or after the start date"
        )
    n = (end - start).days + 1
    if n > max_days:
        raise PlanError(
            f"{what}: {start.isoformat()}..{end.isoformat()} spans {n} days; "
            f"at most {max_days} are allowed, so split it into shorter ranges"
        )


def days(start: date, end: date) -> list[date]:
    """Every date from `start` to `end`, both included; empty if end < start."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
