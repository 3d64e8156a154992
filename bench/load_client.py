"""The load generator's HTTP client: aiohttp, because the measuring instrument must be cheap.

Measured against the bare app on this machine (closed loop, 32 in flight), the load
generator's own CPU per request was 1.9 ms with httpx's default pool, 3.0 ms with the
200-connection pool the bench used, and 0.09 ms with aiohttp (encode/httpx#3215 is the known
issue). On 2 cores the httpx load generator took most of a core: it, not uvicorn, set the
"bare" ceiling (1), and its event loop delayed the answers counted in (5). The service keeps
httpx for its BRP client, where a request's cost is not the point.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

import aiohttp
import orjson

# What a failed request counts as: connection refused or reset, a timeout, a malformed answer.
ClientErrors: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    signaleringen: int  # `aantalSignaleringen` of a 202, else 0


class LoadClient:
    """A keep-alive connection pool to one API process; `post` returns the parts the bench
    counts, read from the whole body (as a sender would)."""

    def __init__(self, base_url: str, *, timeout: float, connections: int = 200) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        self._session = aiohttp.ClientSession(
            # Forget idle connections before uvicorn closes them (its keep-alive is 5 s): after
            # the generator's CPU-bound pauses (building the year's messages) the server's FIN
            # may not be read yet, and a request written on that connection fails. httpx's pool
            # asks the socket before each request (a syscall per pooled connection per request,
            # part of its cost); a shorter keep-alive is the cheap way to the same end.
            connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=2.0),
            timeout=self._timeout,
            # no cookie jar: every request must carry only what the sender sends
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, path: str, *, content: bytes, headers: dict[str, str]) -> Answer:
        assert self._session is not None, "use LoadClient as an async context manager"
        async with self._session.post(self._base_url + path, data=content, headers=headers) as r:
            body = await r.read()
        if r.status != 202:
            return Answer(r.status, 0)
        # a receipt without its count is the service breaking its contract: let it raise
        return Answer(r.status, int(orjson.loads(body).get("aantalSignaleringen", 0)))

    async def get_text(self, path: str) -> str:
        """A GET's body as text (the service's /metrics)."""
        assert self._session is not None, "use LoadClient as an async context manager"
        async with self._session.get(self._base_url + path) as r:
            r.raise_for_status()
            return await r.text()
