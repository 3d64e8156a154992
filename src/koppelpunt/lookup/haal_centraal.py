"""Woongemeente lookup through the VNG Haal Centraal "BRP Personen bevragen" API (v2).

    POST {base}/personen   X-API-KEY: …
    {"type": "RaadpleegMetBurgerservicenummer", "burgerservicenummer": [≤ 20 BSNs],
     "fields": ["burgerservicenummer", "gemeenteVanInschrijving"]}
    → {"personen": [{"burgerservicenummer": "…",
                     "gemeenteVanInschrijving": {"code": "0363", "omschrijving": "Amsterdam"}}]}

POST, so no BSN ever appears in a URL (or in a proxy's access log). Answers per (bsn, peildatum):
- the 4-digit code of the gemeente van inschrijving;
- None when the person is not found (absent from `personen`, or 404), has no Dutch gemeente van
  inschrijving (RNI 1999, missing code) or has an `opschortingBijhouding` (emigrated,
  deceased, …): the record is then filtered as geenWoongemeente;
- UNAVAILABLE when the BRP cannot answer (5xx, timeout, connection error after the retries,
  another 4xx, an unreadable answer, or the circuit breaker open): the record is parked.

Limitation: the API returns the **current** gemeente van inschrijving, not the one on the
peildatum. Every key of one BSN gets the same answer; records decided long after their
peildatum are routed to where the pupil lives now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.config import Settings
from koppelpunt.lookup.circuit_breaker import CircuitBreaker
from koppelpunt.pipeline.run import UNAVAILABLE, LookupKey, LookupResult

log = structlog.get_logger(__name__)

# The API accepts 1 to 20 burgerservicenummers per request.
MAX_BSNS_PER_REQUEST = 20
FIELDS = ["burgerservicenummer", "gemeenteVanInschrijving"]
# Codes of the gemeente table that are not a Dutch gemeente van inschrijving.
NOT_A_GEMEENTE = frozenset({"0000", "1999"})


class _Unavailable(Exception):
    """One request failed in a way worth retrying (5xx, timeout, connection error)."""


class _Refused(Exception):
    """The BRP refused the request (4xx other than 404): retrying will not help."""


def gemeente_of(persoon: dict[str, Any]) -> str | None:
    """The 4-digit gemeente van inschrijving of one person in a response, or None."""
    if persoon.get("opschortingBijhouding"):
        return None
    gemeente = persoon.get("gemeenteVanInschrijving")
    code = gemeente.get("code") if isinstance(gemeente, dict) else None
    if not isinstance(code, str) or len(code) != 4 or not code.isdigit():
        return None
    return None if code in NOT_A_GEMEENTE else code


class HaalCentraalLookup:
    """The WoongemeenteLookup adapter for Haal Centraal; close() it when done."""

    # A remote call of up to (retries + 1) timeouts: callers must not hold a transaction (or a
    # pooled connection) open during it.
    shares_session = False

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_seconds: float = 5.0,
        retries: int = 2,
        retry_backoff_seconds: float = 0.2,
        max_concurrent_requests: int = 4,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-API-KEY"] = api_key
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
        )
        self._retries = retries
        self._backoff = retry_backoff_seconds
        # A message of 10,000 records needs 500 requests: a few at a time, never unbounded.
        self._concurrency = asyncio.Semaphore(max_concurrent_requests)
        self.breaker = breaker or CircuitBreaker(5, 30.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> HaalCentraalLookup:
        key = settings.brp_api_key
        return cls(
            settings.brp_base_url,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_seconds=settings.brp_timeout_seconds,
            retries=settings.brp_retries,
            retry_backoff_seconds=settings.brp_retry_backoff_seconds,
            max_concurrent_requests=settings.brp_max_concurrent_requests,
            breaker=CircuitBreaker(
                settings.brp_circuit_failures, settings.brp_circuit_reset_seconds
            ),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def lookup(
        self, keys: Sequence[LookupKey], session: AsyncSession | None = None
    ) -> dict[LookupKey, LookupResult]:
        """`session` is ignored: the BRP is asked over HTTP, outside any transaction."""
        bsns = sorted({bsn for bsn, _ in keys})
        batches = [
            bsns[start : start + MAX_BSNS_PER_REQUEST]
            for start in range(0, len(bsns), MAX_BSNS_PER_REQUEST)
        ]
        found: dict[str, LookupResult] = {}
        for answer in await asyncio.gather(*(self._bounded(batch) for batch in batches)):
            found.update(answer)
        return {(bsn, day): found.get(bsn, UNAVAILABLE) for bsn, day in keys}

    async def _bounded(self, bsns: list[str]) -> dict[str, LookupResult]:
        async with self._concurrency:
            return await self._lookup_batch(bsns)

    async def _lookup_batch(self, bsns: list[str]) -> dict[str, LookupResult]:
        if not self.breaker.allow():
            log.warning("brp_circuit_open", personen=len(bsns))
            return dict.fromkeys(bsns, UNAVAILABLE)
        try:
            personen = await self._with_retries(bsns)
        except (_Unavailable, _Refused) as exc:
            self.breaker.record_failure()
            log.warning(
                "brp_lookup_failed",
                personen=len(bsns),
                reason=str(exc),
                circuit=self.breaker.state.value,
            )
            return dict.fromkeys(bsns, UNAVAILABLE)
        self.breaker.record_success()
        result: dict[str, LookupResult] = dict.fromkeys(bsns)
        for persoon in personen:
            bsn = persoon.get("burgerservicenummer")
            if isinstance(bsn, str) and bsn in result:
                result[bsn] = gemeente_of(persoon)
        return result

    async def _with_retries(self, bsns: list[str]) -> list[dict[str, Any]]:
        attempt = 0
        while True:
            try:
                return await self._request(bsns)
            except _Unavailable:
                if attempt >= self._retries:
                    raise
                await asyncio.sleep(self._backoff * 2**attempt)
                attempt += 1

    async def _request(self, bsns: list[str]) -> list[dict[str, Any]]:
        body = {
            "type": "RaadpleegMetBurgerservicenummer",
            "burgerservicenummer": bsns,
            "fields": FIELDS,
        }
        try:
            response = await self._client.post("/personen", json=body)
        except httpx.TimeoutException as exc:
            raise _Unavailable("timeout") from exc
        except httpx.TransportError as exc:
            raise _Unavailable(f"connection error: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return []
        if response.status_code >= 500:
            raise _Unavailable(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _Refused(f"HTTP {response.status_code}")
        try:
            personen = response.json().get("personen", [])
        except (ValueError, AttributeError) as exc:
            raise _Refused("answer is not the documented JSON") from exc
        if not isinstance(personen, list):
            raise _Refused("answer is not the documented JSON")
        return [p for p in personen if isinstance(p, dict)]
