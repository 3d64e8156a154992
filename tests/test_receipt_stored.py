"""The receipt is stored by the bericht INSERT; a resend gets exactly the receipt of the 202.

The INSERT counts every signalering of the decision as new; when some were stored before
(deterministic ids) the stored receipt is corrected in the same transaction. Both paths are
checked through what a resend returns: the receipt as it was stored.
"""

from __future__ import annotations

import httpx

from koppelpunt.store import berichten
from koppelpunt.store.register import upsert_woonregister
from tests.conftest import Running, auth
from tests.messages import BSN, A, aanmeldstatus_xml

HEADERS = {"Content-Type": "application/xml", **auth("koppelpunt-mbo")}


async def post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/v1/aanmeldstatussen", content=body, headers=HEADERS)


class TestReceiptStoredWithTheBericht:
    async def test_resend_returns_the_receipt_of_the_first_delivery(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        async with running.runtime.sessions.begin() as session:
            await upsert_woonregister(session, [(BSN[0], "0363", None)])
        body = aanmeldstatus_xml("rcpt-1", [A(bsn=BSN[0], aanmelding_id="R-1")])
        first = await post(client, body)
        again = await post(client, body)
        assert first.status_code == 202
        assert first.json()["aantalSignaleringen"] == 1
        assert again.status_code == 200
        assert again.json() == first.json()

    async def test_corrected_receipt_is_what_is_stored(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Same status under a new berichtId: nothing new, and the stored receipt says 0."""
        async with running.runtime.sessions.begin() as session:
            await upsert_woonregister(session, [(BSN[0], "0363", None)])
        body = aanmeldstatus_xml("rcpt-a", [A(bsn=BSN[0], aanmelding_id="R-2")])
        assert (await post(client, body)).json()["aantalSignaleringen"] == 1
        second = body.replace(b"rcpt-a", b"rcpt-b")
        accepted = await post(client, second)
        resent = await post(client, second)
        assert accepted.status_code == 202
        assert accepted.json()["aantalSignaleringen"] == 0
        assert resent.status_code == 200
        assert resent.json() == accepted.json()
        async with running.runtime.sessions() as session:
            stored = await berichten.find_bericht(session, "rcpt-b")
        assert stored is not None
        assert stored.receipt == accepted.json()
