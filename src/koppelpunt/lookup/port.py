"""The woongemeente lookup port: where does a pupil live on a given date?

Adapters: the local register (lookup/register.py, the embedded default, filled by
`koppelpunt brp import`) and, later, the Haal Centraal BRP API. The pipeline never calls a
lookup itself: it says which (bsn, peildatum) pairs it needs, an adapter answers, and the
answers go back into the pure decide step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from koppelpunt.pipeline.run import LookupKey, LookupResult


class WoongemeenteLookup(Protocol):
    async def lookup(self, keys: Sequence[LookupKey]) -> dict[LookupKey, LookupResult]:
        """The BRP gemeentecode per key; None if not found; UNAVAILABLE if it cannot answer."""
        ...
