"""One cap on every request body, enforced where the body is read: before any route sees it.

Starlette reads a form or JSON body whole (Request.body), and FastAPI reads a body parameter
before it runs dependencies, so a cap inside a route comes too late. This pure-ASGI middleware
refuses with 413 problem+json and `Connection: close`:

- at once, without reading, when Content-Length is larger than the cap;
- as soon as a streamed (chunked) body passes the cap: the application then sees a disconnect,
  and nothing it sends afterwards goes out.

The cap is KOPPELPUNT_MAX_FORM_BODY_BYTES. The two XML endpoints are exempt here: they refuse
above KOPPELPUNT_MAX_BODY_BYTES themselves (routes/berichten.py), because each refusal is kept
in the afwijzingen with its sender, which needs the key checked first.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koppelpunt.api import problems
from koppelpunt.errors import PayloadTooLargeError

log = structlog.get_logger(__name__)

# Set in the scope when this middleware has answered: a disconnect the application sees
# afterwards is this refusal, not the client going away (problems.py logs it accordingly).
REFUSED = problems.BODY_REFUSED


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = _content_length(scope)
        if declared is not None:
            if declared > limit:
                await self._refuse(scope, send, f"content-length {declared}")
            else:
                # The server ends the body at its Content-Length: nothing to count.
                await self.app(scope, receive, send)
            return
        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await self._refuse(scope, send, f"body > {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, tracked_send)

    async def _refuse(self, scope: Scope, send: Send, reason: str) -> None:
        scope[REFUSED] = True
        log.info("request_body_too_large", path=scope["path"], reason=reason, limit=self.limit)
        error = PayloadTooLargeError(
            f"de body is groter dan {self.limit} bytes", maxBytes=self.limit
        )
        response = problems.from_error(error, scope["path"])
        response.headers["connection"] = "close"

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The HTTP parser has checked it is digits; anything else is no declaration.
            return int(value) if value.isascii() and value.isdigit() else None
    return None
