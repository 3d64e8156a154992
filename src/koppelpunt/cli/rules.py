"""`koppelpunt rules check DIR | dry-run DIR --since DATE | schema`.

check: validate a candidate rules directory, every problem with its file and field.
dry-run: re-decide the messages stored since a date under the current rules and under the
candidate rules, and print per gemeente and type which signaleringen the candidate would add or
withdraw. It writes nothing and publishes nothing (read-only database access, no Kafka).
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from koppelpunt.cli._common import ActorOption, actor_name
from koppelpunt.config import Settings
from koppelpunt.model import Parsed, Soort
from koppelpunt.pipeline.dry_run import DryRun, DryRunReport, lookups_needed_for_both
from koppelpunt.pipeline.rules import RuleSet
from koppelpunt.pipeline.rules_check import check_rules, rules_json_schema
from koppelpunt.pipeline.run import AMSTERDAM, LookupKey, LookupResult, peildatum_of

if TYPE_CHECKING:  # the store pulls in SQLAlchemy: imported only when a command needs it
    from koppelpunt.store.replay import KnownDecision

app = typer.Typer(help="Routing rules: validate, try out, export the schema.", no_args_is_help=True)

DirArgument = Annotated[
    Path, typer.Argument(file_okay=False, help="A rules directory (*.yaml), e.g. routing_rules/")
]


def _checked(directory: Path) -> RuleSet:
    rules, issues = check_rules(directory)
    if rules is None:
        for issue in issues:
            typer.echo(f"{issue.location(directory)}: {issue.message}", err=True)
        typer.echo(f"{directory}: {len(issues)} problem(s)", err=True)
        raise typer.Exit(1)
    return rules


@app.command("check")
def check(directory: DirArgument) -> None:
    """Validate a rules directory: OK and its version, or every problem (exit 1)."""
    rules = _checked(directory)
    enabled = ", ".join(t.value for t, on in rules.signaleringen.items() if on)
    typer.echo(f"OK {directory}: version {rules.version}")
    typer.echo(
        f"  leeftijd jonger_dan {rules.leeftijd.jonger_dan}; startkwalificatie "
        f"{', '.join(sorted(rules.startkwalificatie.diplomas))}; signaleringen {enabled}"
    )


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of a rules directory (routing_rules/schema.json is this output)."""
    typer.echo(json.dumps(rules_json_schema(), indent=2, ensure_ascii=False))


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), AMSTERDAM)


@app.command("dry-run")
def dry_run(
    directory: DirArgument,
    since: Annotated[
        datetime,
        typer.Option(
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            help="Messages received on or after this date.",
        ),
    ],
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="…and before this date (default: now)."
        ),
    ] = None,
    details: Annotated[
        bool, typer.Option("--details", help="List the signalering ids added and withdrawn.")
    ] = False,
    lookup: Annotated[
        bool,
        typer.Option(
            help="Look up woongemeenten the stored decisions do not hold (records the current "
            "rules filtered before the lookup). --no-lookup counts them as geparkeerd instead."
        ),
    ] = True,
    actor: ActorOption = None,
) -> None:
    """Re-decide the stored messages since DATE under the candidate rules and show the diff.

    Compares the current rules (KOPPELPUNT_RULES_DIR) with DIR on the same messages and the same
    woongemeenten: the ones stored with the decisions are reused; only records that the
    current rules filtered before the lookup are looked up (with the configured BRP lookup).
    Derived types are included: the pupil state is replayed from the stored messages in
    receive order (those before DATE only build the state), GEEN_PLAATSING and moves are
    derived on receipt, and NIET_AANGEMELD / NIET_INGESCHREVEN are checked on every peildatum
    from DATE to --until (exclusive) or today under either rule set (these pupils are looked
    up). Prints, per gemeente and type, the signaleringen that would be added (+) or
    withdrawn (-). Nothing is written to the database (but its verwerkingenlog line) and
    nothing is published.
    """
    from koppelpunt.app.audit import RULES_DRY_RUN, log_action
    from koppelpunt.pipeline.parse import parse_message
    from koppelpunt.runtime import Runtime
    from koppelpunt.store.replay import berichten_since, known_decisions

    candidate = _checked(directory)
    s = Settings()

    start = _start_of(since.date())
    end = _start_of(until.date()) if until else None

    async def run() -> tuple[DryRunReport, RuleSet, int, list[date]]:
        rt = await Runtime.start(s)
        try:
            dry = DryRun(rt.rules, candidate, rt.gemeenten, rt.clock())
            unreadable = 0
            after = 0
            while True:
                # From the first message on: those before the period build the pupil state.
                async with rt.sessions() as session:
                    page = await berichten_since(session, None, until=end, after_pk=after)
                    known = await known_decisions(session, [b.pk for b in page])
                if not page:
                    break
                after = page[-1].pk
                for stored in page:
                    parsed = parse_message(stored.raw, Soort(stored.soort), rt.schemas)
                    in_period = stored.received_at >= start
                    if not isinstance(parsed, Parsed):
                        unreadable += in_period
                        continue
                    keys = lookups_needed_for_both(parsed, rt.rules, candidate)
                    found = _reuse(parsed, stored.pk, keys, known)
                    missing = [k for k in keys if k not in found]
                    if missing and lookup and in_period:
                        found.update(await rt.lookup.lookup(missing))
                    dry.add(parsed, found, count=in_period)
            today = dry.now.astimezone(AMSTERDAM).date()
            last_day = end.date() - timedelta(days=1) if end else today
            for day in dry.peildata(since.date(), last_day):
                keys = dry.peildatum_lookups(day)
                found = dict(await rt.lookup.lookup(keys)) if keys and lookup else {}
                dry.add_peildatum(day, found)
            report = dry.report()
            await log_action(
                rt,
                actor_name(actor),
                RULES_DRY_RUN,
                {
                    "rulesDir": str(directory),
                    "huidigeVersie": rt.rules.version,
                    "kandidaatVersie": candidate.version,
                    "since": since.date().isoformat(),
                    "until": until.date().isoformat() if until else None,
                    "berichten": report.berichten,
                    "toegevoegd": report.added,
                    "ingetrokken": report.withdrawn,
                },
            )
            return report, rt.rules, unreadable, dry.peildata_checked
        finally:
            await rt.close()

    report, current, unreadable, peildata = asyncio.run(run())
    _print(report, current, candidate, directory, s, since.date(), details, unreadable, peildata)


def _reuse(
    parsed: Parsed, pk: int, keys: list[LookupKey], known: dict[tuple[int, int], KnownDecision]
) -> dict[LookupKey, LookupResult]:
    """Woongemeenten from the stored decisions: routed code, or none when filtered for it."""
    wanted = set(keys)
    found: dict[LookupKey, LookupResult] = {}
    for record in parsed.bericht.records:
        bsn = record.leerling.bsn
        if bsn is None:
            continue
        key = (bsn, peildatum_of(parsed.bericht, record))
        decision = known.get((pk, record.index))
        if key not in wanted or decision is None:
            continue
        if decision.uitkomst == "doorgestuurd" and decision.gemeentecode:
            found[key] = decision.gemeentecode.removeprefix("GM")
        elif decision.uitkomst == "gefilterd" and decision.reden == "geenWoongemeente":
            found[key] = None
    return found


def _print(
    report: DryRunReport,
    current: RuleSet,
    candidate: RuleSet,
    directory: Path,
    s: Settings,
    since: date,
    details: bool,
    unreadable: int,
    peildata: list[date],
) -> None:
    echo = typer.echo
    echo(
        f"dry run: rules {current.version} ({s.rules_dir}) → {candidate.version} ({directory}); "
        "nothing is written or published"
    )
    echo(f"berichten since {since.isoformat()}: {report.berichten} ({report.records} records)")
    if peildata:
        echo(f"peildata checked: {', '.join(d.isoformat() for d in peildata)}")
    else:
        echo("peildata checked: none in the period")
    if unreadable:
        echo(f"  {unreadable} stored message(s) no longer parse and were skipped")
    echo("gefilterd (current → candidate):")
    for reden, before in report.current.gefilterd.items():
        echo(f"  {reden:<18} {before:>7} → {report.candidate.gefilterd[reden]}")
    echo(f"  {'geparkeerd':<18} {report.current.geparkeerd:>7} → {report.candidate.geparkeerd}")
    echo(
        f"signaleringen (current → candidate): {report.current.signaleringen} → "
        f"{report.candidate.signaleringen}"
    )
    if not report.changes:
        echo("no signalering would be added or withdrawn")
    else:
        echo(f"{'gemeente':<9} {'type':<18} {'added':>6} {'withdrawn':>10}")
        for change in report.changes:
            echo(
                f"{change.gemeentecode:<9} {change.type.value:<18} "
                f"{'+' + str(len(change.added)):>6} {'-' + str(len(change.withdrawn)):>10}"
            )
            if details:
                for sid in change.added:
                    echo(f"  + {sid}")
                for sid in change.withdrawn:
                    echo(f"  - {sid}")
    echo(f"total: +{report.added} -{report.withdrawn} (unchanged {report.unchanged})")
