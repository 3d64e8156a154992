"""`koppelpunt replay`: re-publish a gemeente's stored signaleringen (see app/replay.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from koppelpunt.cli._common import ActorOption, actor_name, moment_option, run_with_runtime

if TYPE_CHECKING:
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.replays import StoredReplay


def replay(
    gemeente: Annotated[str, typer.Option(help="CBS gemeentecode, e.g. GM0363.")],
    since: Annotated[
        datetime | None,
        typer.Option(
            parser=moment_option,
            metavar="YYYY-MM-DD[THH:MM]",
            help="From this date/time (Amsterdam time).",
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            parser=moment_option, metavar="YYYY-MM-DD[THH:MM]", help="Up to, not including."
        ),
    ] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Only this signalering type, e.g. PROGNOSE.")
    ] = None,
    to_topic: Annotated[
        str | None, typer.Option(help="Publish to this topic instead of the gemeente topic.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0, help="Messages per second (default KOPPELPUNT_REPLAY_RATE; 0 = no limit)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Only count what would be replayed; stores no replay."),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--restart",
            help="Continue an unfinished replay with the same parameters (default), "
            "or start a new one from the first signalering.",
        ),
    ] = True,
    actor: ActorOption = None,
) -> None:
    """Re-publish the stored signaleringen of one gemeente in their original order.

    Each goes out with its original key, value and headers (the same ce_id, so consumers
    de-duplicate) plus a header `koppelpunt_replay: <replay id>`. Progress is stored after
    every batch: after Ctrl-C or a Kafka failure, run the same command again to resume.
    Exit code 0 when done, 1 when a publication failed.
    """
    from koppelpunt.app.replay import (
        ReplayRequest,
        count_replay,
        get_replay,
        prepare_replay,
        run_replay,
    )
    from koppelpunt.kafka.publisher import KafkaPublisher

    try:
        request = ReplayRequest(
            gemeente=gemeente,
            since=since,
            until=until,
            type=type_,
            to_topic=to_topic,
            dry_run=dry_run,
            requested_by=actor_name(actor),
        )
        request.filter  # noqa: B018 - validates the gemeentecode
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gemeente") from exc

    if dry_run:

        async def count(runtime: Runtime) -> int:
            return await count_replay(runtime, request)

        total = run_with_runtime(count)
        typer.echo(
            f"dry run: {total} signaleringen would be replayed for {request.filter.gemeentecode}"
        )
        return

    async def work(runtime: Runtime) -> StoredReplay:
        replay_id = await prepare_replay(runtime, request, resume=resume)
        state = await get_replay(runtime, replay_id)
        if state.published:
            typer.echo(f"resuming replay {replay_id} after {state.published} signaleringen")
        else:
            typer.echo(f"replay {replay_id}: {state.total} signaleringen")
        publisher = KafkaPublisher(runtime.settings)
        await publisher.start()
        bar: Any = typer.progressbar(length=max(state.total, 1), label="replaying", file=None)
        shown = state.published
        try:
            with bar:
                bar.update(shown)

                def progress(published: int, total: int) -> None:
                    nonlocal shown
                    bar.length = max(total, 1)
                    bar.update(published - shown)
                    shown = published

                return await run_replay(
                    runtime, replay_id, publisher, rate=rate, on_progress=progress
                )
        finally:
            await publisher.stop()

    final = run_with_runtime(work)
    typer.echo(
        f"replay {final.replay_id}: {final.status}, {final.published} of {final.total} published"
    )
    if final.status != "done":
        typer.echo(f"error: {final.error}; run the same command again to resume", err=True)
        raise typer.Exit(1)
