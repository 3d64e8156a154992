"""What the operator commands share: settings, a runtime for one command, output helpers."""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from koppelpunt.app.moments import parse_moment
from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError
from koppelpunt.pipeline.gemeenten import GemeenteTable

if TYPE_CHECKING:  # the runtime loads schemas, rules and drivers: imported when a command runs
    from koppelpunt.runtime import Runtime

T = TypeVar("T")


def operator_name() -> str:
    """Who ran the command, for the replay record and the logs ('cli:<login>')."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# Every operator command that changes something takes --actor (logged in the verwerkingenlog).
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor", help="Who does this (logged in the verwerkingenlog); default: cli:<OS user>."
    ),
]


# Commands that fill the outbox (peildatum, parked retry) can also publish it themselves.
PublishOption = Annotated[
    bool,
    typer.Option(
        "--publish",
        help="Also publish the outbox before exiting (when no service/relay is running).",
    ),
]


async def publish_outbox(runtime: Runtime) -> int:
    """Drain the outbox once with a relay of this command's own; returns how many it sent."""
    from koppelpunt.kafka.publisher import KafkaPublisher
    from koppelpunt.kafka.relay import OutboxRelay

    s = runtime.settings
    relay = OutboxRelay(s, runtime.sessions, KafkaPublisher(s), runtime.clock, runtime.metrics)
    try:
        return await relay.drain()
    finally:
        await relay.stop()


def actor_name(actor: str | None) -> str:
    """The --actor given, else the OS user as 'cli:<login>'."""
    return actor.strip() if actor and actor.strip() else operator_name()


def log_cli_action(
    actor: str,
    action: str,
    details: dict[str, Any],
    *,
    status_code: str = "OK",
    settings: Settings | None = None,
) -> None:
    """Log an operator action of a command that has no runtime of its own (e.g. access)."""
    from koppelpunt.app.audit import log_action
    from koppelpunt.store.db import create_engine, session_factory, upgrade_sync

    s = settings or Settings()
    upgrade_sync(s.database_url)

    async def main() -> None:
        engine = create_engine(s.database_url)
        try:
            await log_action(
                session_factory(engine), actor, action, details, status_code=status_code
            )
        finally:
            await engine.dispose()

    asyncio.run(main())


def gemeenten_in_use(settings: Settings) -> GemeenteTable:
    """The gemeente table in use (the newest `gemeenten import`, else the packaged file), for
    commands that have no runtime of their own (access, topics)."""
    from koppelpunt.store.db import create_engine, session_factory, upgrade_sync
    from koppelpunt.store.gemeenten import gemeente_table_in_use

    upgrade_sync(settings.database_url)

    async def main() -> GemeenteTable:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                in_use = await gemeente_table_in_use(session, settings.gemeenten_file)
        finally:
            await engine.dispose()
        return in_use.table

    return asyncio.run(main())


def moment_option(value: str | None) -> datetime | None:
    """A typer callback turning --since/--until text into an aware datetime."""
    if value is None:
        return None
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def run_with_runtime(work: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    """Build the runtime (migrating first), run `work`, close; KoppelpuntError -> exit 1.

    Says on stderr which database it reads: a command run from another directory (or with
    another KOPPELPUNT_DATABASE_URL) than meant shows it at once."""
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.db import describe_database, upgrade_sync

    settings = Settings()
    typer.echo(f"database: {describe_database(settings.database_url)}", err=True)
    if migrate:
        upgrade_sync(settings.database_url)

    async def main() -> T:
        runtime = Runtime.build(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except KoppelpuntError as exc:
        typer.echo(f"koppelpunt: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"
