"""Probes and metrics for the platform: liveness, readiness (database takes writes, Kafka),
Prometheus."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from koppelpunt.api.deps import runtime_of
from koppelpunt.store import outbox
from koppelpunt.store.db import WriteProbe
from koppelpunt.store.db import ping as db_ping

router = APIRouter(tags=["beheer"])


@router.get("/livez", summary="The process is alive")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


def _write_probe(request: Request) -> WriteProbe:
    """The app's write probe (its cached result is per app), made at the first probe."""
    state = request.app.state
    probe: WriteProbe | None = getattr(state, "write_probe", None)
    if probe is None:
        runtime = runtime_of(request)
        settings = runtime.settings
        probe = WriteProbe(
            runtime.engine,
            timeout=settings.readiness_write_timeout_seconds,
            interval=settings.readiness_write_interval_seconds,
        )
        state.write_probe = probe
    return probe


async def _kafka(request: Request) -> bool:
    publisher = request.state.publisher
    return await publisher.ping(timeout=2.0) if publisher is not None else False


@router.get(
    "/readyz", summary="Database reachable and taking writes, Kafka reachable (503 otherwise)"
)
async def readyz(request: Request) -> JSONResponse:
    runtime = runtime_of(request)
    database, writable, kafka = await asyncio.gather(
        db_ping(runtime.engine), _write_probe(request).writable(), _kafka(request)
    )
    body: dict[str, object] = {
        "database": database,
        "databaseWritable": writable,
        "kafka": kafka,
    }
    ready = database and writable and kafka
    relay = getattr(request.state, "relay", None)
    if relay is not None:
        # Kafka can answer metadata and still refuse every write (fewer in-sync replicas
        # than min.insync.replicas): the relay's last attempt is the evidence. Receipts
        # go on (the outbox holds the backlog), but this node cannot deliver: not ready.
        error: str | None = relay.last_error
        body["publishing"] = error is None
        body["relayError"] = error
        ready = ready and error is None
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **body},
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
