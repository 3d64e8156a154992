"""Local woongemeente register: a table of (bsn, geldig_vanaf, gemeentecode).

The embedded default for the lookup port, so the service runs without a BRP connection. Filled
by `koppelpunt brp import FILE.csv`. A pupil's woongemeente on a date is the row with the latest
geldig_vanaf on or before that date; that is how moves between gemeenten are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppelpunt.pipeline.run import LookupKey, LookupResult
from koppelpunt.store.register import find_woonregister


def woongemeente_on(rows: Sequence[tuple[date, str]], peildatum: date) -> str | None:
    """The code valid on `peildatum`, from rows sorted by geldig_vanaf ascending."""
    found: str | None = None
    for geldig_vanaf, code in rows:
        if geldig_vanaf <= peildatum:
            found = code
        else:
            break
    return found


class LocalRegisterLookup:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def lookup(self, keys: Sequence[LookupKey]) -> dict[LookupKey, LookupResult]:
        if not keys:
            return {}
        async with self._sessions() as session:
            rows = await find_woonregister(session, sorted({bsn for bsn, _ in keys}))
        return {(bsn, day): woongemeente_on(rows.get(bsn, []), day) for bsn, day in keys}
