"""The RMC-effectrapportage on the real database: numbers equal a hand-computed fixture."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import insert

from koppelpunt.app.rapportage import RapportageError, rapportage
from koppelpunt.config import Settings
from koppelpunt.pipeline.rapportage import leeftijdsgroep, mask, parse_schooljaar
from koppelpunt.runtime import Runtime
from koppelpunt.store.outbox import NewSignalering, add_signaleringen
from koppelpunt.store.tables import leerling_prognoses
from koppelpunt.store.verwerkingenlog import list_lines

from .helpers import built, invoke_cli

# Region 21 (Agglomeratie Amsterdam): Diemen GM0384, Ouder-Amstel GM0437. Ages on 2026-08-01.
P17 = ("111111110", date(2008, 8, 2))  # 17: turns 18 the day after
P18 = ("222222220", date(2008, 8, 1))  # 18 on the day itself
P22 = ("333333330", date(2003, 8, 2))  # 22: turns 23 the day after
P23 = ("444444440", date(2003, 8, 1))  # 23 on the day itself
ANON = "555555550"  # no birth date stored (retention): onbekend
IN = datetime(2026, 10, 1, 12, tzinfo=UTC)
FIRST_MINUTE = datetime(2026, 7, 31, 22, 30, tzinfo=UTC)  # 1 Aug 00:30 Dutch time: inside
LAST_EVENING = datetime(2026, 7, 31, 21, 30, tzinfo=UTC)  # 31 Jul 23:30 Dutch time: outside
AFTER = datetime(2027, 7, 31, 22, 30, tzinfo=UTC)  # 1 Aug 2027 00:30: outside

# (bsn, gemeente, type, created_at)
SIGNALERINGEN = [
    (P17[0], "GM0384", "PROGNOSE", IN),
    (P17[0], "GM0384", "PROGNOSE", IN),
    (P17[0], "GM0384", "NIET_AANGEMELD", IN),
    (P17[0], "GM0599", "PROGNOSE", IN),  # Rotterdam: not in the region
    (P18[0], "GM0384", "PROGNOSE", IN),
    (P18[0], "GM0384", "PROGNOSE", FIRST_MINUTE),
    (P18[0], "GM0437", "AANMELDSTATUS", IN),
    (P22[0], "GM0384", "PROGNOSE", IN),
    (P22[0], "GM0384", "PROGNOSE", LAST_EVENING),
    (P22[0], "GM0384", "AANMELDSTATUS", IN),
    (P22[0], "GM0384", "AANMELDSTATUS", IN),
    (P22[0], "GM0384", "AANMELDSTATUS", IN),
    (P23[0], "GM0437", "AANMELDSTATUS", IN),
    (P23[0], "GM0437", "AANMELDSTATUS", AFTER),
    (P23[0], "GM0437", "AANMELDSTATUS", IN),
    (P23[0], "GM0437", "VERHUISD", IN),
    (ANON, "GM0437", "PROGNOSE", IN),
]


def zero() -> dict[str, int]:
    return {"onder18": 0, "18tot23": 0, "23plus": 0, "onbekend": 0, "totaal": 0}


def cells(**values: int) -> dict[str, int]:
    out = zero()
    out.update({k.replace("a18tot23", "18tot23"): v for k, v in values.items()})
    return out


# Worked out by hand from the list above (threshold 1: nothing masked).
EXPECTED_DIEMEN = {
    "PROGNOSE": {
        "signaleringen": cells(onder18=2, a18tot23=2 + 1, totaal=5),
        "jongeren": cells(onder18=1, a18tot23=2, totaal=3),
    },
    "NIET_AANGEMELD": {
        "signaleringen": cells(onder18=1, totaal=1),
        "jongeren": cells(onder18=1, totaal=1),
    },
    "AANMELDSTATUS": {
        "signaleringen": cells(a18tot23=3, totaal=3),
        "jongeren": cells(a18tot23=1, totaal=1),
    },
}
EXPECTED_TOTAL = {
    "PROGNOSE": {
        "signaleringen": cells(onder18=2, a18tot23=3, onbekend=1, totaal=6),
        "jongeren": cells(onder18=1, a18tot23=2, onbekend=1, totaal=4),
    },
    "AANMELDSTATUS": {
        "signaleringen": cells(a18tot23=4, **{"23plus": 2}, totaal=6),
        "jongeren": cells(a18tot23=2, **{"23plus": 1}, totaal=3),
    },
    "NIET_AANGEMELD": {
        "signaleringen": cells(onder18=1, totaal=1),
        "jongeren": cells(onder18=1, totaal=1),
    },
    "VERHUISD": {
        "signaleringen": cells(**{"23plus": 1}, totaal=1),
        "jongeren": cells(**{"23plus": 1}, totaal=1),
    },
}


async def fill(rt: Runtime) -> None:
    async with rt.sessions.begin() as session:
        for bsn, born in (P17, P18, P22, P23):
            await session.execute(
                insert(leerling_prognoses).values(
                    bsn=bsn,
                    schooljaar="2026-2027",
                    geboortedatum=born,
                    brin="00AA",
                    onderwijssoort="VWO",
                    verzonden=IN,
                )
            )
        await add_signaleringen(
            session,
            [
                NewSignalering(
                    signalering_id=f"sig-{n}",
                    type=t,
                    gemeentecode=g,
                    bsn=bsn,
                    topic=f"vva.signalering.{g.lower()}",
                    payload=b"<s/>",
                    headers=[],
                    created_at=at,
                    bericht_pk=None,
                )
                for n, (bsn, g, t, at) in enumerate(SIGNALERINGEN)
            ],
        )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with built(settings.model_copy(update={"rapportage_min_cell": 1})) as rt:
        await rt.load_gemeenten()
        await fill(rt)
        yield rt


def nonzero(cijfers: dict[str, dict[str, dict[str, int]]]) -> dict[str, object]:
    return {t: m for t, m in cijfers.items() if m["signaleringen"]["totaal"] != 0}


class TestNumbers:
    async def test_equal_the_hand_computed_fixture(self, runtime: Runtime) -> None:
        report = await rapportage(
            runtime, regio=21, schooljaar="2026-2027", actor="test", today=date(2027, 9, 1)
        )
        by_code = {g["gemeentecode"]: g for g in report["gemeenten"]}
        assert "GM0599" not in by_code and {"GM0384", "GM0437"} <= set(by_code)
        assert nonzero(by_code["GM0384"]["cijfers"]) == EXPECTED_DIEMEN
        assert nonzero(report["totaal"]) == EXPECTED_TOTAL
        assert report["periode"] == {"van": "2026-08-01", "totEnMet": "2027-07-31"}
        assert report["leeftijdOp"] == "2026-08-01"

    async def test_small_cells_are_masked(self, runtime: Runtime) -> None:
        rt = runtime
        rt.settings = rt.settings.model_copy(update={"rapportage_min_cell": 5})
        report = await rapportage(rt, regio=21, schooljaar="2026-2027", actor="test")
        prognose = report["totaal"]["PROGNOSE"]
        assert prognose["signaleringen"]["totaal"] == 6
        assert prognose["signaleringen"]["18tot23"] == "<5"
        assert prognose["jongeren"]["totaal"] == "<5"
        assert prognose["jongeren"]["23plus"] == 0
        diemen = next(g for g in report["gemeenten"] if g["gemeentecode"] == "GM0384")
        assert diemen["cijfers"]["PROGNOSE"]["signaleringen"]["totaal"] == 5

    async def test_each_report_is_logged_as_an_operator_action(self, runtime: Runtime) -> None:
        await rapportage(runtime, regio=21, schooljaar="2026-2027", actor="cli:tester")
        async with runtime.sessions() as session:
            lines = await list_lines(session, name_prefix="beheer.rapportage")
        assert len(lines) == 1

    async def test_unknown_region_and_bad_schooljaar(self, runtime: Runtime) -> None:
        with pytest.raises(RapportageError):
            await rapportage(runtime, regio=40, schooljaar="2026-2027", actor="t")
        with pytest.raises(RapportageError):
            await rapportage(runtime, regio=21, schooljaar="2026-2028", actor="t")


NINE_DIGITS = re.compile(r"(?<![0-9])[0-9]{9}(?![0-9])")


class TestCli:
    @pytest.mark.parametrize("fmt", [[], ["--json"], ["--csv"]])
    async def test_no_nine_digit_number_in_any_output(
        self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, fmt: list[str]
    ) -> None:
        monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", runtime.settings.database_url)
        result = await invoke_cli(
            ["rapportage", "--rmc-regio", "21", "--schooljaar", "2026-2027", *fmt]
        )
        assert result.exit_code == 0, result.output
        assert "GM0384" in result.stdout
        assert not NINE_DIGITS.search(result.stdout), result.stdout
        if fmt == ["--json"]:
            assert json.loads(result.stdout)["drempel"] == 5
        if fmt == ["--csv"]:
            assert result.stdout.splitlines()[0].startswith("gemeentecode,naam,type,maat")


class TestPure:
    def test_age_groups_on_the_boundaries(self) -> None:
        periode = parse_schooljaar("2026-2027")
        assert [leeftijdsgroep(b, periode) for _, b in (P17, P18, P22, P23)] == [
            "onder18",
            "18tot23",
            "18tot23",
            "23plus",
        ]
        assert leeftijdsgroep(None, periode) == "onbekend"

    def test_mask(self) -> None:
        assert [mask(n, 5) for n in (0, 1, 4, 5)] == [0, "<5", "<5", 5]
