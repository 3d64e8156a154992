"""Dates and times as operators type them on the command line and in the endpoints."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

# A date or time without offset is Dutch local time: what an operator in the Netherlands means.
LOCAL = ZoneInfo("Europe/Amsterdam")

# Years outside these mean nothing here (no message predates 1900 or follows 2999), and near
# the ends of datetime's range converting a moment to UTC or adding a day overflows.
FIRST_YEAR, LAST_YEAR = 1900, 2999

# An offset with a fraction of a second, as datetime.isoformat() writes one (+00:00:00.000001).
# CPython 3.11's fromisoformat drops the fraction when hours, minutes and seconds are all 0 (it
# reads +00:00:00.000001 as UTC), which moves the instant: such an offset is read here.
_FRACTIONAL_OFFSET = re.compile(r"([+-])([0-9]{2}):?([0-9]{2}):?([0-9]{2})[.,]([0-9]{1,6})$")


def parse_moment(value: str) -> datetime:
    """ISO 8601 date (midnight) or date-time; without an offset it is Europe/Amsterdam time.

    Raises ValueError with the accepted forms, or when the year is not in 1900-2999.
    """
    text = value.strip().replace("Z", "+00:00")
    try:
        fractional = _FRACTIONAL_OFFSET.search(text)
        if fractional is None:
            moment = datetime.fromisoformat(text)
        else:
            sign, hours, minutes, seconds, fraction = fractional.groups()
            offset = timedelta(
                hours=int(hours),
                minutes=int(minutes),
                seconds=int(seconds),
                microseconds=int(fraction.ljust(6, "0")),
            )
            zone = timezone(-offset if sign == "-" else offset)
            moment = datetime.fromisoformat(text[: fractional.start()]).replace(tzinfo=zone)
    except ValueError as exc:
        raise ValueError(
            f"not a date or date-time (2027-03-01 or 2027-03-01T09:00[+01:00]): {value!r}"
        ) from exc
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValueError(f"not a moment in the years {FIRST_YEAR}-{LAST_YEAR}: {value!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=LOCAL)
