"""Operators' JSON endpoints (role `operator`): replays, consumer lag, rejected messages and
records, failing signaleringen. Thin layers over koppelpunt.app, like the CLI."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from koppelpunt.api import parameters
from koppelpunt.api.auth import Role, Sender, require_role
from koppelpunt.api.deps import runtime_of, sender_of
from koppelpunt.api.json_body import (
    NO_CONTROL,
    json_body,
    json_request_body,
    optional_json_body,
)
from koppelpunt.app import failing, offsets, rejected
from koppelpunt.app.moments import parse_moment
from koppelpunt.app.rapportage import rapportage
from koppelpunt.app.replay import ReplayRequest, get_replay, list_replays, start_replay
from koppelpunt.errors import KoppelpuntError
from koppelpunt.store import parked
from koppelpunt.store.replays import StoredReplay


def operator(request: Request) -> Sender:
    """The operator this request authenticates as: 401, 403 or 429 otherwise. A dependency of
    every route here, so it runs before FastAPI validates a path or query parameter (an
    unauthenticated client learns nothing from a 400) and before a body is read."""
    sender = sender_of(request)
    require_role(sender, Role.OPERATOR)
    return sender


router = APIRouter(prefix="/v1/beheer", tags=["beheer"], dependencies=[Depends(operator)])
Operator = Annotated[Sender, Depends(operator)]

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or unknown key", **_PROBLEM},
    403: {"description": "not an operator", **_PROBLEM},
}


class InvalidRequestError(KoppelpuntError, ValueError):
    status = 400
    code = "invalid-request"
    title = "Ongeldig verzoek"


def _moment(name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: {exc}") from exc


# --- replays ----------------------------------------------------------------------------------


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Lengths and characters bounded here, so nothing reaches the database that a column
    # cannot hold (PostgreSQL refuses a NUL and an over-long varchar with an error).
    gemeente: str = Field(
        description="CBS gemeentecode, e.g. GM0363",
        examples=["GM0363"],
        pattern=parameters.GEMEENTECODE,
    )
    since: str | None = Field(
        None,
        description=f"from: {parameters.MOMENT_DESCRIPTION}",
        pattern=parameters.MOMENT,
        max_length=64,
    )
    until: str | None = Field(
        None, description="up to, not including", pattern=parameters.MOMENT, max_length=64
    )
    type: str | None = Field(
        None,
        description="only this signalering type, e.g. PROGNOSE",
        max_length=32,
        pattern=r"^[A-Za-z_]+$",
    )
    toTopic: str | None = Field(
        None,
        description="publish here instead of the gemeente topic",
        max_length=249,  # Kafka's longest topic name
        pattern=r"^[A-Za-z0-9._-]+$",  # Kafka's topic name characters
    )
    dryRun: bool = Field(False, description="only count")


def replay_json(replay: StoredReplay) -> dict[str, Any]:
    return {
        "replayId": replay.replay_id,
        "gemeente": replay.gemeentecode,
        "since": replay.since.isoformat() if replay.since else None,
        "until": replay.until.isoformat() if replay.until else None,
        "type": replay.type,
        "toTopic": replay.to_topic,
        "dryRun": replay.dry_run,
        "status": replay.status,
        "totaal": replay.total,
        "gepubliceerd": replay.published,
        "fout": replay.error,
        "aangevraagdDoor": replay.requested_by,
        "aangemaakt": replay.created_at.isoformat(),
        "bijgewerkt": replay.updated_at.isoformat(),
    }


@router.post(
    "/replays",
    status_code=202,
    responses={
        **_AUTH,
        400: _PROBLEM,
        413: _PROBLEM,
        422: {
            "description": "a gemeente not in the gemeente table in use, or a toTopic other "
            "than the gemeente's own topic or its replay topic",
            **_PROBLEM,
        },
    },
    openapi_extra=json_request_body(ReplayBody),
    summary="Start a replay of a gemeente's signaleringen (runs in the background)",
)
async def post_replay(request: Request, sender: Operator) -> JSONResponse:
    body = await json_body(request, ReplayBody)
    runtime = runtime_of(request)
    replay_request = ReplayRequest(
        gemeente=body.gemeente,
        since=_moment("since", body.since),
        until=_moment("until", body.until),
        type=body.type,
        to_topic=body.toTopic,
        dry_run=body.dryRun,
        requested_by=sender.name,
    )
    try:
        replay_request.filter  # noqa: B018 - validates the gemeentecode
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
    replay_id = await start_replay(runtime, replay_request)
    replay = await get_replay(runtime, replay_id)
    return JSONResponse(
        replay_json(replay),
        status_code=202,
        headers={"Location": f"/v1/beheer/replays/{replay_id}"},
    )


@router.get("/replays", responses=_AUTH, summary="Replays, newest first")
async def get_replays(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    found = await list_replays(runtime_of(request), limit=limit)
    return {"replays": [replay_json(r) for r in found]}


@router.get("/replays/{replayId}", responses={**_AUTH, 404: _PROBLEM}, summary="State of a replay")
async def get_replay_state(
    request: Request, replayId: Annotated[str, Path(pattern=parameters.UUID)]
) -> dict[str, Any]:
    return replay_json(await get_replay(runtime_of(request), replayId))


# --- lag --------------------------------------------------------------------------------------


@router.get(
    "/lag",
    responses={**_AUTH, 400: _PROBLEM, 503: _PROBLEM},
    summary="Consumer lag per gemeente topic and group, with the oldest unread signalering",
)
async def get_lag(
    request: Request,
    gemeente: Annotated[
        str | None,
        Query(pattern=parameters.GEMEENTECODE, description="CBS gemeentecode, e.g. GM0363"),
    ] = None,
) -> dict[str, Any]:
    try:
        rows = await offsets.consumer_lag(runtime_of(request).settings, gemeente=gemeente)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
    return {"lag": [r.as_json() for r in rows]}


# --- rejected ---------------------------------------------------------------------------------


@router.get(
    "/afwijzingen",
    responses={**_AUTH, 400: _PROBLEM},
    summary="Rejected messages (id 12) and records (id R34), newest first",
)
async def get_afwijzingen(
    request: Request,
    since: Annotated[
        str | None,
        Query(pattern=parameters.MOMENT, description=parameters.MOMENT_DESCRIPTION),
    ] = None,
    sender: Annotated[
        str | None, Query(pattern=NO_CONTROL, max_length=200, description="a sender's name")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await rejected.list_rejections(
        runtime_of(request), since=_moment("since", since), sender=sender, limit=limit
    )
    return {"afwijzingen": [r.as_json() for r in rows]}


@router.get(
    "/afwijzingen/{afwijzingId}",
    responses={**_AUTH, 404: _PROBLEM},
    summary="One rejection with every reason; raw=true adds the bytes (base64)",
)
async def get_afwijzing(
    request: Request,
    afwijzingId: Annotated[str, Path(pattern=parameters.AFWIJZING_ID)],
    raw: Annotated[bool, Query()] = False,
) -> dict[str, Any]:
    rejection, body = await rejected.get_rejection(runtime_of(request), afwijzingId)
    result = rejection.as_json()
    if raw:
        result["raw"] = base64.b64encode(body).decode("ascii") if body is not None else None
    return result


# --- failing signaleringen ----------------------------------------------------------------------


@router.get(
    "/outbox/failing",
    responses=_AUTH,
    summary="Signaleringen whose publication failed, with attempts and the last error",
)
async def get_failing(
    request: Request,
    gemeente: Annotated[
        str | None,
        Query(pattern=parameters.GEMEENTECODE, description="CBS gemeentecode, e.g. GM0363"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = await failing.list_failing(runtime_of(request), gemeente=gemeente, limit=limit)
    return {"signaleringen": [failing.as_json(r) for r in rows]}


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # 1,000 ids of 36 characters (with quotes and commas 39 KB) fit in
    # KOPPELPUNT_MAX_FORM_BODY_BYTES' default of 64 KiB: the document's limit is reachable.
    signaleringIds: list[Annotated[str, Field(pattern=parameters.UUID)]] | None = Field(
        None, description="default: every failing one", max_length=1_000
    )


@router.post(
    "/outbox/retry",
    responses={**_AUTH, 400: _PROBLEM, 413: _PROBLEM},
    openapi_extra=json_request_body(RetryBody, required=False),
    summary="Make failing signaleringen due for publication now",
)
async def post_retry(request: Request, sender: Operator) -> dict[str, Any]:
    body = await optional_json_body(request, RetryBody)
    ids = body.signaleringIds if body is not None else None
    count = await failing.retry_failing(runtime_of(request), ids, requested_by=sender.name)
    return {"aantal": count}


# --- parked records -----------------------------------------------------------------------------


@router.get(
    "/parked",
    responses=_AUTH,
    summary="Records parked because the woongemeente lookup was unavailable (no BSNs)",
)
async def get_parked(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Oldest message first, then record order; `aantal` counts all of them."""
    async with runtime_of(request).sessions() as session:
        total = await parked.count_parked(session)
        rows = await parked.list_parked(session, limit=limit)
    return {
        "aantal": total,
        "geparkeerd": [
            {
                "berichtId": r.bericht_id,
                "soort": r.soort,
                "recordIndex": r.record_index,
                "ontvangenOp": r.received_at.isoformat(),
                "rulesVersie": r.rules_version,
            }
            for r in rows
        ],
    }


# --- RMC-effectrapportage ---------------------------------------------------------------------


@router.get(
    "/rapportage",
    responses={**_AUTH, 400: _PROBLEM, 422: _PROBLEM},
    summary="Counts for a region's RMC-effectrapportage (no person in it; small cells <N)",
)
async def get_rapportage(
    request: Request,
    sender: Operator,
    rmc_regio: Annotated[
        int, Query(alias="rmcRegio", ge=1, le=999, description="RMC-regio number, e.g. 21")
    ],
    schooljaar: Annotated[
        str, Query(pattern=parameters.SCHOOLJAAR, description="studiejaar, e.g. 2026-2027")
    ],
) -> JSONResponse:
    report = await rapportage(
        runtime_of(request), regio=rmc_regio, schooljaar=schooljaar, actor=sender.name
    )
    return JSONResponse(report, headers={"Cache-Control": "no-store"})
