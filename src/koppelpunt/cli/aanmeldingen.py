"""`koppelpunt aanmeldingen buiten-flow`: aanmeldingen whose status history breaks the legal flow.

A transition outside the flow (e.g. INGESCHREVEN → AANGEMELD) is accepted and stored, and
flagged for operators (pipeline/leerlingen.py); this lists them, most recently changed first,
each with its status history (the step that broke the flow marked with `!`). No BSNs unless
`--show-bsn`, which is meant for the operator who must follow one up with the school.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from koppelpunt.cli._common import ActorOption, actor_name
from koppelpunt.config import Settings

app = typer.Typer(help="Aanmeldingen as stored (read only).", no_args_is_help=True)


@dataclass(frozen=True, slots=True)
class _Row:
    instelling_brin: str
    aanmelding_id: str
    status: str
    statusdatum: str
    gewijzigd: str
    statussen: list[dict[str, Any]]
    bsn: str | None


@app.command("buiten-flow")
def buiten_flow(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many aanmeldingen.", min=1)] = 100,
    show_bsn: Annotated[
        bool,
        typer.Option(
            "--show-bsn",
            help="Also print each pupil's BSN (for the operator; off by default). Each BSN "
            "shown is a disclosure and gets its own verwerkingenlog line.",
        ),
    ] = False,
    actor: ActorOption = None,
) -> None:
    """List aanmeldingen flagged outside the legal status flow: BRIN, aanmeldingId, statuses."""
    from koppelpunt.store import aanmeldingen as store
    from koppelpunt.store.db import create_engine, session_factory, upgrade_sync
    from koppelpunt.store.leerlingen import list_buiten_flow
    from koppelpunt.store.verwerkingenlog import log_operator_action

    s = Settings()
    upgrade_sync(s.database_url)

    async def main() -> tuple[int, list[_Row]]:
        engine = create_engine(s.database_url)
        try:
            async with session_factory(engine)() as session:
                total = await store.count_buiten_flow(session)
                flagged = await list_buiten_flow(session, limit=limit)
                keys = [(f.instelling_brin, f.aanmelding_id) for f in flagged]
                histories = await store.histories(session, keys)
                found = await store.bsns(session, keys) if show_bsn else {}
            if found:
                # Showing a BSN to an operator discloses it: one line per person, BSN encrypted.
                who = actor_name(actor)
                async with session_factory(engine).begin() as session:
                    for (brin, aanmelding_id), bsn in found.items():
                        await log_operator_action(
                            session,
                            who,
                            "aanmeldingen_buiten_flow",
                            {"instellingBrin": brin, "aanmeldingId": aanmelding_id},
                            settings=s,
                            bsn=bsn,
                        )
        finally:
            await engine.dispose()
        rows = [
            _Row(
                f.instelling_brin,
                f.aanmelding_id,
                f.status,
                f.statusdatum.isoformat(),
                f.updated_at.isoformat(),
                [
                    {
                        "status": h.status,
                        "statusdatum": h.statusdatum.isoformat(),
                        "buitenFlow": h.buiten_flow,
                    }
                    for h in histories.get(key, [])
                ],
                found.get(key),
            )
            for f, key in zip(flagged, keys, strict=True)
        ]
        return total, rows

    total, rows = asyncio.run(main())
    if as_json:
        items = []
        for r in rows:
            item: dict[str, Any] = {
                "instellingBrin": r.instelling_brin,
                "aanmeldingId": r.aanmelding_id,
                "status": r.status,
                "statusdatum": r.statusdatum,
                "gewijzigd": r.gewijzigd,
                "statussen": r.statussen,
            }
            if show_bsn:
                item["bsn"] = r.bsn
            items.append(item)
        typer.echo(json.dumps({"totaal": total, "aanmeldingen": items}, indent=2))
        return
    for r in rows:
        steps = " → ".join(
            f"{h['status']}{'!' if h['buitenFlow'] else ''} {h['statusdatum']}" for h in r.statussen
        )
        bsn = f"\t{r.bsn}" if show_bsn else ""
        typer.echo(f"{r.instelling_brin}\t{r.aanmelding_id}{bsn}\t{steps}")
    shown = f" (showing {len(rows)})" if len(rows) < total else ""
    typer.echo(f"{total} aanmeldingen outside the legal flow{shown}")
