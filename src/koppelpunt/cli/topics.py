"""`koppelpunt topics ensure`: one Kafka topic per active gemeente."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated

import typer

from koppelpunt.cli._common import gemeenten_in_use
from koppelpunt.config import Settings
from koppelpunt.pipeline.gemeenten import cbs_code

app = typer.Typer(help="Kafka topics, one per gemeente.", no_args_is_help=True)


@app.command("ensure")
def ensure(
    partitions: Annotated[
        int | None,
        typer.Option(min=1, help="Partitions per topic (default KOPPELPUNT_TOPIC_PARTITIONS)."),
    ] = None,
) -> None:
    """Create the topic {TOPIC_PREFIX}.{gm0363} for every gemeente active today (idempotent),
    in the gemeente table in use (the newest `gemeenten import`, else the packaged one).

    The relay also creates a missing topic before its first publication, so this is for
    provisioning (and for setting partitions) ahead of time.
    """
    from koppelpunt.kafka.admin import ensure_topics, topic_for

    s = Settings()
    gemeenten = gemeenten_in_use(s).active(date.today())
    names = [topic_for(s.topic_prefix, cbs_code(g.code)) for g in gemeenten]
    created = asyncio.run(ensure_topics(s, names, partitions))
    typer.echo(
        f"{len(names)} gemeente topics; {len(created)} created, {len(names) - len(created)} existed"
    )
