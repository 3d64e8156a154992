"""`koppelpunt gemeenten import FILE | list`: the RvIG Tabel 33 gemeente table in use.

The packaged data/rvig-tabel33-gemeenten.csv (KOPPELPUNT_GEMEENTEN_FILE) applies until a newer
RvIG file is imported; the newest import then applies (stored in the database, so every
instance of the service and every CLI command uses the same table). A running service picks up
an imported table when it restarts.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from koppelpunt.cli._common import ActorOption, actor_name
from koppelpunt.config import Settings
from koppelpunt.pipeline.gemeenten import GemeenteTable, decode_table_file, parse_gemeente_csv

app = typer.Typer(help="The RvIG Tabel 33 gemeente table.", no_args_is_help=True)


def _today() -> date:
    return datetime.now(UTC).date()


@app.command("import")
def import_table(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="RvIG Tabel 33 CSV (UTF-8, or UTF-16 with BOM)"
        ),
    ],
    actor: ActorOption = None,
) -> None:
    """Check an RvIG Tabel 33 file and make it the gemeente table in use.

    Columns `92.10 Gemeentecode`, `92.11 Omschrijving`, `92.12 Nieuwe code`, `99.99 Datum
    einde` (and optionally `99.98 Datum ingang`), dates YYYYMMDD. Every problem is reported
    with its line number and nothing is imported then (exit 1). A running service uses the new
    table after a restart.
    """
    from koppelpunt.app.audit import log_action
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.db import upgrade_sync
    from koppelpunt.store.gemeenten import add_gemeentetabel

    s = Settings()
    try:
        text = decode_table_file(file.read_bytes())
    except UnicodeDecodeError as exc:
        typer.echo(f"{file}: not UTF-8 or UTF-16 with BOM: {exc}", err=True)
        raise typer.Exit(1) from exc
    table, issues = parse_gemeente_csv(text)
    if table is None:
        for issue in issues:
            typer.echo(f"{file}:{issue.line}: {issue.reason}", err=True)
        typer.echo(f"{len(issues)} problem(s); nothing imported", err=True)
        raise typer.Exit(1)
    upgrade_sync(s.database_url)

    async def run() -> str:
        rt = await Runtime.start(s)
        try:
            previous = rt.gemeenten
            if hashlib.sha256(text.encode("utf-8")).hexdigest() == rt.gemeenten_sha256:
                return "this table is already the one in use; nothing imported"
            async with rt.sessions.begin() as session:
                pk = await add_gemeentetabel(
                    session,
                    csv_text=text,
                    source=file.name,
                    aantal=len(table.gemeenten),
                    imported_at=datetime.now(UTC),
                )
            await log_action(
                rt,
                actor_name(actor),
                "gemeenten_import",
                {"bron": file.name, "tabel": pk, "aantal": len(table.gemeenten)},
            )
            return f"imported as table {pk}; {_changes(previous, table)}"
        finally:
            await rt.close()

    message = asyncio.run(run())
    today = _today()
    active = len(GemeenteTable(table.gemeenten).active(today))
    typer.echo(f"{file}: {len(table.gemeenten)} codes, {active} gemeenten active on {today}")
    typer.echo(message)
    typer.echo("a running service uses the new table after a restart")


def _changes(old: GemeenteTable, new: GemeenteTable) -> str:
    added = sorted(set(new.gemeenten) - set(old.gemeenten))
    ended = sorted(
        code
        for code, g in new.gemeenten.items()
        if g.einde is not None and (code not in old.gemeenten or old.gemeenten[code].einde is None)
    )
    return f"{len(added)} new code(s), {len(ended)} newly ended compared to the previous table"


@app.command("list")
def list_table(
    all_codes: Annotated[
        bool, typer.Option("--all", help="Every code ever used, incl. opgeheven, 0000, 1999.")
    ] = False,
    opgeheven: Annotated[
        bool, typer.Option("--opgeheven", help="Only gemeenten opgeheven on the date.")
    ] = False,
    datum: Annotated[
        str | None,
        typer.Option(metavar="YYYY-MM-DD", help="Status on this date; default today."),
    ] = None,
) -> None:
    """Show gemeentecode, name and status (actief / opgeheven per date → successor).

    Without options: the gemeenten one can route to on the date.
    """
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.db import upgrade_sync

    try:
        on = date.fromisoformat(datum) if datum else _today()
    except ValueError as exc:
        raise typer.BadParameter(
            f"{datum!r} is not a date YYYY-MM-DD", param_hint="--datum"
        ) from exc
    s = Settings()
    upgrade_sync(s.database_url)

    async def run() -> tuple[GemeenteTable, str]:
        rt = await Runtime.start(s)
        try:
            return rt.gemeenten, rt.gemeenten_source
        finally:
            await rt.close()

    table, source = asyncio.run(run())
    if all_codes:
        codes = sorted(table.gemeenten)
    elif opgeheven:
        codes = sorted(c for c in table.gemeenten if table.opgeheven(c, on))
    else:
        codes = [g.code for g in table.active(on)]
    typer.echo(f"# gemeente table: {source}; status on {on.isoformat()}; {len(codes)} code(s)")
    for code in codes:
        g = table.gemeenten[code]
        typer.echo(f"{code}\tGM{code}\t{g.naam}\t{table.status(code, on)}")
