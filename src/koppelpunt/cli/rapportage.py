"""`koppelpunt rapportage --rmc-regio N --schooljaar 2026-2027`: the region's yearly numbers."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Annotated, Any

import typer

from koppelpunt.cli._common import ActorOption, actor_name, echo_json, run_with_runtime
from koppelpunt.pipeline.rapportage import LEEFTIJDSGROEPEN, report_csv_rows

if TYPE_CHECKING:
    from koppelpunt.runtime import Runtime


def rapportage(
    rmc_regio: Annotated[int, typer.Option("--rmc-regio", help="RMC-regio number (1-39).")],
    schooljaar: Annotated[
        str, typer.Option("--schooljaar", metavar="YYYY-YYYY", help="e.g. 2026-2027.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of text.")] = False,
    actor: ActorOption = None,
) -> None:
    """Counts for the RMC-effectrapportage: per gemeente of the region and in total,
    signaleringen per type and distinct young people with one of each type, by age on
    1 August (studiejaar 1 August - 31 July). No person in it; small cells show as <N."""
    from koppelpunt.app.rapportage import rapportage as run_report

    async def work(rt: Runtime) -> dict[str, Any]:
        await rt.load_gemeenten()
        return await run_report(rt, regio=rmc_regio, schooljaar=schooljaar, actor=actor_name(actor))

    report = run_with_runtime(work)
    if as_json:
        echo_json(report)
        return
    rows = report_csv_rows(report)
    if as_csv:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        typer.echo(buffer.getvalue(), nl=False)
        return
    typer.echo(
        f"# RMC-regio {report['rmcRegio']} {report['naam']}, studiejaar {report['schooljaar']}"
        f" ({report['periode']['van']} t/m {report['periode']['totEnMet']}); leeftijd op "
        f"{report['leeftijdOp']}; cellen onder {report['drempel']} als <{report['drempel']}"
    )
    typer.echo("\t".join(["gemeente", "naam", "type", "maat", *LEEFTIJDSGROEPEN, "totaal"]))
    for row in rows[1:]:
        typer.echo("\t".join(row))
