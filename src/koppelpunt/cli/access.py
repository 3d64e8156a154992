"""`koppelpunt access grant|revoke|list`: vendors' read access to gemeente topics.

The logic is in koppelpunt.kafka.access; the broker enforces it (SCRAM users + ACLs). These
commands need the admin principal: KOPPELPUNT_KAFKA_ADMIN_USERNAME/_PASSWORD (for the local
broker: `eval "$(make -s kafka-env)"`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from koppelpunt.cli._common import ActorOption, actor_name, gemeenten_in_use, log_cli_action
from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError, KoppelpuntError
from koppelpunt.pki import write_private

app = typer.Typer(
    help="Vendors' read access to gemeente topics (Kafka SCRAM users and ACLs).",
    no_args_is_help=True,
)


class ConfigFormat(StrEnum):
    properties = "properties"
    librdkafka = "librdkafka"
    json = "json"


def _fail(exc: KoppelpuntError) -> typer.Exit:
    typer.echo(f"koppelpunt: {exc.detail}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigurationError) else 1)


@app.command("grant")
def grant(
    name: Annotated[str, typer.Argument(help="Kafka user, e.g. rmc-amsterdam (lowercase).")],
    gemeente: Annotated[
        list[str] | None,
        typer.Option("--gemeente", help="Gemeentecode (GM0363, gm0363 or 0363); repeatable."),
    ] = None,
    rmc_regio: Annotated[
        list[int] | None,
        typer.Option(
            "--rmc-regio",
            help="RMC-regio number: the topics of all its gemeenten today (recorded, so "
            "`access sync` follows it); repeatable, may be combined with --gemeente.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the connection config to FILE (mode 0600) instead of stdout."),
    ] = None,
    fmt: Annotated[
        ConfigFormat | None,
        typer.Option(
            "--format",
            help="properties (Java clients), librdkafka (kcat -F) or json (examples/consumer.py)."
            " Default: json for a FILE ending in .json, else properties.",
        ),
    ] = None,
    keep_password: Annotated[
        bool,
        typer.Option(
            "--keep-password", help="For an existing NAME: add gemeenten without a new password."
        ),
    ] = False,
    actor: ActorOption = None,
) -> None:
    """Let NAME read the topics of these gemeenten; print a ready connection config.

    Creates the SCRAM user NAME with a new one-time password (shown only here), READ/DESCRIBE
    on exactly these gemeenten's topics and on consumer groups starting with `NAME.`.
    Granting again adds gemeenten (and gives a new password unless --keep-password).
    """
    s = Settings()
    per_regio: dict[int, list[str]] = {}
    try:
        from koppelpunt.kafka import access

        if rmc_regio:
            from koppelpunt.app.rmc_access import grant_regions
            from koppelpunt.store.db import upgrade_sync

            upgrade_sync(s.database_url)
            config, per_regio = asyncio.run(
                grant_regions(
                    s,
                    name,
                    rmc_regio,
                    gemeente or [],
                    keep_password=keep_password,
                    actor=actor_name(actor),
                )
            )
        else:
            table = gemeenten_in_use(s)
            config = asyncio.run(
                access.grant(s, name, gemeente or [], table=table, keep_password=keep_password)
            )
    except KoppelpuntError as exc:
        raise _fail(exc) from exc
    # Who granted what; never the password.
    log_cli_action(
        actor_name(actor),
        "access_grant",
        {
            "naam": name,
            "gemeenten": list(config.gemeenten),
            "groepPrefix": config.group_prefix,
            "nieuwWachtwoord": bool(config.password),
            **({"rmcRegios": sorted(per_regio)} if per_regio else {}),
        },
        settings=s,
    )
    chosen = fmt or (
        ConfigFormat.json
        if output is not None and output.suffix == ".json"
        else ConfigFormat.properties
    )
    if chosen is ConfigFormat.librdkafka and config.ssl_ca_pem:
        # librdkafka reads its CA from a file: write it beside the config (it is public).
        ca_file = (output.parent if output is not None else Path()) / f"{name}-kafka-ca.pem"
        ca_file.write_text(config.ssl_ca_pem, encoding="ascii")
        config = dataclasses.replace(config, ssl_ca_location=str(ca_file.resolve()))
        typer.echo(f"the broker's CA for {name} written to {ca_file}", err=True)
    text = config.render(chosen.value)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_private(output, text)
        typer.echo(f"connection config for {name} written to {output}", err=True)
    typer.echo(
        f"granted {name}: {', '.join(config.gemeenten)}; consumer groups {config.group_prefix}*"
        + ("" if config.password else " (password unchanged)"),
        err=True,
    )


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The Kafka user.")],
    gemeente: Annotated[
        list[str] | None,
        typer.Option("--gemeente", help="Revoke only these gemeenten; repeatable."),
    ] = None,
    rmc_regio: Annotated[
        list[int] | None,
        typer.Option(
            "--rmc-regio",
            help="Revoke a region grant: its gemeenten, except those of NAME's other regions.",
        ),
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Take NAME's access to some gemeenten or regions, or (without --gemeente/--rmc-regio) all
    of it and its user."""
    from koppelpunt.app import rmc_access
    from koppelpunt.store.db import upgrade_sync

    s = Settings()
    upgrade_sync(s.database_url)
    try:
        from koppelpunt.kafka import access

        if rmc_regio:
            removed, codes = asyncio.run(
                rmc_access.revoke_regions(s, name, rmc_regio, gemeente or [])
            )
            gemeente = codes
        else:
            table = gemeenten_in_use(s)
            removed = asyncio.run(access.revoke(s, name, gemeente or [], table=table))
            if not gemeente:
                asyncio.run(rmc_access.forget_all(s, name))
    except KoppelpuntError as exc:
        raise _fail(exc) from exc
    log_cli_action(
        actor_name(actor),
        "access_revoke",
        {
            "naam": name,
            "gemeenten": list(gemeente or []),
            "aclEntries": len(removed),
            **({"rmcRegios": sorted(rmc_regio)} if rmc_regio else {}),
        },
        settings=s,
    )
    if rmc_regio:
        what = f"regio {', '.join(map(str, rmc_regio))} ({', '.join(gemeente or []) or '-'})"
    elif gemeente:
        what = ", ".join(gemeente)
    else:
        what = "all access and the user"
    typer.echo(f"revoked {name}: {what} ({len(removed)} ACL entries removed)")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Who has access to what: every Kafka user and ACL the broker knows."""
    s = Settings()
    try:
        from koppelpunt.kafka import access

        entries = asyncio.run(access.list_access(s))
        regios = _region_grants(s)
    except KoppelpuntError as exc:
        raise _fail(exc) from exc
    if as_json:
        rows = [
            {
                "naam": e.name,
                "scramGebruiker": e.has_credentials,
                "gemeenten": e.gemeenten,
                "replayGemeenten": e.replay_gemeenten,
                "groepPrefixen": e.group_prefixes,
                "overig": e.other,
                "rmcRegios": regios.get(e.name, []),
            }
            for e in entries
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not entries:
        typer.echo("no Kafka users or ACLs")
        return
    for e in entries:
        user = "" if e.has_credentials else " (no SCRAM user)"
        typer.echo(f"{e.name}{user}")
        typer.echo(f"  gemeenten: {', '.join(e.gemeenten) or '-'}")
        typer.echo(f"  replay:    {', '.join(e.replay_gemeenten) or '-'}")
        typer.echo(f"  groups:    {', '.join(p + '*' for p in e.group_prefixes) or '-'}")
        if e.name in regios:
            typer.echo(f"  regio's:   {', '.join(map(str, regios[e.name]))}")
        for line in e.other:
            typer.echo(f"  also:      {line}")


def _region_grants(s: Settings) -> dict[str, list[int]]:
    """Recorded region grants per principal (`grant --rmc-regio`)."""
    from koppelpunt.app.rmc_access import regions_in_use
    from koppelpunt.store.db import upgrade_sync

    upgrade_sync(s.database_url)
    result: dict[str, list[int]] = {}
    for g in asyncio.run(regions_in_use(s)).grants:
        result.setdefault(g.naam, []).append(g.regio)
    return result


@app.command("sync")
def sync(
    apply: Annotated[
        bool, typer.Option("--apply", help="Make the changes (default: only show them).")
    ] = False,
    actor: ActorOption = None,
) -> None:
    """Re-apply the recorded region grants to today's regions, after a gemeente or region
    table import: grant the topics of gemeenten that joined a region, revoke those that left.
    A dry run unless --apply; passwords are kept."""
    from koppelpunt.app import rmc_access
    from koppelpunt.app.audit import ACCESS_SYNC
    from koppelpunt.store.db import upgrade_sync

    s = Settings()
    upgrade_sync(s.database_url)
    try:
        changes = asyncio.run(rmc_access.plan_sync(s))
        if apply and changes:
            asyncio.run(rmc_access.apply_sync(s, changes, actor_name(actor)))
    except KoppelpuntError as exc:
        raise _fail(exc) from exc
    verb = "" if apply else "would "
    for c in changes:
        typer.echo(
            f"{c.naam}\tregio {c.regio}\t{verb}grant: {', '.join(c.grant) or '-'}"
            f"\t{verb}revoke: {', '.join(c.revoke) or '-'}"
        )
    if not changes:
        typer.echo("region grants are up to date")
    elif not apply:
        typer.echo("dry run: nothing changed; run with --apply to make these changes")
    if apply and changes:
        log_cli_action(
            actor_name(actor),
            ACCESS_SYNC,
            {
                "wijzigingen": [
                    {"naam": c.naam, "rmcRegio": c.regio, "grant": c.grant, "revoke": c.revoke}
                    for c in changes
                ]
            },
            settings=s,
        )
