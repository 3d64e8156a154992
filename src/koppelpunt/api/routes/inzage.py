"""Operator endpoint for an AVG inzage: POST, so the BSN travels in the body, never in a URL."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from koppelpunt.api import parameters
from koppelpunt.api.auth import Role, require_role
from koppelpunt.api.deps import runtime_of, sender_of
from koppelpunt.api.json_body import json_body, json_request_body
from koppelpunt.app.inzage import run_inzage, to_json

router = APIRouter(prefix="/v1/beheer", tags=["beheer"])

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


class InzageVerzoek(BaseModel):
    bsn: str = Field(
        description="BSN of the person: 9 digits that pass the elfproef (else 400)",
        pattern=parameters.BSN,
    )


@router.post(
    "/inzage",
    responses={400: _PROBLEM, 401: _PROBLEM, 403: _PROBLEM, 413: _PROBLEM},
    openapi_extra=json_request_body(InzageVerzoek),
    summary="AVG-inzage: alles wat over één persoon is opgeslagen en verstrekt (rol operator)",
)
async def post_inzage(request: Request) -> JSONResponse:
    sender = sender_of(request)  # key and role before the body is read
    require_role(sender, Role.OPERATOR)
    verzoek = await json_body(request, InzageVerzoek)
    runtime = runtime_of(request)
    result = await run_inzage(runtime.sessions, runtime.settings, verzoek.bsn, sender.name)
    return JSONResponse(to_json(result), headers={"Cache-Control": "no-store"})
