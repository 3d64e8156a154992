"""The /beheer pages over HTTP: login, session cookie, CSRF, what the overview shows."""

from __future__ import annotations

import re

import httpx

from koppelpunt.api.routes.beheer_page import COOKIE, bar_chart
from koppelpunt.store.register import upsert_woonregister
from tests.beheer.helpers import all_published
from tests.conftest import Running, auth
from tests.messages import BSN, L, prognose_xml

XML = {"Content-Type": "application/xml"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def login(client: httpx.AsyncClient, key: str = "test-operator-key") -> httpx.Response:
    return await client.post("/beheer/login", data={"sleutel": key})


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no csrf field"
    return match.group(1)


class TestLogin:
    async def test_anonymous_is_sent_to_login(self, client: httpx.AsyncClient) -> None:
        """Without key or session the overview redirects to the login form."""
        r = await client.get("/beheer")
        assert r.status_code == 303 and r.headers["location"] == "/beheer/login"
        form = await client.get("/beheer/login")
        assert form.status_code == 200 and 'name="sleutel"' in form.text

    async def test_only_an_operator_key_logs_in(self, client: httpx.AsyncClient) -> None:
        """A wrong key and a sender's key are refused with 401; no cookie is set."""
        for key in ("wrong", "test-vo-key"):
            r = await login(client, key)
            assert r.status_code == 401 and "ongeldige beheersleutel" in r.text
            assert COOKIE not in r.headers.get("set-cookie", "")

    async def test_session_cookie_is_signed_httponly_strict(
        self, client: httpx.AsyncClient
    ) -> None:
        """The operator key gives an HttpOnly, SameSite=Strict cookie that opens the overview."""
        r = await login(client)
        assert r.status_code == 303 and r.headers["location"] == "/beheer"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/beheer" in cookie
        page = await client.get("/beheer")
        assert page.status_code == 200 and 'id="totaal-signaleringen"' in page.text
        assert "beheer" in page.text  # the operator's name in the header

    async def test_tampered_cookie_is_refused(self, client: httpx.AsyncClient) -> None:
        """Changing one character of the signed cookie makes it worthless."""
        await login(client)
        value = client.cookies[COOKIE]
        client.cookies.clear()
        body, _, sig = value.partition(".")
        client.cookies.set(COOKIE, body + "." + ("A" if sig[0] != "A" else "B") + sig[1:])
        r = await client.get("/beheer")
        assert r.status_code == 303

    async def test_bearer_header_works_without_session(self, client: httpx.AsyncClient) -> None:
        """Scripts may use the operator key as a bearer header instead of the form."""
        r = await client.get("/beheer", headers=auth("beheer"))
        assert r.status_code == 200
        r = await client.get("/beheer", headers=auth("koppelpunt-vo"))
        assert r.status_code == 303

    async def test_logout_clears_the_session(self, client: httpx.AsyncClient) -> None:
        """After logout the overview asks for a login again."""
        await login(client)
        await client.post("/beheer/logout")
        assert (await client.get("/beheer")).status_code == 303


class TestOverview:
    async def test_counts_refusals_and_backlog(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Signaleringen per gemeente and type, refusals with reasons, an empty outbox."""
        async with running.runtime.sessions.begin() as s:
            await upsert_woonregister(s, [(BSN[0], "0363", None), (BSN[1], "0599", None)])
        ok = await client.post(
            "/v1/prognoses",
            content=prognose_xml("page-1", [L(bsn=BSN[0]), L(bsn=BSN[1])]),
            headers={**XML, **auth("koppelpunt-vo")},
        )
        bad = await client.post(
            "/v1/prognoses", content=b"<niet-af", headers={**XML, **auth("koppelpunt-vo")}
        )
        assert (ok.status_code, bad.status_code) == (202, 400)
        await all_published(running)
        await login(client)
        html = (await client.get("/beheer")).text
        assert re.search(r'id="totaal-signaleringen">\s*2\s*<', html)
        assert 'data-gemeente="GM0363"' in html and 'data-gemeente="GM0599"' in html
        assert "PROGNOSE: 1" in html
        assert re.search(r'id="outbox-backlog">\s*0\s*<', html)
        assert re.search(r'id="totaal-afwijzingen">\s*1\s*<', html)
        assert "koppelpunt-vo" in html and ">400<" in html
        assert "<svg" in html and "<script" not in html
        # Works offline: nothing is loaded from elsewhere.
        assert not re.search(r'(src|href)="https?:', html)
        assert BSN[0] not in html

    async def test_page_escapes_stored_text(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A refused message's berichtId is shown escaped, never as markup."""
        await client.post(
            "/v1/prognoses",
            content=b"<niet-af",
            headers={**auth("koppelpunt-vo"), "Content-Type": "text/html<script>"},
        )
        r = await client.get("/beheer", headers=auth("beheer"))
        assert "<script>" not in r.text

    def test_chart_escapes_labels(self) -> None:
        """Type names in the chart are escaped."""
        svg = bar_chart(["2027-01-01"], {"<x>": {"2027-01-01": 3}})
        assert "<x>" not in svg and "&lt;x&gt;" in svg


class TestReplayForm:
    async def test_confirmation_needs_the_session_csrf_token(
        self, client: httpx.AsyncClient
    ) -> None:
        """Without the form's token the replay is refused (403); with it, a confirmation page."""
        await login(client)
        html = (await client.get("/beheer")).text
        r = await client.post("/beheer/replay", data={"gemeente": "GM0363"})
        assert r.status_code == 403
        r = await client.post("/beheer/replay", data={"gemeente": "GM0363", "csrf": "x" * 32})
        assert r.status_code == 403
        r = await client.post("/beheer/replay", data={"gemeente": "GM0363", "csrf": csrf_of(html)})
        assert r.status_code == 200 and 'id="bevestigen"' in r.text and "GM0363" in r.text
        # Confirming also needs the token.
        r = await client.post("/beheer/replay/bevestigen", data={"gemeente": "GM0363"})
        assert r.status_code == 403

    async def test_anonymous_post_goes_to_login(self, client: httpx.AsyncClient) -> None:
        """A replay POST without a session does nothing and redirects to the login."""
        r = await client.post("/beheer/replay/bevestigen", data={"gemeente": "GM0363"})
        assert r.status_code == 303 and r.headers["location"] == "/beheer/login"


class TestCrossOrigin:
    async def test_posts_from_another_origin_are_refused(self, client: httpx.AsyncClient) -> None:
        """A form posted from another site (Origin differs) is refused, login included."""
        for origin in ("https://evil.example", "null"):
            r = await client.post(
                "/beheer/login", data={"sleutel": "test-operator-key"}, headers={"Origin": origin}
            )
            assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
        evil = {"Origin": "https://evil.example"}
        await login(client)
        html = (await client.get("/beheer")).text
        r = await client.post(
            "/beheer/replay", data={"gemeente": "GM0363", "csrf": csrf_of(html)}, headers=evil
        )
        assert r.status_code == 403
        same = {"Origin": "http://koppelpunt.test"}
        r = await client.post(
            "/beheer/replay", data={"gemeente": "GM0363", "csrf": csrf_of(html)}, headers=same
        )
        assert r.status_code == 200
