"""The RMC-effectrapportage numbers for one region and studiejaar (CLI, API and /beheer page).

Counts only, per gemeente of the region and for the region: signaleringen per type and distinct
young people with at least one signalering of each type, by age on 1 August. Each report is an
operator action in the verwerkingenlog.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from koppelpunt.app.audit import RAPPORTAGE, log_action
from koppelpunt.errors import KoppelpuntError
from koppelpunt.model import SignaleringType
from koppelpunt.pipeline.rapportage import build_report, parse_schooljaar
from koppelpunt.pipeline.rmc import assign_regions
from koppelpunt.store.rapportage import count_signaleringen
from koppelpunt.store.rmc import rmc_table_in_use

if TYPE_CHECKING:
    from koppelpunt.runtime import Runtime

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


class RapportageError(KoppelpuntError, ValueError):
    """A region or schooljaar that gives no report (422 in the API, exit 1 in the CLI)."""

    status = 422
    code = "rapportage-niet-mogelijk"
    title = "Rapportage niet mogelijk"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=AMSTERDAM).astimezone(UTC)


async def rapportage(
    rt: Runtime, *, regio: int, schooljaar: str, actor: str, today: date | None = None
) -> dict[str, Any]:
    """The report of region `regio` for `schooljaar` ('2026-2027'), logged as `actor`'s action.

    The region's gemeenten are those on the last day of the studiejaar (today while it runs);
    signaleringen under a predecessor's code count for the gemeente it became. A gemeente in
    conflict between two regions (see `koppelpunt rmc list`) is in no region's report until an
    override settles it.
    """
    try:
        periode = parse_schooljaar(schooljaar)
    except ValueError as exc:
        raise RapportageError(str(exc)) from exc
    on = min(today or datetime.now(UTC).date(), periode.last_day)
    table = rt.gemeenten
    async with rt.sessions() as session:
        in_use = await rmc_table_in_use(session, rt.settings.rmc_regios_file, table)
        if regio not in in_use.table.regios:
            raise RapportageError(f"unknown RMC-regio {regio} (see `koppelpunt rmc list`)")
        assignment = assign_regions(in_use.table, table, on, in_use.overrides)
        members = set(assignment.members[regio])
        codes = {
            f"GM{code}": f"GM{successor}"
            for code in table.gemeenten
            if (successor := table.resolve(code, on)) in members
        }
        counts = await count_signaleringen(
            session,
            codes=codes,
            periode=periode,
            since=_midnight(periode.start),
            until=_midnight(periode.end),
        )
    report = build_report(
        regio=regio,
        regio_naam=in_use.table.regios[regio],
        periode=periode,
        gemeenten={f"GM{c}": table.gemeenten[c].naam for c in members},
        counts=counts,
        types=[t.value for t in SignaleringType],
        min_cell=rt.settings.rapportage_min_cell,
    )
    await log_action(
        rt,
        actor,
        RAPPORTAGE,
        {"rmcRegio": regio, "schooljaar": periode.schooljaar, "gemeenten": len(members)},
    )
    return report
