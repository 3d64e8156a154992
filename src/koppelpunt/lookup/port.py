"""The woongemeente lookup port: where does a pupil live on a given date?

Adapters: the local register (lookup/register.py, the embedded default, filled by
`koppelpunt brp import`) and, later, the Haal Centraal BRP API. The pipeline never calls a
lookup itself: it says which (bsn, peildatum) pairs it needs, an adapter answers, and the
answers go back into the pure decide step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.pipeline.run import LookupKey, LookupResult


class WoongemeenteLookup(Protocol):
    # True when lookup() reads the database through the caller's `session` (the local
    # register): the caller may then run it inside its own transaction, one connection per
    # message. False for a remote lookup (the BRP over HTTP): it ignores `session`, and the
    # caller ends its transaction first, so no connection is held open during HTTP calls.
    shares_session: bool

    async def lookup(
        self, keys: Sequence[LookupKey], session: AsyncSession | None = None
    ) -> dict[LookupKey, LookupResult]:
        """The BRP gemeentecode per key; None if not found; UNAVAILABLE if it cannot answer.

        `session`: the caller's session, used by an adapter that shares it (else ignored);
        without one, an adapter that reads the database opens its own.
        """
        ...
