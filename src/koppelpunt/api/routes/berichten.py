"""Senders' endpoints: post prognoses and aanmeldstatussen (XML), read a receipt back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from koppelpunt.api import parameters
from koppelpunt.api.auth import Role, Sender, require_role
from koppelpunt.api.charset import UnknownCharset, check_known, conflict, declared_charset
from koppelpunt.api.deps import runtime_of, sender_of
from koppelpunt.app.receive import receive, record_refusal
from koppelpunt.errors import (
    ForbiddenError,
    InvalidMessageError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from koppelpunt.model import Soort
from koppelpunt.origin import Origin
from koppelpunt.runtime import Runtime
from koppelpunt.store import berichten

router = APIRouter(prefix="/v1", tags=["berichten"])


class CharsetConflictError(InvalidMessageError):
    """The Content-Type's charset and the document's encoding read the bytes differently."""

    code = "charset-conflict"


XML_TYPES = {"application/xml", "text/xml"}
# The endpoints that take XML and cap their body themselves (KOPPELPUNT_MAX_BODY_BYTES, each
# refusal recorded); api/body_limit.py caps every other body.
XML_ENDPOINTS = frozenset({"/v1/prognoses", "/v1/aanmeldstatussen"})


class Afgewezen(BaseModel):
    index: int = Field(description="0-based position of the record in the message")
    reden: str
    locatie: str | None = None


class Ontvangstbewijs(BaseModel):
    """The receipt: what became of each record of the message."""

    berichtId: str
    soort: str
    aantalRecords: int
    aantalSignaleringen: int = Field(description="new signaleringen stored for publication")
    gefilterd: dict[str, int] = Field(
        description="per reason (leeftijd, startkwalificatie, geenBsn, geenWoongemeente)"
    )
    geparkeerd: int = Field(0, description="records waiting for the woongemeente lookup")
    afgewezen: list[Afgewezen]


_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_XML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One message, valid against its XSD: schemas/prognose.xsd or "
        "schemas/aanmeldstatus.xsd in the repository (docs/leveranciers.md shows examples)",
        "content": {"application/xml": {"schema": {"type": "string", "format": "xml"}}},
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Ontvangstbewijs, "description": "same berichtId and bytes: original receipt"},
    400: {
        "description": "not well-formed, hostile or XSD-invalid; or a charset parameter that "
        "contradicts the document's encoding",
        **_PROBLEM,
    },
    401: {"description": "missing or unknown key", **_PROBLEM},
    403: {"description": "sender may not post this kind of message", **_PROBLEM},
    409: {"description": "berichtId already used with other content", **_PROBLEM},
    413: {"description": "body larger than KOPPELPUNT_MAX_BODY_BYTES", **_PROBLEM},
    415: {"description": "content type not application/xml, or unknown charset", **_PROBLEM},
    503: {"description": "database unavailable; retry after Retry-After", **_PROBLEM},
}


async def _read_body(request: Request, runtime: Runtime, sender: Sender, soort: Soort) -> bytes:
    """The body, refused with 415/413 before it is read when type or size is wrong."""
    content_type = request.headers.get("content-type")

    async def refuse(status_code: int, reason: str) -> None:
        await record_refusal(
            runtime,
            sender=sender.name,
            soort=soort,
            status_code=status_code,
            reasons=[{"reden": reason}],
            raw=None,
            content_type=content_type,
        )

    media = (content_type or "").split(";")[0].strip().lower()
    if media not in XML_TYPES:
        await refuse(415, f"content-type {media or '(geen)'}")
        raise UnsupportedMediaTypeError(
            f"verwacht application/xml, kreeg {media or 'geen content-type'}"
        )
    charset = declared_charset(content_type)
    if charset is not None:
        try:
            check_known(charset)
        except UnknownCharset:
            await refuse(415, "onbekende charset in content-type")
            raise UnsupportedMediaTypeError(
                "onbekende charset in het Content-Type; gebruik utf-8 of laat hem weg"
            ) from None
    limit = runtime.settings.max_body_bytes
    declared = request.headers.get("content-length")
    too_large = PayloadTooLargeError(f"het bericht is groter dan {limit} bytes", maxBytes=limit)
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        await refuse(413, f"content-length {declared} > {limit}")
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await refuse(413, f"body > {limit} bytes")
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _check_charset(
    request: Request, runtime: Runtime, sender: Sender, soort: Soort, body: bytes
) -> None:
    """Refuse (400) a charset parameter that makes the bytes other characters than the
    document's own encoding does (api/charset.py); the refusal is recorded with the bytes."""
    content_type = request.headers.get("content-type")
    charset = declared_charset(content_type)
    reason = conflict(body, charset) if charset is not None else None
    if reason is None:
        return
    await record_refusal(
        runtime,
        sender=sender.name,
        soort=soort,
        status_code=400,
        reasons=[{"reden": reason}],
        raw=body,
        content_type=content_type,
    )
    raise CharsetConflictError(reason)


def _trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent header (version-traceid-parentid-flags)."""
    if not traceparent:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and all(c in "0123456789abcdef" for c in parts[1]):
        return parts[1]
    return None


async def _post(
    request: Request, soort: Soort, role: Role, traceparent: str | None
) -> JSONResponse:
    runtime = runtime_of(request)
    sender = sender_of(request)
    require_role(sender, role)
    body = await _read_body(request, runtime, sender, soort)
    await _check_charset(request, runtime, sender, soort, body)
    with runtime.metrics.receive_seconds.labels(soort.value).time():
        received = await receive(
            runtime,
            body,
            soort,
            sender.name,
            content_type=request.headers.get("content-type"),
            trace_id=_trace_id(traceparent),
            origin=Origin(sender.oin, request.state.transaction_id),
        )
    return JSONResponse(received.receipt, status_code=received.status_code)


@router.post(
    "/prognoses",
    status_code=202,
    response_model=Ontvangstbewijs,
    responses=_RESPONSES,
    openapi_extra=_XML_BODY,
    summary="Prognoses van het Koppelpunt VO ontvangen (rol vo)",
)
async def post_prognoses(
    request: Request, traceparent: Annotated[str | None, Header()] = None
) -> JSONResponse:
    return await _post(request, Soort.PROGNOSE, Role.VO, traceparent)


@router.post(
    "/aanmeldstatussen",
    status_code=202,
    response_model=Ontvangstbewijs,
    responses=_RESPONSES,
    openapi_extra=_XML_BODY,
    summary="Aanmeldstatussen van het Koppelpunt MBO ontvangen (rol mbo)",
)
async def post_aanmeldstatussen(
    request: Request, traceparent: Annotated[str | None, Header()] = None
) -> JSONResponse:
    return await _post(request, Soort.AANMELDSTATUS, Role.MBO, traceparent)


@router.get(
    "/berichten/{berichtId}",
    response_model=Ontvangstbewijs,
    responses={401: _PROBLEM, 403: _PROBLEM, 404: _PROBLEM},
    summary="Het ontvangstbewijs van een bericht (de afzender zelf, of rol operator)",
)
async def get_bericht(
    request: Request,
    # A dependency, so the key is checked before the path parameter: 401 before 400.
    sender: Annotated[Sender, Depends(sender_of)],
    berichtId: Annotated[str, Path(pattern=parameters.TOKEN64)],
) -> JSONResponse:
    runtime = runtime_of(request)
    async with runtime.sessions() as session:
        stored = await berichten.find_bericht(session, berichtId)
    if stored is None:
        raise NotFoundError(f"geen bericht met berichtId {berichtId}")
    if sender.role is not Role.OPERATOR and stored.sender != sender.name:
        raise ForbiddenError("alleen de afzender of een operator mag dit ontvangstbewijs zien")
    return JSONResponse(stored.receipt)
