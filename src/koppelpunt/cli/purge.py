"""`koppelpunt purge`: delete what is past its bewaartermijn (see app/retention.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from koppelpunt.cli._common import ActorOption, actor_name, iso, run_with_runtime

if TYPE_CHECKING:
    from koppelpunt.runtime import Runtime


def purge_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
    actor: ActorOption = None,
) -> None:
    """Delete raw messages, signaleringen (published ones only) and other personal data past
    their bewaartermijn (KOPPELPUNT_RETENTION_*_DAYS; 0 keeps forever), in batches.

    Logs and prints counts per kind, never contents. The service also runs this daily.
    """
    from koppelpunt.app.retention import plan_purge, purge

    who = actor_name(actor)

    async def work(runtime: Runtime) -> dict[str, int]:
        plans = await plan_purge(runtime)
        for plan in plans:
            typer.echo(f"{plan.name:<16} before {iso(plan.cutoff)}: {plan.count}")
        if dry_run:
            return await purge(runtime, dry_run=True, actor=who)
        total = sum(p.count for p in plans)
        bar: Any = typer.progressbar(length=max(total, 1), label="purging", file=None)
        seen: dict[str, int] = {}
        with bar:

            def progress(name: str, done: int, _total: int) -> None:
                bar.update(done - seen.get(name, 0))
                seen[name] = done

            return await purge(runtime, on_progress=progress, actor=who)

    counts = run_with_runtime(work)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(", ".join(f"{verb} {n} {name}" for name, n in counts.items()) or "nothing to do")
