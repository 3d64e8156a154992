"""GET /v1/beheer/rapportage and the /beheer/rapportage page: counts only, operators only."""

from __future__ import annotations

import httpx

from tests.conftest import Running, auth
from tests.operations.test_rapportage import NINE_DIGITS, fill

URL = "/v1/beheer/rapportage?rmcRegio=21&schooljaar=2026-2027"


class TestApi:
    async def test_operator_gets_the_numbers_without_a_bsn(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        await fill(running.runtime)
        r = await client.get(URL, headers=auth("beheer"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["rmcRegio"] == 21 and body["drempel"] == 5
        assert {"GM0384", "GM0437"} <= {g["gemeentecode"] for g in body["gemeenten"]}
        assert body["totaal"]["PROGNOSE"]["signaleringen"]["totaal"] == 6
        assert body["totaal"]["PROGNOSE"]["jongeren"]["totaal"] == "<5"
        assert not NINE_DIGITS.search(r.text)

    async def test_refusals(self, client: httpx.AsyncClient) -> None:
        assert (await client.get(URL, headers=auth("koppelpunt-vo"))).status_code == 403
        assert (await client.get(URL)).status_code == 401
        bad = await client.get(
            "/v1/beheer/rapportage?rmcRegio=21&schooljaar=2026-2028", headers=auth("beheer")
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        unknown = await client.get(
            "/v1/beheer/rapportage?rmcRegio=77&schooljaar=2026-2027", headers=auth("beheer")
        )
        assert unknown.status_code == 422
        shape = await client.get(
            "/v1/beheer/rapportage?rmcRegio=21&schooljaar=26-27", headers=auth("beheer")
        )
        assert shape.status_code == 400


class TestPage:
    async def test_table_and_a_chart_per_type(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        await fill(running.runtime)
        login = await client.post("/beheer/login", data={"sleutel": "test-operator-key"})
        assert login.status_code in (200, 303)
        assert 'href="/beheer/rapportage"' in (await client.get("/beheer")).text
        r = await client.get("/beheer/rapportage?rmcRegio=21&schooljaar=2026-2027")
        assert r.status_code == 200, r.text
        assert "Agglomeratie Amsterdam" in r.text
        assert r.text.count("<svg") == 4  # PROGNOSE, AANMELDSTATUS, NIET_AANGEMELD, VERHUISD
        assert "&lt;5" in r.text and "<script" not in r.text
        assert not NINE_DIGITS.search(r.text)
        form = await client.get("/beheer/rapportage")
        assert form.status_code == 200 and 'name="schooljaar"' in form.text
        bad = await client.get("/beheer/rapportage?rmcRegio=x&schooljaar=2026-2027")
        assert bad.status_code == 400
