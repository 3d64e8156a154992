"""`koppelpunt rmc import FILE [--overrides F] | list`: the RMC-regio's in use.

The packaged data/rmc-regios-bijlage-c-2012.csv (KOPPELPUNT_RMC_REGIOS_FILE) applies until a
region table is imported; the newest import (with its overrides) then applies. Which gemeenten
of a date belong to a region follows from the gemeente table in use (pipeline/rmc.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from koppelpunt.cli._common import ActorOption, actor_name, echo_json, run_with_runtime
from koppelpunt.pipeline.gemeenten import GemeenteTable, TableIssue, decode_table_file
from koppelpunt.pipeline.rmc import (
    RegionAssignment,
    assign_regions,
    parse_overrides_csv,
    parse_rmc_csv,
)

if TYPE_CHECKING:
    from koppelpunt.runtime import Runtime

app = typer.Typer(help="The RMC-regio's (bijlage C) and their gemeenten.", no_args_is_help=True)


def _today() -> date:
    return datetime.now(UTC).date()


def _read(path: Path) -> str:
    try:
        return decode_table_file(path.read_bytes())
    except UnicodeDecodeError as exc:
        typer.echo(f"{path}: not UTF-8 or UTF-16 with BOM: {exc}", err=True)
        raise typer.Exit(1) from exc


def _refuse(path: Path, issues: list[TableIssue]) -> None:
    for issue in issues:
        typer.echo(f"{path}:{issue.line}: {issue.reason}", err=True)


@app.command("import")
def import_table(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="Region table CSV (see docs/beheer.md)"),
    ],
    overrides: Annotated[
        Path | None,
        typer.Option(
            "--overrides",
            exists=True,
            dir_okay=False,
            help="CSV gemeentecode,rmc_regio[,toelichting]: settles conflicts.",
        ),
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Check a region table (and overrides) and make it the region table in use.

    Every problem in either file is reported as FILE:LINE: reason and nothing is imported then
    (exit 1). Names are mapped to codes with the gemeente table in use.
    """
    from koppelpunt.app.audit import RMC_IMPORT, log_action
    from koppelpunt.store.rmc import add_rmc_tabel, rmc_sha256, rmc_table_in_use

    text = _read(file)
    overrides_text = _read(overrides) if overrides is not None else None

    async def work(rt: Runtime) -> tuple[str, RegionAssignment | None]:
        await rt.load_gemeenten()
        table, issues = parse_rmc_csv(text, rt.gemeenten)
        failed = bool(issues)
        _refuse(file, issues)
        parsed: dict[str, int] = {}
        if overrides is not None and overrides_text is not None:
            regios = table.regios if table is not None else {}
            result, o_issues = parse_overrides_csv(overrides_text, rt.gemeenten, regios)
            if table is not None:  # regions unknown otherwise: every line would be reported
                _refuse(overrides, o_issues)
                failed = failed or bool(o_issues)
            parsed = result or {}
        if failed or table is None:
            raise typer.Exit(1)
        async with rt.sessions() as session:
            in_use = await rmc_table_in_use(session, rt.settings.rmc_regios_file, rt.gemeenten)
        if rmc_sha256(text, overrides_text) == in_use.sha256:
            return "this region table is already the one in use; nothing imported", None
        async with rt.sessions.begin() as session:
            pk = await add_rmc_tabel(
                session,
                csv_text=text,
                source=file.name,
                overrides_csv=overrides_text,
                overrides_source=None if overrides is None else overrides.name,
                imported_at=datetime.now(UTC),
            )
        await log_action(
            rt.sessions,
            actor_name(actor),
            RMC_IMPORT,
            {
                "bron": file.name,
                "tabel": pk,
                "regios": len(table.regios),
                "overrides": len(parsed),
            },
        )
        return f"imported as region table {pk}", assign_regions(
            table, rt.gemeenten, _today(), parsed
        )

    try:
        message, assignment = run_with_runtime(work)
    except typer.Exit as exc:
        if exc.exit_code:
            typer.echo("nothing imported", err=True)
        raise
    if assignment is not None:
        typer.echo(
            f"{file}: {len(assignment.regios)} regio's on {assignment.on}: "
            f"{len(assignment.conflicts)} conflict(s), {len(assignment.uncovered)} uncovered"
        )
    typer.echo(message)


def _as_json(a: RegionAssignment, table: GemeenteTable, source: str) -> dict[str, Any]:
    def g(code: str) -> dict[str, str]:
        return {"gemeentecode": f"GM{code}", "naam": table.gemeenten[code].naam}

    return {
        "bron": source,
        "datum": a.on.isoformat(),
        "regios": [
            {
                "rmcRegio": regio,
                "naam": a.regios[regio],
                "gemeenten": [
                    {**g(code), **({"override": True} if code in a.overridden else {})}
                    for code in a.members[regio]
                ],
            }
            for regio in sorted(a.regios)
        ],
        "conflicten": [{**g(code), "rmcRegios": r} for code, r in sorted(a.conflicts.items())],
        "zonderRegio": [g(code) for code in a.uncovered],
    }


@app.command("list")
def list_regions(
    datum: Annotated[
        str | None,
        typer.Option(metavar="YYYY-MM-DD", help="Gemeenten on this date; default today."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
) -> None:
    """Each region with its gemeenten on the date, then the active gemeenten that belong to two
    regions (conflicts: settle with `rmc import --overrides`) or to none."""
    from koppelpunt.store.rmc import rmc_table_in_use

    try:
        on = date.fromisoformat(datum) if datum else _today()
    except ValueError as exc:
        raise typer.BadParameter(
            f"{datum!r} is not a date YYYY-MM-DD", param_hint="--datum"
        ) from exc

    async def work(rt: Runtime) -> tuple[RegionAssignment, GemeenteTable, str]:
        await rt.load_gemeenten()
        async with rt.sessions() as session:
            in_use = await rmc_table_in_use(session, rt.settings.rmc_regios_file, rt.gemeenten)
        return (
            assign_regions(in_use.table, rt.gemeenten, on, in_use.overrides),
            rt.gemeenten,
            in_use.source,
        )

    a, table, source = run_with_runtime(work)
    if as_json:
        echo_json(_as_json(a, table, source))
        return
    typer.echo(f"# region table: {source}; gemeenten on {on.isoformat()}")
    for regio in sorted(a.regios):
        codes = a.members[regio]
        typer.echo(f"{regio}\t{a.regios[regio]}\t{len(codes)} gemeente(n)")
        for code in codes:
            mark = "\t(override)" if code in a.overridden else ""
            typer.echo(f"\tGM{code}\t{table.gemeenten[code].naam}{mark}")
    typer.echo(f"# conflicts (in two or more regions): {len(a.conflicts)}")
    for code, regios in sorted(a.conflicts.items()):
        listed = ", ".join(str(r) for r in regios)
        typer.echo(f"GM{code}\t{table.gemeenten[code].naam}\tregio's {listed}")
    typer.echo(f"# uncovered (in no region): {len(a.uncovered)}")
    for code in a.uncovered:
        typer.echo(f"GM{code}\t{table.gemeenten[code].naam}")
