"""No BSN in what refusals leave behind: problem bodies, stored reasons, the /beheer page.

The texts name places, not values; behind that, every run of nine or more digits is masked in
every problem body (also the framework's own: 404s, request validation), in the reasons stored
with a refused message, and where /beheer shows them (rows stored before they were masked)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from koppelpunt.store.berichten import add_afwijzing, list_afwijzingen
from tests.conftest import Running, auth
from tests.hostile import CASES_DIR

XML = {"Content-Type": "application/xml"}
BSN = "999993653"


def assert_no_bsn(text: str) -> None:
    assert BSN not in text
    assert not re.search(r"\d{9}", text), text


class TestProblemBodies:
    async def test_a_bsn_in_a_date_field_is_not_echoed(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Issue 21: "Invalid datetime string '999993653'" came back and was stored."""
        body = (CASES_DIR / "bsn-in-date.xml").read_bytes()
        r = await client.post(
            "/v1/prognoses", content=body, headers={**XML, **auth("koppelpunt-vo")}
        )
        assert r.status_code == 400
        fouten = r.json()["fouten"]
        assert {f["locatie"] for f in fouten} == {"/prognoses/leerling[1]/geboortedatum"}
        assert all("geboortedatum" in f["reden"] for f in fouten)
        assert_no_bsn(r.text)
        async with running.runtime.sessions() as session:
            (stored,) = await list_afwijzingen(session)
        assert_no_bsn(str(stored.reasons))

    async def test_a_path_with_a_bsn_is_masked(self, client: httpx.AsyncClient) -> None:
        """The framework's 404 names the request path as `instance`."""
        r = await client.get(f"/v1/nergens/R{BSN}")
        assert r.status_code == 404
        assert r.json()["instance"] == "/v1/nergens/R*********"

    async def test_request_validation_errors_are_masked(self, client: httpx.AsyncClient) -> None:
        """pydantic's errors name the sender's own JSON keys."""
        r = await client.post("/v1/beheer/replays", json={BSN: 1}, headers=auth("beheer"))
        assert r.status_code == 400
        assert r.json()["code"] == "invalid-request"
        assert_no_bsn(r.text)
        assert any(f["locatie"] == "body/*********" for f in r.json()["fouten"])


class TestStoredAndShown:
    async def test_a_refusal_before_parsing_is_stored_masked(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A 415's reason quotes the sender's content type: stored and answered masked."""
        r = await client.post(
            "/v1/prognoses",
            content=b"<x/>",
            headers={"Content-Type": f"application/x-{BSN}", **auth("koppelpunt-vo")},
        )
        assert r.status_code == 415
        assert_no_bsn(r.text)
        async with running.runtime.sessions() as session:
            (stored,) = await list_afwijzingen(session)
        assert stored.reasons == [{"reden": "content-type application/x-*********"}]

    async def test_the_page_masks_reasons_stored_unmasked(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Rows stored before reasons were masked show masked on /beheer."""
        async with running.runtime.sessions.begin() as session:
            await add_afwijzing(
                session,
                received_at=datetime.now(UTC),
                sender="koppelpunt-vo",
                soort="prognose",
                bericht_id=None,
                status_code=400,
                reasons=[{"reden": f"Invalid datetime string '{BSN}'"}],
                raw=None,
                content_type="application/xml",
            )
        html = (await client.get("/beheer", headers=auth("beheer"))).text
        assert "Invalid datetime string" in html
        assert BSN not in html
