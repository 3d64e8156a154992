"""`koppelpunt peildatum --datum YYYY-MM-DD [--dry-run]`: run the peildatum checks of a date."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated

import typer

from koppelpunt.cli._common import ActorOption, PublishOption, actor_name, publish_outbox
from koppelpunt.config import Settings


def _date(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def peildatum(
    datum: Annotated[
        str, typer.Option("--datum", metavar="YYYY-MM-DD", help="The peildatum (e.g. 2027-04-01).")
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show what would be signalled; write nothing (but the verwerkingenlog line).",
        ),
    ] = False,
    publish: PublishOption = False,
    actor: ActorOption = None,
) -> None:
    """Run the checks whose date is --datum (NIET_AANGEMELD on the aanmeld-peildatum,
    NIET_INGESCHREVEN on the teldatum, per routing_rules/) and print the new signaleringen per
    gemeente and type.

    Signalering ids are deterministic: a second run finds everything stored and adds nothing.
    New signaleringen go into the outbox, which the running service's relay (or `koppelpunt
    relay`) publishes; with --publish this command publishes the outbox itself before exiting.
    """
    day = _date(datum)
    from koppelpunt.app.audit import PEILDATUM, log_action, peildatum_details
    from koppelpunt.app.derived import run_peildatum
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.db import upgrade_sync

    s = Settings()
    if not dry_run:
        upgrade_sync(s.database_url)

    async def main() -> int:
        rt = await Runtime.start(s)
        try:
            result = await run_peildatum(rt, day, dry_run=dry_run)
            await log_action(rt, actor_name(actor), PEILDATUM, peildatum_details(result))
            if not result.checks:
                typer.echo(f"no check is due on {day.isoformat()} under rules {rt.rules.version}")
                return 0
            checks = ", ".join(f"{t} ({j})" for t, j in result.checks)
            typer.echo(f"peildatum {day.isoformat()}: {checks}")
            for (gemeente, soort), n in result.counts().items():
                typer.echo(f"{gemeente}\t{soort}\t{n}")
            typer.echo(
                f"{len(result.new)} new signaleringen, {result.already} already sent"
                + (
                    f", {result.unavailable} pupils skipped (lookup unavailable)"
                    if result.unavailable
                    else ""
                )
            )
            if dry_run:
                typer.echo("dry run: nothing written")
                return 0
            if result.new and publish:
                typer.echo(f"published {await publish_outbox(rt)} signaleringen")
            return 0
        finally:
            await rt.close()

    raise typer.Exit(asyncio.run(main()))
