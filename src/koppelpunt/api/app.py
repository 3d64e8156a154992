"""create_app(settings): the FastAPI application, its lifespan and its state.

The lifespan builds the runtime (engine, schemas, rules, gemeenten, lookup), the Kafka publisher
and the in-process outbox relay, and tears them down in reverse order. Nothing is imported as a
global, so tests can start several differently configured apps in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypedDict

import structlog
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from koppelpunt.api import openapi_doc, problems
from koppelpunt.api.auth import AuthThrottle, SenderRegistry
from koppelpunt.api.body_limit import BodyLimit
from koppelpunt.api.design_rules import API_VERSION, ApiVersionHeader, openapi_router
from koppelpunt.api.request_target import RequestTarget
from koppelpunt.api.routes import beheer, beheer_page, berichten, contract, health, inzage
from koppelpunt.api.transaction import TransactionId
from koppelpunt.app.scheduler import Scheduler
from koppelpunt.config import Settings
from koppelpunt.kafka.publisher import KafkaPublisher, Publisher
from koppelpunt.kafka.relay import OutboxRelay
from koppelpunt.runtime import Runtime, frozen_heap, thawed_heap
from koppelpunt.store.verwerkingenlog import LogCipher

log = structlog.get_logger(__name__)


class State(TypedDict):
    runtime: Runtime
    senders: SenderRegistry
    publisher: Publisher
    relay: OutboxRelay | None


def create_app(
    settings: Settings, runtime: Runtime | None = None, *, freeze_heap: bool = False
) -> FastAPI:
    """The app. `freeze_heap` (koppelpunt serve) takes what start-up allocated out of the
    garbage collector's reach and makes full collections rare (runtime.frozen_heap): fewer,
    shorter pauses under load."""
    settings.refuse_public_log_key()  # unless KOPPELPUNT_DEVELOPMENT_MODE
    settings.refuse_public_beheer_key()  # the same rule for the /beheer signing key
    senders = SenderRegistry.load(  # fail fast on a bad file
        settings.senders_file, throttle=AuthThrottle.from_settings(settings)
    )
    LogCipher.from_settings(settings)  # fail fast on a bad log encryption key
    if settings.uses_public_log_key:
        log.warning(
            "log_encryption_key_is_dev_default",
            hint="KOPPELPUNT_DEVELOPMENT_MODE is set: the log key is public (dev/tests only)",
        )
    if settings.uses_public_beheer_key:
        log.warning(
            "beheer_secret_key_is_dev_default",
            hint="KOPPELPUNT_DEVELOPMENT_MODE is set: /beheer cookies can be signed by anyone",
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        rt = runtime or Runtime.build(settings)
        await rt.load_gemeenten()  # the newest imported gemeente table, if any
        publisher = KafkaPublisher(settings)
        relay: OutboxRelay | None = None
        task: asyncio.Task[None] | None = None
        if settings.relay_enabled:
            relay = OutboxRelay(settings, rt.sessions, publisher, rt.clock, rt.metrics)
            rt.on_outbox = relay.wake
            task = asyncio.create_task(relay.run(), name="outbox-relay")
        app.state.relay = relay
        scheduler: Scheduler | None = None
        scheduler_task: asyncio.Task[None] | None = None
        if settings.scheduler_enabled:
            scheduler = Scheduler(rt)
            scheduler_task = asyncio.create_task(scheduler.run(), name="scheduler")
        app.state.scheduler = scheduler
        purger = _start_purge(rt, settings)
        thresholds = frozen_heap() if freeze_heap else None
        try:
            yield {"runtime": rt, "senders": senders, "publisher": publisher, "relay": relay}
        finally:
            if thresholds is not None:
                thawed_heap(thresholds)
            if rt.group_commit is not None:
                # The server has finished its requests by now: nothing is queued.
                await rt.group_commit.close()
            await _stop_operations(purger)
            if scheduler is not None and scheduler_task is not None:
                scheduler.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await scheduler_task
            if relay is not None and task is not None:
                await relay.stop()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            else:
                with contextlib.suppress(Exception):
                    await publisher.stop()
            if runtime is None:
                await rt.close()

    # The /docs and /redoc pages load Swagger UI and ReDoc from the package, not from a CDN,
    # so they work on a closed network (Diginetwerk) too.
    app = FastAPIOffline(
        static_url="/docs-static",
        title="Koppelpunt gemeenten (VVA)",
        version=API_VERSION,
        contact=_contact(settings),
        # /core/no-trailing-slash: `/v1/prognoses/` is not a second name of `/v1/prognoses`.
        redirect_slashes=False,
        summary="Ontvangt prognoses en aanmeldstatussen, filtert en publiceert signaleringen "
        "per gemeente op Kafka.",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "berichten", "description": "Voor de koppelpunten VO en MBO"},
            {"name": "beheer", "description": "Health, readiness en metrics"},
            {"name": "leveranciers", "description": "Het AsyncAPI-contract voor afnemers"},
        ],
    )
    problems.install(app)
    openapi_doc.install(app)
    # Every body but the XML messages' is capped before a route (or FastAPI) reads it.
    app.add_middleware(
        BodyLimit, limit=settings.max_form_body_bytes, exempt=berichten.XML_ENDPOINTS
    )
    app.add_middleware(RequestTarget)  # no control characters in path or query
    app.add_middleware(TransactionId)  # Fsc-Transaction-Id: given or new, in every answer
    app.add_middleware(ApiVersionHeader)  # outermost: every answer carries API-Version
    app.include_router(openapi_router(app))
    app.include_router(berichten.router)
    app.include_router(health.router)
    app.include_router(inzage.router)
    app.include_router(contract.router)
    app.include_router(beheer.router)
    app.include_router(beheer_page.router)
    return app


def _contact(settings: Settings) -> dict[str, str]:
    """OpenAPI info.contact (ADR /core/doc-openapi-contact): who runs this instance."""
    contact = {"name": settings.api_contact_name}
    if settings.api_contact_email:
        contact["email"] = settings.api_contact_email
    if settings.api_contact_url:
        contact["url"] = settings.api_contact_url
    return contact


def _start_purge(runtime: Runtime, settings: Settings) -> asyncio.Task[None] | None:
    """The daily retention purge (KOPPELPUNT_RETENTION_PURGE_INTERVAL_HOURS; 0 = off)."""
    from koppelpunt.app.retention import purge_periodically

    interval = settings.retention_purge_interval_hours
    if interval <= 0:
        return None
    return asyncio.create_task(purge_periodically(runtime, interval), name="retention-purge")


async def _stop_operations(purger: asyncio.Task[None] | None) -> None:
    """Stop the purge and background replays (these resume with `koppelpunt replay`)."""
    from koppelpunt.app.replay import cancel_background_replays

    if purger is not None:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
    await cancel_background_replays()
