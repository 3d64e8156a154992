"""`koppelpunt rejected list | show | export`: refused messages and rejected records."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from koppelpunt.cli._common import echo_json, iso, moment_option, run_with_runtime
from koppelpunt.pki import write_private

if TYPE_CHECKING:
    from koppelpunt.app.rejected import Rejection
    from koppelpunt.runtime import Runtime

app = typer.Typer(
    help="Rejected messages (refused as a whole: id 12) and records (id R34).",
    no_args_is_help=True,
)

Since = Annotated[
    datetime | None,
    typer.Option(
        parser=moment_option,
        metavar="YYYY-MM-DD[THH:MM]",
        help="Received on or after (Amsterdam time).",
    ),
]
SenderOpt = Annotated[str | None, typer.Option(help="Only this sender (e.g. koppelpunt-mbo).")]


@app.command("list")
def list_(
    since: Since = None,
    sender: SenderOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many of each kind.")] = 100,
    json_: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Rejected messages and records, newest first, with their first reason."""
    from koppelpunt.app.rejected import list_rejections

    async def work(runtime: Runtime) -> list[Rejection]:
        return await list_rejections(runtime, since=since, sender=sender, limit=limit)

    rows = run_with_runtime(work)
    if json_:
        echo_json([r.as_json() for r in rows])
        return
    if not rows:
        typer.echo("no rejections")
        return
    typer.echo(
        f"{'ID':>7}  {'RECEIVED':<25}  {'SENDER':<18} {'BERICHTID':<28} {'WHAT':>5}  FIRST REASON"
    )
    for r in rows:
        first = r.reasons[0].get("reden", "") if r.reasons else ""
        where = f"#{r.record_index}" if r.record_index is not None else str(r.status_code)
        typer.echo(
            f"{r.id:>7}  {iso(r.received_at):<25}  {r.sender or '-':<18} {r.bericht_id or '-':<28} "
            f"{where:>5}  {first}"
        )


@app.command("show")
def show(
    rejection_id: Annotated[
        str, typer.Argument(metavar="ID", help="12 (message) or R34 (record).")
    ],
    raw: Annotated[
        bool, typer.Option("--raw", help="Write the raw bytes to stdout instead.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
) -> None:
    """Every reason of one rejection; with --raw the message bytes as received."""
    from koppelpunt.app.rejected import get_rejection

    async def work(runtime: Runtime) -> tuple[Rejection, bytes | None]:
        return await get_rejection(runtime, rejection_id)

    rejection, body = run_with_runtime(work)
    if raw:
        if body is None:
            typer.echo("the raw bytes were not kept (refused before reading)", err=True)
            raise typer.Exit(1)
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    if json_:
        echo_json(rejection.as_json())
        return
    typer.echo(f"id:          {rejection.id} ({rejection.kind})")
    typer.echo(f"received:    {iso(rejection.received_at)}")
    typer.echo(f"sender:      {rejection.sender or '-'}")
    typer.echo(f"soort:       {rejection.soort or '-'}")
    typer.echo(f"berichtId:   {rejection.bericht_id or '-'}")
    if rejection.status_code is not None:
        typer.echo(f"status:      {rejection.status_code}")
    if rejection.record_index is not None:
        typer.echo(f"record:      {rejection.record_index} (0-based)")
    typer.echo(f"raw bytes:   {len(body) if body is not None else 'not kept'}")
    typer.echo("reasons:")
    for reason in rejection.reasons:
        typer.echo("  - " + json.dumps(reason, ensure_ascii=False))


@app.command("export")
def export(
    since: Since = None,
    sender: SenderOpt = None,
    output: Annotated[
        Path | None, typer.Option(dir_okay=False, help="File to write (default stdout).")
    ] = None,
) -> None:
    """Every rejection as JSON lines, raw bytes in base64 (`raw`), for a sender's helpdesk."""
    from koppelpunt.app.rejected import export_rejections

    async def work(runtime: Runtime) -> list[str]:
        return [
            json.dumps(item, ensure_ascii=False)
            async for item in export_rejections(runtime, since=since, sender=sender)
        ]

    lines = run_with_runtime(work)
    text = "".join(line + "\n" for line in lines)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_private(output, text)  # raw messages hold BSNs: 0600, as the database
        typer.echo(f"{len(lines)} rejections written to {output}", err=True)
