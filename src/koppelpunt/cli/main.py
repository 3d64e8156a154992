"""The `koppelpunt` command: English verbs, the domain's Dutch nouns.

    koppelpunt serve            run the HTTP API (and the in-process outbox relay)
    koppelpunt relay            run the outbox relay on its own
    koppelpunt topics ensure    create one Kafka topic per gemeente
    koppelpunt brp import FILE  fill the local woongemeente register
    koppelpunt db upgrade       apply database migrations
    koppelpunt peildatum        run the peildatum checks of a date (--datum, --dry-run)
    koppelpunt parked list|retry  records parked while the lookup was unavailable
    koppelpunt inzage --bsn N   AVG inzage: everything stored about one person
    koppelpunt gemeenten import FILE | list    the RvIG Tabel 33 gemeente table in use
    koppelpunt rules check DIR | dry-run DIR   validate / try out a candidate rules directory
    koppelpunt access grant NAME --gemeente GM0363   vendor read access (also revoke, list)
    koppelpunt replay | offsets | lag | rejected | outbox | purge   operators' tasks
    koppelpunt aanmeldingen buiten-flow   aanmeldingen flagged outside the legal status flow

Every command reads the same Settings (environment, prefix KOPPELPUNT_).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Annotated

import typer

from koppelpunt.cli import (
    aanmeldingen,
    access,
    brp,
    gemeenten,
    inzage,
    offsets,
    outbox,
    parked,
    peildatum,
    purge,
    rapportage,
    rejected,
    replay,
    rmc,
    rules,
    tls,
    topics,
)
from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError
from koppelpunt.logging import configure_logging

app = typer.Typer(
    name="koppelpunt",
    help="Koppelpunt gemeenten (VVA): receive prognoses and aanmeldstatussen, filter them, and "
    "publish signaleringen on one Kafka topic per gemeente. Configuration comes from "
    "KOPPELPUNT_* environment variables (docs/configuration.md).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.callback()
def _console_logging() -> None:
    """Every command logs in one format, to stderr: the console renderer, so stdout holds only
    the command's own output (a connection file, JSON, a table). `serve` and `relay` switch to
    KOPPELPUNT_LOG_JSON for their log shippers when they start."""
    s = settings()
    configure_logging(s.log_level, json=False)
    # Alembic narrates every migration step at INFO: noise around a command's output.
    logging.getLogger("alembic").setLevel(logging.WARNING)


app.add_typer(db_app, name="db")
app.add_typer(topics.app, name="topics")
app.add_typer(brp.app, name="brp")
app.add_typer(parked.app, name="parked")
app.command("peildatum")(peildatum.peildatum)
app.command("inzage")(inzage.inzage)
app.command("rapportage")(rapportage.rapportage)
app.add_typer(gemeenten.app, name="gemeenten")
app.add_typer(rmc.app, name="rmc")
app.add_typer(rules.app, name="rules")
app.add_typer(access.app, name="access")
app.command("replay")(replay.replay)
app.command("offsets")(offsets.offsets)
app.command("lag")(offsets.lag)
app.add_typer(rejected.app, name="rejected")
app.add_typer(outbox.app, name="outbox")
app.command("purge")(purge.purge_command)
app.add_typer(aanmeldingen.app, name="aanmeldingen")
app.add_typer(tls.app, name="tls")


def settings() -> Settings:
    return Settings()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Overrides KOPPELPUNT_HTTP_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides KOPPELPUNT_HTTP_PORT.")] = None,
) -> None:
    """Serve the HTTP API. Applies pending migrations first, so a fresh database just works.

    The server and its limits (header size and time, body time, keep-alive, connections,
    trusted proxies) come from koppelpunt.api.server."""
    from koppelpunt.api.app import create_app
    from koppelpunt.api.server import server
    from koppelpunt.store.db import upgrade_sync

    s = settings()
    s.refuse_public_log_key()  # before anything is migrated or listened on (exit code 2)
    s.refuse_public_beheer_key()
    configure_logging(s.log_level, s.log_json)
    upgrade_sync(s.database_url, create=True)
    try:
        application = create_app(s, freeze_heap=True)
    except ConfigurationError as exc:
        typer.echo(f"koppelpunt: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    http = server(application, s, host=host, port=port)
    with contextlib.suppress(KeyboardInterrupt):
        http.run()
    if not http.started:
        raise typer.Exit(3)  # could not bind or start (uvicorn's own exit code for this)


@app.command()
def relay(
    once: Annotated[bool, typer.Option("--once", help="Publish what is due, then exit.")] = False,
) -> None:
    """Run the outbox relay standalone (set KOPPELPUNT_RELAY_ENABLED=false on the API then).

    Several relays may run against one PostgreSQL database: rows are claimed with
    FOR UPDATE SKIP LOCKED, so no signalering is sent by two relays at once. On PostgreSQL
    the relay LISTENs for the API processes' commits (NOTIFY) and publishes at once; polling
    every KOPPELPUNT_RELAY_POLL_SECONDS stays as the fallback.
    """
    from koppelpunt.kafka.publisher import KafkaPublisher
    from koppelpunt.kafka.relay import OutboxRelay
    from koppelpunt.runtime import Runtime, frozen_heap
    from koppelpunt.store.db import upgrade_sync
    from koppelpunt.store.outbox_listener import OutboxListener

    s = settings()
    # It logs every publication with the BSN encrypted: refuse the public key at start, not
    # after the first batch went out.
    s.refuse_public_log_key()
    configure_logging(s.log_level, s.log_json)
    upgrade_sync(s.database_url)

    async def main() -> int:
        rt = Runtime.build(s)
        worker = OutboxRelay(s, rt.sessions, KafkaPublisher(s), rt.clock, rt.metrics)
        frozen_heap()  # start-up heap out of the collector's reach; full collections rare
        try:
            if once:
                n = await worker.drain()
                typer.echo(f"published {n} signaleringen")
                return 0 if worker.last_error is None else 1
            if s.uses_postgresql:
                listener = OutboxListener(s.database_url, worker.wake)
                listener.start()
                try:
                    await worker.run()
                finally:
                    await listener.stop()
            else:
                await worker.run()
            return 0
        finally:
            await worker.stop()
            await rt.close()

    try:
        raise typer.Exit(asyncio.run(main()))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations to KOPPELPUNT_DATABASE_URL (creating a SQLite file).

    Only this and `serve` create a database; every other command refuses to run without one.
    """
    from koppelpunt.store.db import upgrade_sync

    s = settings()
    upgrade_sync(s.database_url, create=True)
    typer.echo("database is up to date")


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        typer.echo(f"koppelpunt: {exc.detail}", err=True)
        sys.exit(2)
