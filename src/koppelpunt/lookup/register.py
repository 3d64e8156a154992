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
    # The register is a table in the service's own database: it reads through the caller's
    # session, so a message's idempotency check, lookup and writes share one connection.
    shares_session = True

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def lookup(
        self, keys: Sequence[LookupKey], session: AsyncSession | None = None
    ) -> dict[LookupKey, LookupResult]:
        if not keys:
            return {}
        bsns = {bsn for bsn, _ in keys}
        if session is not None:
            rows = await find_woonregister(session, bsns)
        else:
            async with self._sessions() as own:
                rows = await find_woonregister(own, bsns)
        return {(bsn, day): woongemeente_on(rows.get(bsn, ()), day) for bsn, day in keys}
