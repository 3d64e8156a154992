"""AVG inzage: everything about one person and every disclosure, as JSON, text and over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from koppelpunt.app.inzage import InvalidBsnError, run_inzage, to_json, to_text
from koppelpunt.cli.main import app
from koppelpunt.config import Settings
from koppelpunt.pipeline.run import UNAVAILABLE, LookupKey, LookupResult
from koppelpunt.store import verwerkingenlog as vlog
from koppelpunt.store.db import create_engine, session_factory, upgrade
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.verwerkingenlog import LogCipher
from tests.beheer.helpers import all_published
from tests.conftest import Running, auth
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml

XML = {"Content-Type": "application/xml"}


async def _post_and_publish(client: httpx.AsyncClient, running: Running) -> None:
    async with running.runtime.sessions.begin() as s:
        await upsert_woonregister(s, [(BSN[0], "0363", None)])
    p = await client.post(
        "/v1/prognoses",
        content=prognose_xml("inz-1", [L(bsn=BSN[0]), L(bsn=BSN[1])]),
        headers={**XML, **auth("koppelpunt-vo")},
    )
    a = await client.post(
        "/v1/aanmeldstatussen",
        content=aanmeldstatus_xml("inz-2", [A(bsn=BSN[0])]),
        headers={**XML, **auth("koppelpunt-mbo")},
    )
    assert (p.status_code, a.status_code) == (202, 202)
    await all_published(running)


class TestInzageEndpoint:
    async def test_lists_what_is_stored_and_every_disclosure(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Decisions, signaleringen, the disclosures to GM0363, register rows and log lines."""
        await _post_and_publish(client, running)
        r = await client.post("/v1/beheer/inzage", json={"bsn": BSN[0]}, headers=auth("beheer"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["bsn"] == BSN[0] and body["opgevraagdDoor"] == "beheer"
        assert [(b["berichtId"], b["uitkomst"]) for b in body["beslissingen"]] == [
            ("inz-1", "doorgestuurd"),
            ("inz-2", "doorgestuurd"),
        ]
        assert sorted(s["type"] for s in body["signaleringen"]) == ["AANMELDSTATUS", "PROGNOSE"]
        assert len(body["verstrekkingen"]) == 2
        assert {v["gemeentecode"] for v in body["verstrekkingen"]} == {"GM0363"}
        assert all(v["verstrektOp"] for v in body["verstrekkingen"])
        assert body["woonregister"] == [
            {
                "gemeentecode": "0363",
                "geldigVanaf": None,
                "bijgewerktOp": body["woonregister"][0]["bijgewerktOp"],
            }
        ]
        names = [v["naam"] for v in body["verwerkingen"]]
        assert names.count("publiceren") == 2 and names.count("ontvangen") == 2
        # Nothing about the other pupil in the same message.
        assert BSN[1] not in r.text
        assert r.headers["cache-control"] == "no-store"

    async def test_each_inzage_is_logged_with_who(
        self, client: httpx.AsyncClient, running: Running, settings: Settings
    ) -> None:
        """The inzage itself is a log line about that person, with the operator's name."""
        for _ in range(2):
            r = await client.post("/v1/beheer/inzage", json={"bsn": BSN[5]}, headers=auth("beheer"))
            assert r.status_code == 200
        # The second inzage shows the first one.
        assert [v["naam"] for v in r.json()["verwerkingen"]] == ["beheer.inzage"]
        async with running.runtime.sessions() as s:
            lines = await vlog.find_by_bsn(s, LogCipher.from_settings(settings), BSN[5])
        assert [(x.name, x.actor, x.verwerkingsactiviteit) for x in lines] == [
            ("beheer.inzage", "beheer", vlog.ACTIVITY_INZAGE)
        ] * 2

    @pytest.mark.parametrize("bsn", ["123456789", "12345678", "abcdefghi", ""])
    async def test_invalid_bsn_is_a_problem_400(self, client: httpx.AsyncClient, bsn: str) -> None:
        """A BSN failing the elfproef is refused with problem+json, nothing logged."""
        r = await client.post("/v1/beheer/inzage", json={"bsn": bsn}, headers=auth("beheer"))
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("application/problem+json")

    async def test_only_operators(self, client: httpx.AsyncClient) -> None:
        """No key: 401; a sender key: 403."""
        r = await client.post("/v1/beheer/inzage", json={"bsn": BSN[0]})
        assert r.status_code == 401
        r = await client.post(
            "/v1/beheer/inzage", json={"bsn": BSN[0]}, headers=auth("koppelpunt-vo")
        )
        assert r.status_code == 403


class DownLookup:
    """A BRP that is down (a double of the BRP, not of infrastructure): records get parked."""

    shares_session = False

    async def lookup(
        self, keys: Sequence[LookupKey], session: object = None
    ) -> dict[LookupKey, LookupResult]:
        return dict.fromkeys(keys, UNAVAILABLE)


class TestInzagePupilState:
    async def test_prognoses_aanmeldingen_with_history_and_last_gemeente(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Issue 3's state about the person is part of the inzage, nothing of the other."""
        await _post_and_publish(client, running)
        later = await client.post(
            "/v1/aanmeldstatussen",
            content=aanmeldstatus_xml(
                "inz-3", [A(bsn=BSN[0], status="INGESCHREVEN", statusdatum="2027-06-01")]
            ),
            headers={**XML, **auth("koppelpunt-mbo")},
        )
        assert later.status_code == 202, later.text
        await all_published(running)
        r = await client.post("/v1/beheer/inzage", json={"bsn": BSN[0]}, headers=auth("beheer"))
        body = r.json()
        assert [p["berichtId"] for p in body["prognoses"]] == ["inz-1"]
        (aanmelding,) = body["aanmeldingen"]
        assert aanmelding["status"] == "INGESCHREVEN"
        assert [(h["status"], h["berichtId"]) for h in aanmelding["statussen"]] == [
            ("AANGEMELD", "inz-2"),
            ("INGESCHREVEN", "inz-3"),
        ]
        assert body["leerlingGemeente"]["gemeentecode"] == "GM0363"
        assert body["geparkeerd"] == []
        text = to_text(
            await run_inzage(running.runtime.sessions, running.runtime.settings, BSN[0], "t")
        )
        assert "Aanmeldingen (1):" in text and "INGESCHREVEN" in text
        assert "Prognoses (1):" in text

    async def test_parked_records_are_listed(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A record waiting for the woongemeente lookup shows under `geparkeerd`."""
        running.runtime.lookup = DownLookup()
        a = await client.post(
            "/v1/aanmeldstatussen",
            content=aanmeldstatus_xml("inz-park", [A(bsn=BSN[2])]),
            headers={**XML, **auth("koppelpunt-mbo")},
        )
        assert a.status_code == 202, a.text
        r = await client.post("/v1/beheer/inzage", json={"bsn": BSN[2]}, headers=auth("beheer"))
        assert [(p["berichtId"], p["recordIndex"]) for p in r.json()["geparkeerd"]] == [
            ("inz-park", 0)
        ]
        text = to_text(
            await run_inzage(running.runtime.sessions, running.runtime.settings, BSN[2], "t")
        )
        assert "Geparkeerde records, wachten op de woongemeente (1):" in text


class TestInzageText:
    async def test_text_names_disclosures(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """The text form lists each disclosure with gemeente and type."""
        await _post_and_publish(client, running)
        result = await run_inzage(
            running.runtime.sessions, running.runtime.settings, BSN[0], "tester"
        )
        text = to_text(result)
        assert "Verstrekkingen aan gemeenten (2):" in text
        assert "GM0363  PROGNOSE" in text and "GM0363  AANMELDSTATUS" in text
        assert to_json(result)["opgevraagdDoor"] == "tester"
        with pytest.raises(InvalidBsnError):
            await run_inzage(running.runtime.sessions, running.runtime.settings, "1", "tester")


class TestInzageCli:
    def test_json_and_text(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """`koppelpunt inzage --bsn … --json` prints JSON; each run is logged; bad BSN exits 2."""
        url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
        monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", url)

        async def seed() -> None:
            await upgrade(url)
            engine = create_engine(url)
            try:
                async with session_factory(engine).begin() as s:
                    await upsert_woonregister(s, [(BSN[0], "0599", None)])
            finally:
                await engine.dispose()

        asyncio.run(seed())
        runner = CliRunner()
        first = runner.invoke(app, ["inzage", "--bsn", BSN[0], "--json", "--actor", "cli-test"])
        assert first.exit_code == 0, first.output
        body = json.loads(first.stdout)
        assert body["woonregister"][0]["gemeentecode"] == "0599"
        assert body["verwerkingen"] == []
        second = runner.invoke(app, ["inzage", "--bsn", BSN[0]])
        assert second.exit_code == 0, second.output
        assert "Woonregister (1):" in second.output
        assert "beheer.inzage" in second.output and "door cli-test" in second.output
        bad = runner.invoke(app, ["inzage", "--bsn", "123456789"])
        assert bad.exit_code == 2
        assert "elfproef" in bad.output
