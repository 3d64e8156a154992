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

    async def test_session_cookie_is_httponly_strict(self, client: httpx.AsyncClient) -> None:
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
        client.cookies.set(COOKIE, ("A" if value[0] != "A" else "B") + value[1:])
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

    async def test_another_gemeentes_topic_is_refused(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A to_topic outside the gemeente (the replay use case's rule): a 400 page naming
        the rule, no replay started."""
        from koppelpunt.app.replay import list_replays
        from koppelpunt.kafka.admin import topic_for

        await login(client)
        csrf = csrf_of((await client.get("/beheer")).text)
        target = topic_for(running.runtime.settings.topic_prefix, "GM0363")
        r = await client.post(
            "/beheer/replay/bevestigen",
            data={"gemeente": "GM0599", "to_topic": target, "csrf": csrf},
        )
        assert r.status_code == 400 and "mag alleen naar het eigen topic" in r.text
        assert await list_replays(running.runtime) == []


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


class TestReplayDates:
    async def test_dates_are_amsterdam_time_until_exclusive(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """The form's dates mean what `koppelpunt replay` makes of them: midnight Amsterdam
        time (CET/CEST), `until` not included; the started replay stores exactly that."""
        from datetime import datetime

        from koppelpunt.app.moments import LOCAL
        from koppelpunt.app.replay import get_replay

        await login(client)
        csrf = csrf_of((await client.get("/beheer")).text)
        form = {"gemeente": "GM0363", "since": "2027-03-01", "until": "2027-07-01", "csrf": csrf}
        confirm = await client.post("/beheer/replay", data=form)
        assert confirm.status_code == 200
        assert "2027-03-01 00:00 (CET, Amsterdam)" in confirm.text
        assert "2027-07-01 00:00 (CEST, Amsterdam)" in confirm.text
        started = await client.post("/beheer/replay/bevestigen", data={**form, "dry_run": "1"})
        assert started.status_code == 200, started.text
        match = re.search(r'id="replay-id">([0-9a-f-]+)<', started.text)
        assert match
        replay = await get_replay(running.runtime, match.group(1))
        assert replay.since == datetime(2027, 3, 1, tzinfo=LOCAL)
        assert replay.until == datetime(2027, 7, 1, tzinfo=LOCAL)
        assert replay.requested_by == "beheer"
        overview = (await client.get("/beheer")).text
        assert f'data-replay="{replay.replay_id}"' in overview

    async def test_a_bad_date_is_a_400_page(self, client: httpx.AsyncClient) -> None:
        await login(client)
        csrf = csrf_of((await client.get("/beheer")).text)
        r = await client.post(
            "/beheer/replay", data={"gemeente": "GM0363", "since": "gisteren", "csrf": csrf}
        )
        assert r.status_code == 400 and "gisteren" in r.text


class TestParkedAndBuitenFlow:
    async def test_page_and_endpoint_show_parked_records(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A record parked while the BRP is down shows on /beheer and in GET
        /v1/beheer/parked (operators only, no BSN)."""
        from tests.beheer.test_inzage import DownLookup

        running.runtime.lookup = DownLookup()
        r = await client.post(
            "/v1/prognoses",
            content=prognose_xml("park-1", [L(bsn=BSN[0])]),
            headers={**XML, **auth("koppelpunt-vo")},
        )
        assert r.status_code == 202, r.text
        parked = await client.get("/v1/beheer/parked", headers=auth("beheer"))
        assert parked.status_code == 200
        body = parked.json()
        assert body["aantal"] == 1
        assert [(p["berichtId"], p["recordIndex"], p["soort"]) for p in body["geparkeerd"]] == [
            ("park-1", 0, "prognose")
        ]
        assert BSN[0] not in parked.text
        refused = await client.get("/v1/beheer/parked", headers=auth("koppelpunt-vo"))
        assert refused.status_code == 403
        await login(client)
        html = (await client.get("/beheer")).text
        assert 'id="totaal-geparkeerd">1<' in html and 'data-geparkeerd="park-1"' in html

    async def test_page_shows_aanmeldingen_buiten_de_flow(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        from datetime import UTC, date, datetime

        from sqlalchemy import insert

        from koppelpunt.store.tables import aanmeldingen

        async with running.runtime.sessions.begin() as session:
            await session.execute(
                insert(aanmeldingen).values(
                    instelling_brin="25LG",
                    aanmelding_id="AM-buiten",
                    bsn=BSN[0],
                    geboortedatum=date(2010, 5, 1),
                    crebo="25187",
                    niveau=2,
                    leerweg="BOL",
                    status="INGESCHREVEN",
                    statusdatum=date(2027, 3, 1),
                    eerste_statusdatum=date(2027, 3, 1),
                    buiten_flow=True,
                    updated_at=datetime(2027, 3, 1, tzinfo=UTC),
                )
            )
        await login(client)
        html = (await client.get("/beheer")).text
        assert 'data-aanmelding="AM-buiten"' in html
        assert BSN[0] not in html


class TestDetailPages:
    async def test_unknown_and_malformed_ids_are_404(self, client: httpx.AsyncClient) -> None:
        """Detail pages answer 404 for ids that are not there, however odd (never a 500)."""
        for path in (
            "/beheer/afwijzingen/12345",
            "/beheer/afwijzingen/R12345",
            "/beheer/afwijzingen/99999999999999999999999",
            "/beheer/afwijzingen/%C2%B2",
            "/beheer/geparkeerd/1/0",
            "/beheer/geparkeerd/99999999999999999999999/0",
            "/beheer/replays/bestaat-niet",
        ):
            r = await client.get(path, headers=auth("beheer"))
            assert r.status_code == 404, (path, r.status_code)
            assert "bestaat niet" in r.text

    async def test_details_need_a_login(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/beheer/afwijzingen/1", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("/beheer/login")

    async def test_a_rejection_shows_every_reason(self, client: httpx.AsyncClient) -> None:
        """The overview links a rejection to its page, which lists all its reasons."""
        bad = await client.post(
            "/v1/prognoses", content=b"<niet-af", headers={**XML, **auth("koppelpunt-vo")}
        )
        assert bad.status_code == 400
        overview = await client.get("/beheer", headers=auth("beheer"))
        link = re.search(r'href="(/beheer/afwijzingen/\d+)"', overview.text)
        assert link is not None
        detail = await client.get(link.group(1), headers=auth("beheer"))
        assert detail.status_code == 200
        assert "niet welgevormd" in detail.text
