"""Dates and times as operators type them on the command line and in the endpoints."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

# A date or time without offset is Dutch local time: what an operator in the Netherlands means.
LOCAL = ZoneInfo("Europe/Amsterdam")


def parse_moment(value: str) -> datetime:
    """ISO 8601 date (midnight) or date-time; without an offset it is Europe/Amsterdam time.

    Raises ValueError with the accepted forms.
    """
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"not a date or date-time (2027-03-01 or 2027-03-01T09:00[+01:00]): {value!r}"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=LOCAL)
