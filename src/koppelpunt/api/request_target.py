"""Control characters in the path or the query are refused with 400, before any route.

No identifier, date, code or name of this service contains one, and PostgreSQL can neither
store nor compare a NUL in text: asyncpg raises, which would reach the client as a 503
("database unavailable") or a 500 instead of what it is, a bad request. JSON bodies get the
same rule per field (api/json_body.py `Text`).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from koppelpunt.api import problems
from koppelpunt.api.json_body import CONTROL_CHARACTERS

# A control character in the query string, raw or percent-encoded (%00-%1F, %7F).
_QUERY_CONTROL = re.compile(rb"[\x00-\x1f\x7f]|%(?:[01][0-9a-fA-F]|7[fF])")


class RequestTarget:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            CONTROL_CHARACTERS.search(scope["path"])
            or _QUERY_CONTROL.search(scope.get("query_string", b""))
        ):
            response = problems.problem(
                400,
                "Ongeldig verzoek",
                "het pad of de query bevat een stuurteken",
                code="invalid-request",
                instance=None,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
