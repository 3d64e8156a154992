"""The /beheer cookie and form tokens are signed by itsdangerous (api/beheer_signing.py) with
KOPPELPUNT_BEHEER_SECRET_KEY, and the session stays server-side: a signature proves that we
issued a value, the database says whether its session is still open (issue 25)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx

from koppelpunt.api.auth import key_id
from koppelpunt.api.beheer_signing import CLOCK_SKEW_SECONDS, FORM_TOKEN_SECONDS, BeheerSigning
from koppelpunt.api.routes.beheer_page import COOKIE
from koppelpunt.store import beheer_sessions
from tests.beheer.test_beheer_page import csrf_of, login
from tests.beheer.test_beheer_sessions import signing
from tests.conftest import KEYS, Running

REPLAY = {"gemeente": "GM0363"}
OTHER_KEY = secrets.token_urlsafe(32)


def _flip(text: str, index: int) -> str:
    """`text` with the character at `index` replaced by another of the same alphabet."""
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


async def _token(client: httpx.AsyncClient) -> str:
    return csrf_of((await client.get("/beheer")).text)


async def _live_session_id(client: httpx.AsyncClient, running: Running) -> str:
    await login(client)
    session_id = signing(running).session_id(client.cookies[COOKIE], 60)
    assert session_id is not None
    return session_id


class TestFormToken:
    async def test_a_changed_token_is_refused(self, client: httpx.AsyncClient) -> None:
        """One character changed in the token's payload, timestamp or signature: 403; the
        token as issued: the confirmation page."""
        await login(client)
        token = await _token(client)
        payload, stamp, _ = token.rsplit(".", 2)  # the payload starts with "." if compressed
        signature = len(payload) + len(stamp) + 2
        # Not the last character: its low bits are base64 padding, which decoding ignores.
        for index in (len(payload) // 2, len(payload) + 1, signature, signature + 20):
            r = await client.post("/beheer/replay", data={**REPLAY, "csrf": _flip(token, index)})
            assert r.status_code == 403 and "verlopen formulier" in r.text
        r = await client.post("/beheer/replay", data={**REPLAY, "csrf": token})
        assert r.status_code == 200 and 'id="bevestigen"' in r.text

    async def test_a_token_of_another_session_is_refused(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A token belongs to its session: another operator's session (another browser) and
        the same browser's session before a logout do not accept it."""
        await login(client)
        first = await _token(client)
        transport = httpx.ASGITransport(app=running.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://koppelpunt.test") as b:
            await login(b)
            r = await b.post("/beheer/replay", data={**REPLAY, "csrf": first})
            assert r.status_code == 403
            r = await b.post("/beheer/replay", data={**REPLAY, "csrf": await _token(b)})
            assert r.status_code == 200
        await client.post("/beheer/logout")
        await login(client)
        r = await client.post("/beheer/replay", data={**REPLAY, "csrf": first})
        assert r.status_code == 403
        r = await client.post("/beheer/replay", data={**REPLAY, "csrf": await _token(client)})
        assert r.status_code == 200

    async def test_a_token_expires_after_an_hour(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A page's token works for FORM_TOKEN_SECONDS; after that 403 while the session
        lasts, and the page opened again gives a token that works."""
        await login(client)
        token = await _token(client)
        start = running.runtime.clock()
        running.runtime.clock = lambda: start + timedelta(seconds=FORM_TOKEN_SECONDS - 5)
        r = await client.post("/beheer/replay", data={**REPLAY, "csrf": token})
        assert r.status_code == 200
        running.runtime.clock = lambda: start + timedelta(seconds=FORM_TOKEN_SECONDS + 5)
        r = await client.post("/beheer/replay", data={**REPLAY, "csrf": token})
        assert r.status_code == 403 and "verlopen formulier" in r.text
        r = await client.post("/beheer/replay", data={**REPLAY, "csrf": await _token(client)})
        assert r.status_code == 200

    async def test_a_token_signed_with_another_key_is_refused(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """The right session, the right form, but not our key (e.g. the public development
        key against a service with its own): 403."""
        session_id = await _live_session_id(client, running)
        forged = signing(running, OTHER_KEY).form_token(beheer_sessions.digest(session_id))
        r = await client.post("/beheer/replay", data={**REPLAY, "csrf": forged})
        assert r.status_code == 403

    async def test_the_token_reveals_neither_cookie_nor_session_id(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        session_id = await _live_session_id(client, running)
        html = (await client.get("/beheer")).text
        assert session_id not in html and client.cookies[COOKIE] not in html


class TestSessionCookie:
    async def test_the_bare_session_id_is_no_cookie(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """The id of a live session without our signature opens nothing."""
        session_id = await _live_session_id(client, running)
        client.cookies.clear()
        client.cookies.set(COOKIE, session_id, path="/beheer")
        r = await client.get("/beheer")
        assert r.status_code == 303 and r.headers["location"] == "/beheer/login"

    async def test_a_cookie_signed_with_another_key_is_refused(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """A live session's id signed with another key (a replica with a different
        KOPPELPUNT_BEHEER_SECRET_KEY, or the key before a rotation) opens nothing."""
        session_id = await _live_session_id(client, running)
        client.cookies.clear()
        client.cookies.set(COOKIE, signing(running, OTHER_KEY).cookie(session_id), path="/beheer")
        assert (await client.get("/beheer")).status_code == 303
        client.cookies.set(COOKIE, signing(running).cookie(session_id), path="/beheer")
        assert (await client.get("/beheer")).status_code == 200

    async def test_a_signed_cookie_without_a_session_opens_nothing(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Signed with the service's own key, with a matching form token, but no such session
        in the database (made up, or logged out): the login page, and no replay."""
        forged_id = secrets.token_urlsafe(32)
        client.cookies.set(COOKIE, signing(running).cookie(forged_id), path="/beheer")
        assert (await client.get("/beheer")).status_code == 303
        token = signing(running).form_token(beheer_sessions.digest(forged_id))
        r = await client.post("/beheer/replay/bevestigen", data={**REPLAY, "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/beheer/login"

    async def test_a_signature_older_than_the_session_term_is_refused(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """The cookie's own age counts too: a session the database would still keep (here
        opened for two terms) opens nothing once its cookie is older than
        KOPPELPUNT_BEHEER_SESSION_MINUTES."""
        runtime = running.runtime
        minutes = runtime.settings.beheer_session_minutes
        start = runtime.clock()
        async with runtime.sessions.begin() as session:
            session_id = await beheer_sessions.create(
                session, "beheer", key_id(KEYS["beheer"][1]), start, timedelta(minutes=2 * minutes)
            )
        client.cookies.set(COOKIE, signing(running).cookie(session_id), path="/beheer")
        assert (await client.get("/beheer")).status_code == 200
        runtime.clock = lambda: start + timedelta(minutes=minutes, seconds=5)
        assert (await client.get("/beheer")).status_code == 303

    async def test_logout_revokes_a_validly_signed_cookie(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """The signature stays valid after logout; the revoked session in the database is what
        refuses the cookie, so logout ends it at once on every replica."""
        await login(client)
        cookie = client.cookies[COOKIE]
        await client.post("/beheer/logout")
        assert signing(running).session_id(cookie, 60) is not None
        client.cookies.set(COOKIE, cookie, path="/beheer")
        r = await client.get("/beheer")
        assert r.status_code == 303 and r.headers["location"] == "/beheer/login"

    async def test_a_replica_whose_clock_is_a_little_ahead_is_believed(
        self, client: httpx.AsyncClient, running: Running
    ) -> None:
        """Replicas share the key. A cookie or token signed by one whose clock runs up to
        CLOCK_SKEW_SECONDS ahead of this one passes here (a fresh login must not fail on the
        next request); one further ahead is a signature from the future: refused."""
        session_id = await _live_session_id(client, running)
        runtime = running.runtime
        now = runtime.clock()
        runtime.clock = lambda: now
        secret = runtime.settings.beheer_secret_key.get_secret_value()
        for ahead, passes in ((CLOCK_SKEW_SECONDS - 5, True), (CLOCK_SKEW_SECONDS + 5, False)):
            other = BeheerSigning(secret, _fixed(now + timedelta(seconds=ahead)))
            token = other.form_token(beheer_sessions.digest(session_id))
            client.cookies.set(COOKIE, signing(running).cookie(session_id), path="/beheer")
            r = await client.post("/beheer/replay", data={**REPLAY, "csrf": token})
            assert r.status_code == (200 if passes else 403), ahead
            client.cookies.set(COOKIE, other.cookie(session_id), path="/beheer")
            r = await client.get("/beheer")
            assert r.status_code == (200 if passes else 303), ahead
