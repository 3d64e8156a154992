"""`koppelpunt offsets` and `koppelpunt lag`: consumer groups on the gemeente topics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from koppelpunt.cli._common import ActorOption, actor_name, echo_json, iso, log_cli_action
from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError

if TYPE_CHECKING:
    from koppelpunt.app.offsets import Lag


def offsets(
    gemeente: Annotated[str, typer.Option(help="CBS gemeentecode, e.g. GM0363.")],
    group: Annotated[str, typer.Option(help="The consumer group (the vendor's group id).")],
    to: Annotated[
        str, typer.Option(help="earliest, latest, or a date/time (ISO; Amsterdam time).")
    ],
    create: Annotated[
        bool,
        typer.Option(
            "--create", help="Create the group at this position when it does not exist yet."
        ),
    ] = False,
    actor: ActorOption = None,
) -> None:
    """Reset a consumer group's offsets on a gemeente topic, so it re-reads from there.

    Refused (exit 1) while the group has active members: stop the vendor's consumers first;
    and for a group that does not exist, unless --create. What is no longer in the topic
    (retention) needs `koppelpunt replay` instead.
    """
    from koppelpunt.app.offsets import parse_target, reset_offsets

    try:
        target = parse_target(to)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to") from exc
    s = Settings()
    who = actor_name(actor)
    details: dict[str, object] = {"gemeentecode": gemeente.upper(), "group": group, "to": to}
    try:
        new = asyncio.run(
            reset_offsets(
                s, gemeente=gemeente, group=group, to=target, requested_by=who, create=create
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gemeente") from exc
    except KoppelpuntError as exc:
        typer.echo(f"koppelpunt: {exc.detail}", err=True)
        # A refused reset is an operator action too (who tried what, and why it failed); a
        # database that is down as well must not hide the reason above.
        try:
            log_cli_action(
                who,
                "offsets_reset",
                {**details, "fout": exc.detail},
                status_code="ERROR",
                settings=s,
            )
        except Exception as log_exc:
            typer.echo(f"koppelpunt: verwerkingenlog not written: {log_exc!r}", err=True)
        raise typer.Exit(1) from exc
    log_cli_action(
        who,
        "offsets_reset",
        {**details, "offsets": {str(p): o for p, o in sorted(new.items())}},
        settings=s,
    )
    for partition, offset in sorted(new.items()):
        typer.echo(f"partition {partition}: offset {offset}")
    typer.echo(f"offsets of {group} reset to {to}")


def lag(
    gemeente: Annotated[str | None, typer.Option(help="Only this gemeente's topic.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Per gemeente topic and consumer group: how many signaleringen are unread, and since when."""
    from koppelpunt.app.offsets import consumer_lag

    s = Settings()
    try:
        rows: list[Lag] = asyncio.run(consumer_lag(s, gemeente=gemeente))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gemeente") from exc
    except KoppelpuntError as exc:
        typer.echo(f"koppelpunt: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    if json_:
        echo_json([r.as_json() for r in rows])
        return
    if not rows:
        typer.echo("no consumer groups with offsets on the gemeente topics")
        return
    typer.echo(f"{'GEMEENTE':<9} {'GROUP':<40} {'LAG':>8}  OLDEST UNREAD")
    for r in rows:
        typer.echo(f"{r.gemeentecode:<9} {r.group:<40} {r.lag:>8}  {iso(r.oldest_unread)}")
