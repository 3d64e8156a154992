"""`koppelpunt outbox list --failing | retry`: signaleringen that Kafka refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from koppelpunt.cli._common import ActorOption, actor_name, echo_json, iso, run_with_runtime

if TYPE_CHECKING:
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.failing import FailingSignalering

app = typer.Typer(help="The outbox: signaleringen on their way to Kafka.", no_args_is_help=True)


@app.command("list")
def list_(
    failing: Annotated[
        bool,
        typer.Option(
            "--failing", help="Only those with failed attempts (default: every unpublished one)."
        ),
    ] = False,
    gemeente: Annotated[str | None, typer.Option(help="Only this gemeente (GM0363).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many signaleringen.")] = 100,
    json_: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """Unpublished signaleringen (with --failing: those whose publication failed), with
    attempts, next attempt and the last error.

    The relay retries failures with back-off; none is dropped. With --failing the exit code
    is 1 when any are listed (for monitoring).
    """
    from koppelpunt.app.failing import as_json, list_failing

    async def work(runtime: Runtime) -> list[FailingSignalering]:
        return await list_failing(runtime, gemeente=gemeente, limit=limit, failing_only=failing)

    rows = run_with_runtime(work)
    if json_:
        echo_json([as_json(r) for r in rows])
    elif not rows:
        typer.echo("no failing signaleringen" if failing else "no unpublished signaleringen")
    else:
        typer.echo(
            f"{'SIGNALERING':<36}  {'GEMEENTE':<8}  {'TYPE':<15}  {'ATTEMPTS':>8}  "
            f"{'NEXT ATTEMPT':<25}  LAST ERROR"
        )
        for r in rows:
            typer.echo(
                f"{r.signalering_id:<36}  {r.gemeentecode:<8}  {r.type:<15}  {r.attempts:>8}  "
                f"{iso(r.next_attempt_at):<25}  {r.last_error or ''}"
            )
    if rows and failing:
        raise typer.Exit(1)


@app.command("retry")
def retry(
    signalering_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[ID]...", help="Signalering ids (default: all).")
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Make failing signaleringen due now (the relay publishes them at its next pass)."""
    from koppelpunt.app.failing import retry_failing

    async def work(runtime: Runtime) -> int:
        return await retry_failing(runtime, signalering_ids or None, requested_by=actor_name(actor))

    count = run_with_runtime(work)
    typer.echo(f"{count} signaleringen due for publication now")
