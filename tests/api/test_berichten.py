"""The senders' HTTP API: auth, content checks, receipts, idempotency, problem+json."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from koppelpunt.store.berichten import list_afwijzingen
from koppelpunt.store.register import upsert_woonregister
from tests.conftest import Running, auth
from tests.messages import BSN, ONDERWIJSNUMMER, A, L, aanmeldstatus_xml, prognose_xml

XML = {"Content-Type": "application/xml"}
PROBLEM = "application/problem+json"


async def register(running: Running, rows: list[tuple[str, str, date | None]]) -> None:
    async with running.runtime.sessions.begin() as session:
        await upsert_woonregister(session, rows)


class TestAuth:
    async def test_missing_key_is_401(self, client: httpx.AsyncClient) -> None:
        """No Authorization header: 401 problem+json."""
        r = await client.post("/v1/prognoses", content=prognose_xml("b", [L()]), headers=XML)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.headers["www-authenticate"] == "Bearer"

    async def test_unknown_key_is_401(self, client: httpx.AsyncClient) -> None:
        """A key that is not in the senders file: 401."""
        r = await client.post(
            "/v1/prognoses",
            content=prognose_xml("b", [L()]),
            headers={**XML, "Authorization": "Bearer nope"},
        )
        assert r.status_code == 401

    @pytest.mark.parametrize(
        ("path", "sender"),
        [
            ("/v1/aanmeldstatussen", "koppelpunt-vo"),
            ("/v1/prognoses", "koppelpunt-mbo"),
            ("/v1/prognoses", "beheer"),
        ],
    )
    async def test_wrong_role_is_403(
        self, client: httpx.AsyncClient, path: str, sender: str
    ) -> None:
        """vo posts only prognoses, mbo only aanmeldstatussen: otherwise 403."""
        r = await client.post(path, content=b"<x/>", headers={**XML, **auth(sender)})
        assert r.status_code == 403
        assert r.json()["code"] == "forbidden"


class TestContentChecks:
    async def test_wrong_content_type_is_415(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """JSON is refused with 415, and the refusal is stored."""
        r = await client.post(
            "/v1/prognoses",
            content=b"{}",
            headers={"Content-Type": "application/json", **auth("koppelpunt-vo")},
        )
        assert r.status_code == 415
        assert r.headers["content-type"].startswith(PROBLEM)
        async with running.runtime.sessions() as session:
            stored = await list_afwijzingen(session)
        assert [a.status_code for a in stored] == [415]

    async def test_text_xml_with_charset_is_accepted(self, client: httpx.AsyncClient) -> None:
        """text/xml; charset=utf-8 is XML too."""
        r = await client.post(
            "/v1/prognoses",
            content=prognose_xml("ct-1", [L()]),
            headers={"Content-Type": "text/xml; charset=utf-8", **auth("koppelpunt-vo")},
        )
        assert r.status_code == 202

    async def test_body_over_the_limit_is_413(self, client: httpx.AsyncClient) -> None:
        """A body over MAX_BODY_BYTES is refused with 413 before it is processed."""
        big = prognose_xml("big", [L()] * 120_000)
        r = await client.post(
            "/v1/prognoses", content=big, headers={**XML, **auth("koppelpunt-vo")}
        )
        assert r.status_code == 413
        assert r.json()["maxBytes"] == 10 * 1024 * 1024

    async def test_invalid_message_lists_every_error(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """XSD-invalid: 400 with each error's line, column and location; stored for operators."""
        body = prognose_xml("inv-1", [L(bsn="12345"), L(onderwijssoort="mavo")], brin="2x")
        r = await client.post(
            "/v1/prognoses", content=body, headers={**XML, **auth("koppelpunt-vo")}
        )
        assert r.status_code == 400
        problem = r.json()
        assert r.headers["content-type"].startswith(PROBLEM)
        assert problem["status"] == 400
        fouten = problem["fouten"]
        assert len(fouten) >= 3
        locaties = {f["locatie"] for f in fouten}
        assert "/prognoses/school/brin" in locaties
        assert "/prognoses/leerling[1]/bsn" in locaties
        assert "/prognoses/leerling[2]/onderwijssoort" in locaties
        assert all(isinstance(f["regel"], int) for f in fouten)
        async with running.runtime.sessions() as session:
            stored = await list_afwijzingen(session)
        assert stored[0].status_code == 400
        assert stored[0].bericht_id == "inv-1"
        assert len(stored[0].reasons) == len(fouten)

    async def test_not_well_formed_is_400(self, client: httpx.AsyncClient) -> None:
        """Truncated XML: 400 with the line of the error, never a 500."""
        body = prognose_xml("nwf", [L()])[:-30]
        r = await client.post(
            "/v1/prognoses", content=body, headers={**XML, **auth("koppelpunt-vo")}
        )
        assert r.status_code == 400
        assert r.json()["fouten"][0]["regel"] is not None

    @pytest.mark.parametrize(
        "doctype",
        [
            '<!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
            '<!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
            '<!DOCTYPE p SYSTEM "http://127.0.0.1:9/evil.dtd">',
        ],
    )
    async def test_doctype_is_refused(self, client: httpx.AsyncClient, doctype: str) -> None:
        """XXE, billion laughs and external DTDs: 400 without resolving anything."""
        body = prognose_xml("x", [L()]).replace(
            b"<prognoses xmlns", doctype.encode() + b"\n<prognoses xmlns", 1
        )
        r = await client.post(
            "/v1/prognoses", content=body, headers={**XML, **auth("koppelpunt-vo")}
        )
        assert r.status_code == 400
        assert b"root:" not in r.content

    async def test_aanmeldstatus_posted_as_prognose_is_400(self, client: httpx.AsyncClient) -> None:
        """An aanmeldstatus document on the prognose endpoint is refused as invalid."""
        r = await client.post(
            "/v1/prognoses",
            content=aanmeldstatus_xml("w", [A()]),
            headers={**XML, **auth("koppelpunt-vo")},
        )
        assert r.status_code == 400


class TestReceipt:
    async def test_receipt_counts_every_outcome(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """202 with counts per filter reason and the records rejected on content."""
        await register(running, [(BSN[0], "0363", None), (BSN[1], "1999", None)])
        body = prognose_xml(
            "r-1",
            [
                L(bsn=BSN[0]),  # forwarded to GM0363
                L(bsn=BSN[1]),  # RNI: geenWoongemeente
                L(bsn=BSN[2], geboortedatum="2000-01-01"),  # leeftijd
                L(bsn=BSN[3], hoogste_diploma="havo"),  # startkwalificatie
                L(bsn=None, onderwijsnummer=ONDERWIJSNUMMER),  # geenBsn
                L(bsn="999990008"),  # elfproef fails: afgewezen
                L(bsn=BSN[4]),  # not in the register: geenWoongemeente
            ],
        )
        r = await client.post(
            "/v1/prognoses", content=body, headers={**XML, **auth("koppelpunt-vo")}
        )
        assert r.status_code == 202, r.text
        receipt = r.json()
        assert receipt["berichtId"] == "r-1"
        assert receipt["aantalRecords"] == 7
        assert receipt["aantalSignaleringen"] == 1
        assert receipt["gefilterd"] == {
            "leeftijd": 1,
            "startkwalificatie": 1,
            "geenBsn": 1,
            "geenWoongemeente": 2,
        }
        assert [a["index"] for a in receipt["afgewezen"]] == [5]
        assert "elfproef" in receipt["afgewezen"][0]["reden"]

    async def test_identical_resend_returns_the_original_receipt(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Same berichtId and bytes: 200 with the original receipt, nothing new."""
        await register(running, [(BSN[0], "0363", None)])
        body = aanmeldstatus_xml("s-1", [A(bsn=BSN[0])])
        first = await client.post(
            "/v1/aanmeldstatussen", content=body, headers={**XML, **auth("koppelpunt-mbo")}
        )
        again = await client.post(
            "/v1/aanmeldstatussen", content=body, headers={**XML, **auth("koppelpunt-mbo")}
        )
        assert first.status_code == 202
        assert again.status_code == 200
        assert again.json() == first.json()

    async def test_same_id_other_bytes_is_409(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Same berichtId with different content: 409, and the attempt is stored."""
        first = await client.post(
            "/v1/aanmeldstatussen",
            content=aanmeldstatus_xml("s-2", [A(status="AANGEMELD")]),
            headers={**XML, **auth("koppelpunt-mbo")},
        )
        other = await client.post(
            "/v1/aanmeldstatussen",
            content=aanmeldstatus_xml("s-2", [A(status="INGETROKKEN")]),
            headers={**XML, **auth("koppelpunt-mbo")},
        )
        assert first.status_code == 202
        assert other.status_code == 409
        assert other.headers["content-type"].startswith(PROBLEM)
        async with running.runtime.sessions() as session:
            assert [a.status_code for a in await list_afwijzingen(session)] == [409]

    async def test_receipt_can_be_read_back(self, client: httpx.AsyncClient) -> None:
        """GET /v1/berichten/{id}: the sender and operators see it, another sender does not."""
        body = prognose_xml("g-1", [L()])
        posted = await client.post(
            "/v1/prognoses", content=body, headers={**XML, **auth("koppelpunt-vo")}
        )
        own = await client.get("/v1/berichten/g-1", headers=auth("koppelpunt-vo"))
        operator = await client.get("/v1/berichten/g-1", headers=auth("beheer"))
        other = await client.get("/v1/berichten/g-1", headers=auth("ander-vo"))
        missing = await client.get("/v1/berichten/nope", headers=auth("beheer"))
        anonymous = await client.get("/v1/berichten/g-1")
        assert own.status_code == operator.status_code == 200
        assert own.json() == posted.json() == operator.json()
        assert other.status_code == 403
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith(PROBLEM)
        assert anonymous.status_code == 401


class TestPlatformEndpoints:
    async def test_livez(self, client: httpx.AsyncClient) -> None:
        """/livez answers while the process runs."""
        assert (await client.get("/livez")).status_code == 200

    async def test_readyz_checks_database_and_kafka(self, client: httpx.AsyncClient) -> None:
        """/readyz is 200 with both the database and the broker reachable, and the relay
        (in this process) not failing."""
        r = await client.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {
            "status": "ok",
            "database": True,
            "databaseWritable": True,
            "kafka": True,
            "publishing": True,
            "relayError": None,
        }

    async def test_metrics_count_messages(self, client: httpx.AsyncClient) -> None:
        """/metrics exposes Prometheus counters that move with traffic."""
        await client.post(
            "/v1/prognoses",
            content=prognose_xml("m-1", [L()]),
            headers={**XML, **auth("koppelpunt-vo")},
        )
        text = (await client.get("/metrics")).text
        assert 'koppelpunt_berichten_total{result="accepted",soort="prognose"} 1.0' in text

    async def test_openapi_documents_the_endpoints(self, client: httpx.AsyncClient) -> None:
        """/openapi.json lists the endpoints with an XML request body."""
        spec = (await client.get("/openapi.json")).json()
        post_spec = spec["paths"]["/v1/prognoses"]["post"]
        assert "application/xml" in post_spec["requestBody"]["content"]
        assert "/v1/berichten/{berichtId}" in spec["paths"]
        assert (await client.get("/docs")).status_code == 200

    async def test_unknown_path_is_problem_json(self, client: httpx.AsyncClient) -> None:
        """Even a 404 for an unknown path is problem+json."""
        r = await client.get("/v1/nope")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith(PROBLEM)
