"""`koppelpunt brp import`: fill the local woongemeente register from a CSV file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from koppelpunt.config import Settings
from koppelpunt.lookup.register_csv import RegisterRow, RowError, read_register

app = typer.Typer(help="The woongemeente lookup (local register).", no_args_is_help=True)

BATCH = 5_000


@app.command("import")
def import_register(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="CSV: bsn,gemeentecode[,geldig_vanaf]"),
    ],
) -> None:
    """Upsert a CSV into the local woongemeente register.

    Header `bsn,gemeentecode` with optional `geldig_vanaf` (YYYY-MM-DD; a pupil's woongemeente on
    a date is the row with the latest geldig_vanaf on or before it). The code may be written
    GM0363 or 0363 and must be in the gemeente table. Invalid rows are reported with their line
    number and skipped; the exit code is 1 when there were any.
    """
    from koppelpunt.store.db import create_engine, session_factory, upgrade_sync
    from koppelpunt.store.gemeenten import gemeente_table_in_use
    from koppelpunt.store.register import upsert_woonregister

    s = Settings()
    upgrade_sync(s.database_url)
    total_bytes = file.stat().st_size

    async def run() -> tuple[int, int]:
        engine = create_engine(s.database_url)
        sessions = session_factory(engine)
        async with sessions() as session:
            gemeenten = (await gemeente_table_in_use(session, s.gemeenten_file)).table
        imported = errors = 0
        batch: list[tuple[str, str, date | None]] = []

        async def flush() -> None:
            nonlocal imported, batch
            if batch:
                async with sessions.begin() as session:
                    await upsert_woonregister(session, batch)
                imported += len(batch)
                batch = []

        try:
            with (
                file.open(encoding="utf-8-sig", newline="") as fh,
                typer.progressbar(length=total_bytes, label="importing", file=None) as bar,
            ):
                for item in read_register(_tracking(fh, bar), gemeenten):
                    if isinstance(item, RowError):
                        errors += 1
                        typer.echo(f"{file}:{item.line}: {item.reason}", err=True)
                        continue
                    assert isinstance(item, RegisterRow)
                    batch.append((item.bsn, item.gemeentecode, item.geldig_vanaf))
                    if len(batch) >= BATCH:
                        await flush()
                await flush()
        finally:
            await engine.dispose()
        return imported, errors

    imported, errors = asyncio.run(run())
    typer.echo(f"imported {imported} rows, {errors} invalid rows skipped")
    if errors:
        raise typer.Exit(1)


def _tracking(lines: Iterable[str], bar: Any) -> Iterator[str]:
    """Pass lines through while advancing the progress bar by their size."""
    for line in lines:
        bar.update(len(line.encode("utf-8")))
        yield line
