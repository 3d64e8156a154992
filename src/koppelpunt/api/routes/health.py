"""Probes and metrics for the platform: liveness, readiness (database + Kafka), Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from koppelpunt.api.deps import runtime_of
from koppelpunt.store import outbox
from koppelpunt.store.db import ping as db_ping

router = APIRouter(tags=["beheer"])


@router.get("/livez", summary="The process is alive")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database and Kafka reachable (503 otherwise)")
async def readyz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    publisher = request.state.publisher
    database = await db_ping(runtime.engine)
    kafka = await publisher.ping(timeout=2.0) if publisher is not None else False
    ready = database and kafka
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "database": database, "kafka": kafka},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": "5"},
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    try:
        async with runtime.sessions() as session:
            runtime.metrics.outbox_backlog.set(await outbox.backlog(session))
    except Exception:  # noqa: S110 - metrics must answer even when the database is down
        pass
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
