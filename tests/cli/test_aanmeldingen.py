"""`koppelpunt aanmeldingen buiten-flow` on a real database: flagged aanmeldingen, no BSNs by
default."""

from __future__ import annotations

import asyncio
import json

import httpx

from koppelpunt.config import Settings
from koppelpunt.store.verwerkingenlog import LogCipher, find_by_bsn, list_lines
from tests.conftest import Running
from tests.messages import BSN, A
from tests.test_derived_end_to_end import post_status, register, run_cli, settled


async def flagged_world(client: httpx.AsyncClient, running: Running) -> None:
    """Two aanmeldingen going back from INGESCHREVEN, one following the flow."""
    await register(running, [(BSN[0], "0363", None), (BSN[1], "0363", None)])
    await post_status(
        client,
        "bf-1",
        [
            A(aanmelding_id="X-1", bsn=BSN[0], status="INGESCHREVEN", statusdatum="2027-03-01"),
            A(aanmelding_id="OK-1", bsn=BSN[1], status="AANGEMELD", statusdatum="2027-03-01"),
        ],
    )
    await post_status(
        client,
        "bf-2",
        [
            A(aanmelding_id="X-1", bsn=BSN[0], status="AANGEMELD", statusdatum="2027-04-01"),
            A(aanmelding_id="OK-1", bsn=BSN[1], status="INGESCHREVEN", statusdatum="2027-04-01"),
        ],
    )
    await post_status(
        client,
        "bf-3",
        [
            A(
                aanmelding_id="X-2",
                bsn=BSN[1],
                status="GEEN_INSCHRIJVING",
                statusdatum="2027-04-02",
            ),
            A(aanmelding_id="X-2", bsn=BSN[1], status="AANGEMELD", statusdatum="2027-04-03"),
        ],
    )


async def test_buiten_flow(client: httpx.AsyncClient, running: Running, settings: Settings) -> None:
    await flagged_world(client, running)
    # The app's relay runs in this process: let it finish, or its log lines land in the
    # output CliRunner captures while the command runs.
    await settled(running)
    env = {"KOPPELPUNT_DATABASE_URL": settings.database_url, "KOPPELPUNT_LOG_JSON": "false"}

    def invoke(*args: str) -> str:
        result = run_cli(["aanmeldingen", "buiten-flow", *args], env)
        assert result.exit_code == 0, result.output
        return result.stdout

    out = await asyncio.to_thread(invoke)
    lines = out.splitlines()
    assert sorted(lines[:2]) == [
        "30RT\tX-1\tINGESCHREVEN 2027-03-01 → AANGEMELD! 2027-04-01",
        "30RT\tX-2\tGEEN_INSCHRIJVING 2027-04-02 → AANGEMELD! 2027-04-03",
    ]
    assert lines[2] == "2 aanmeldingen outside the legal flow"
    assert "OK-1" not in out
    assert not any(bsn in out for bsn in BSN)

    data = json.loads(await asyncio.to_thread(invoke, "--json", "--limit", "1"))
    assert data["totaal"] == 2 and len(data["aanmeldingen"]) == 1
    item = data["aanmeldingen"][0]
    assert set(item) == {
        "instellingBrin",
        "aanmeldingId",
        "status",
        "statusdatum",
        "gewijzigd",
        "statussen",
    }
    assert item["status"] == "AANGEMELD" and item["instellingBrin"] == "30RT"
    assert [s["buitenFlow"] for s in item["statussen"]] == [False, True]
    assert not any(bsn in json.dumps(data) for bsn in BSN)

    shown = await asyncio.to_thread(invoke, "--show-bsn")
    assert f"30RT\tX-1\t{BSN[0]}\tINGESCHREVEN" in shown
    assert f"30RT\tX-2\t{BSN[1]}\tGEEN_INSCHRIJVING" in shown
    with_bsn = json.loads(await asyncio.to_thread(invoke, "--json", "--show-bsn"))
    assert {i["aanmeldingId"]: i["bsn"] for i in with_bsn["aanmeldingen"]} == {
        "X-1": BSN[0],
        "X-2": BSN[1],
    }

    # Each BSN shown is a disclosure: one verwerkingenlog line per person per --show-bsn run,
    # found by that person's BSN (blind index), and none for the runs without --show-bsn.
    cipher = LogCipher.from_settings(settings)
    async with running.runtime.sessions() as session:
        shown_lines = await list_lines(session, name_prefix="beheer.aanmeldingen_buiten_flow")
        first = await find_by_bsn(session, cipher, BSN[0])
    assert len(shown_lines) == 4
    assert {line.attributes["aanmeldingId"] for line in shown_lines} == {"X-1", "X-2"}
    assert sum(line.name == "beheer.aanmeldingen_buiten_flow" for line in first) == 2


async def test_none_flagged(running: Running, settings: Settings) -> None:
    env = {"KOPPELPUNT_DATABASE_URL": settings.database_url, "KOPPELPUNT_LOG_JSON": "false"}
    result = await asyncio.to_thread(run_cli, ["aanmeldingen", "buiten-flow"], env)
    assert result.exit_code == 0
    assert result.stdout == "0 aanmeldingen outside the legal flow\n"
