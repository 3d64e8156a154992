"""`koppelpunt inzage --bsn …`: an AVG art. 15 access request, answered from the CLI."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from koppelpunt.cli._common import ActorOption, actor_name
from koppelpunt.config import Settings


def inzage(
    bsn: Annotated[str, typer.Option(help="The person's BSN (9 digits, elfproef).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    actor: ActorOption = None,
) -> None:
    """Print everything stored about one person and every disclosure to a gemeente.

    The request itself is logged in the verwerkingenlog (who, when; the BSN encrypted).
    """
    from koppelpunt.app.inzage import (
        InvalidBsnError,
        check_bsn,
        run_inzage,
        to_json,
        to_text,
    )
    from koppelpunt.store.db import create_engine, session_factory, upgrade_sync

    s = Settings()
    who = actor_name(actor)
    try:
        check_bsn(bsn)
    except InvalidBsnError as exc:
        typer.echo(f"koppelpunt inzage: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    upgrade_sync(s.database_url)

    async def main() -> str:
        engine = create_engine(s.database_url)
        try:
            result = await run_inzage(session_factory(engine), s, bsn, who)
        finally:
            await engine.dispose()
        if as_json:
            return json.dumps(to_json(result), indent=2, ensure_ascii=False) + "\n"
        return to_text(result)

    typer.echo(asyncio.run(main()), nl=False)
