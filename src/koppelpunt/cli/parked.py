"""`koppelpunt parked list|retry`: records parked because the woongemeente lookup was down."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from koppelpunt.cli._common import ActorOption, PublishOption, actor_name, publish_outbox
from koppelpunt.config import Settings

app = typer.Typer(
    help="Records parked because the woongemeente lookup was unavailable.", no_args_is_help=True
)


@app.command("list")
def list_parked(
    limit: Annotated[int, typer.Option(help="At most this many records.", min=1)] = 100,
) -> None:
    """List parked records (berichtId, record index, soort, received), oldest first; no BSNs."""
    from koppelpunt.store import parked
    from koppelpunt.store.db import create_engine, session_factory, upgrade_sync

    s = Settings()
    upgrade_sync(s.database_url)

    async def main() -> tuple[int, list[parked.ParkedRecord]]:
        engine = create_engine(s.database_url)
        try:
            async with session_factory(engine)() as session:
                return await parked.count_parked(session), await parked.list_parked(
                    session, limit=limit
                )
        finally:
            await engine.dispose()

    total, rows = asyncio.run(main())
    for row in rows:
        typer.echo(
            f"{row.bericht_id}\t{row.record_index}\t{row.soort}\t{row.received_at.isoformat()}"
        )
    typer.echo(f"{total} parked records")


@app.command("retry")
def retry(
    limit: Annotated[int, typer.Option(help="At most this many records.", min=1)] = 10_000,
    publish: PublishOption = False,
    actor: ActorOption = None,
) -> None:
    """Decide parked records again now (the outbox relay publishes what they yield).

    Exit code 1 when records stay parked because the lookup is still unavailable.
    """
    from koppelpunt.app.audit import PARKED_RETRY, log_action, parked_retry_details
    from koppelpunt.app.parked import retry_parked
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.db import upgrade_sync

    s = Settings()
    upgrade_sync(s.database_url)

    async def main() -> int:
        rt = await Runtime.start(s)
        try:
            result = await retry_parked(rt, limit=limit)
            await log_action(
                rt, actor_name(actor), PARKED_RETRY, parked_retry_details(result, limit=limit)
            )
            typer.echo(
                f"decided {result.decided}, still parked {result.still_parked}, "
                f"{result.signaleringen} new signaleringen"
            )
            if result.signaleringen and publish:
                typer.echo(f"published {await publish_outbox(rt)} signaleringen")
            return 1 if result.still_parked else 0
        finally:
            await rt.close()

    raise typer.Exit(asyncio.run(main()))
