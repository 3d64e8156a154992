"""RFC 9457 problem+json for every error: one renderer, stable codes, never a bare 500 page.

Expected refusals are KoppelpuntError subclasses carrying their status. Database outages map to
503 with Retry-After (the sender retries; no false receipt). Anything else is a fault: logged
with its traceback (no BSN: the message body is never logged) and answered with a generic 500.

Every text of every problem body goes through `mask_error_text` (koppelpunt.masking): the
texts name places, not values, and a run of nine or more digits in one (a BSN in a query
parameter echoed by a framework, in a path, in a berichtId) is masked on the way out.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from koppelpunt.errors import KoppelpuntError, ServiceUnavailableError, TooManyRequestsError
from koppelpunt.masking import mask_json

# The scope key api/body_limit.py sets when it has answered 413 itself.
BODY_REFUSED = "koppelpunt.body_refused"

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://koppelpunt.vva.nl/problemen/"
RETRY_AFTER_SECONDS = "5"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(
        mask_json(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def from_error(exc: KoppelpuntError, instance: str | None = None) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if exc.status == 503 else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, TooManyRequestsError):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        code=exc.code,
        instance=instance,
        headers=headers,
        **exc.extra,
    )


def allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method the API documents for this path. Starlette names only the methods of the
    first route whose path matched, so a path with a GET and a POST route answered a DELETE
    with `Allow: POST`. Read from the OpenAPI document (public, and the contract anyway)."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in operations if m in _HTTP_METHODS}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def install(app: FastAPI) -> None:
    @app.exception_handler(KoppelpuntError)
    async def _koppelpunt(request: Request, exc: KoppelpuntError) -> JSONResponse:
        return from_error(exc, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Niet gevonden", 405: "Methode niet toegestaan"}
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(app, request)}
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Fout"),
            str(exc.detail),
            code=f"http-{exc.status_code}",
            instance=request.url.path,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fouten = [
            {"locatie": "/".join(str(p) for p in err.get("loc", ())), "reden": err.get("msg")}
            for err in exc.errors()
        ]
        return problem(
            400,
            "Ongeldig verzoek",
            "het verzoek klopt niet",
            code="invalid-request",
            instance=request.url.path,
            fouten=fouten,
        )

    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database_unavailable", error=type(exc).__name__, path=request.url.path)
        return from_error(
            ServiceUnavailableError("de database is tijdelijk niet bereikbaar; probeer later"),
            request.url.path,
        )

    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(DBAPIError, _database_down)
    app.add_exception_handler(PoolTimeoutError, _database_down)
    app.add_exception_handler(ConnectionError, _database_down)
    app.add_exception_handler(TimeoutError, _database_down)

    @app.exception_handler(ClientDisconnect)
    async def _disconnected(request: Request, exc: ClientDisconnect) -> Response:
        """The client went away before its body was in (or the body limit or body timeout cut
        it off): nothing to answer and no fault of ours."""
        if not request.scope.get(BODY_REFUSED):
            log.info("client_disconnected", path=request.url.path)
        return Response(status_code=400)  # goes nowhere: the connection is gone

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_fault", path=request.url.path)
        return problem(
            500,
            "Interne fout",
            "er ging iets mis bij koppelpunt; het is gelogd",
            code="internal",
            instance=request.url.path,
        )
