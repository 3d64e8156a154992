"""A transaction id per request (the FSC logging extension): the client's `Fsc-Transaction-Id`
(a UUID; anything else gets 400 problem+json) or a new UUIDv7. It is returned in the response's
`Fsc-Transaction-Id`, bound to the structured log lines of the request (`transactionId`) and
stored with a received message (berichten row and verwerkingenlog, koppelpunt.origin)."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koppelpunt.api import problems
from koppelpunt.origin import new_transaction_id, parse_transaction_id

HEADER = b"fsc-transaction-id"


class TransactionId:
    """Pure ASGI middleware: `request.state.transaction_id` and the response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = [v for k, v in scope["headers"] if k == HEADER]
        if given:
            parsed = parse_transaction_id(given[0].decode("latin-1")) if len(given) == 1 else None
            if parsed is None:
                response = problems.problem(
                    400,
                    "Bad Request",
                    "Fsc-Transaction-Id moet één UUID zijn",
                    code="invalid-transaction-id",
                )
                await response(scope, receive, send)
                return
            transaction_id = parsed
        else:
            transaction_id = new_transaction_id()
        scope.setdefault("state", {})["transaction_id"] = transaction_id
        encoded = transaction_id.encode("ascii")

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((HEADER, encoded))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(transactionId=transaction_id):
            await self.app(scope, receive, with_id)
