"""/beheer sessions are server-side: a cookie is a random id that must be a live session in the
database, of an operator still in the senders file with the same key. Forged, logged-out,
expired and orphaned cookies open nothing (issue 21, finding 3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from koppelpunt.api.beheer_signing import BeheerSigning
from koppelpunt.api.routes.beheer_page import COOKIE
from koppelpunt.config import DEV_LOG_ENCRYPTION_KEY
from koppelpunt.store.tables import beheer_sessions
from tests.beheer.test_beheer_page import csrf_of, login
from tests.conftest import KEYS, Running, auth


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def forged_cookie(operator: str) -> str:
    """A session cookie as anyone can make it who read the repository: the payload signed
    with a key derived (HKDF-SHA256) from the public development log key."""
    master = base64.b64decode(DEV_LOG_ENCRYPTION_KEY)
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"koppelpunt beheer session"
    ).derive(master)
    payload = {"o": operator, "e": int(time.time()) + 3600, "c": secrets.token_urlsafe(24)}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return body + "." + _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def signing(running: Running, key: str | None = None) -> BeheerSigning:
    """The app's signing (its key and clock), or the same with another key."""
    settings = running.runtime.settings
    secret = key or settings.beheer_secret_key.get_secret_value()
    return BeheerSigning(secret, lambda: running.runtime.clock())


def write_senders(path: Path, keys: dict[str, tuple[str, str]]) -> None:
    """Replace the senders file as an operator should: a new file renamed over the old one."""
    lines = ["senders:"]
    for name, (role, key) in keys.items():
        digest = hashlib.sha256(key.encode()).hexdigest()
        lines.append(f"  - {{name: {name}, role: {role}, key_sha256: {digest}}}")
    new = path.with_suffix(".new")
    new.write_text("\n".join(lines) + "\n")
    os.replace(new, path)


async def test_a_forged_cookie_for_a_made_up_operator_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """A cookie signed with the public key for an operator that does not exist gets neither the
    overview nor the replay form: the login page."""
    client.cookies.set(COOKIE, forged_cookie("niemand"), path="/beheer")
    r = await client.get("/beheer")
    assert r.status_code == 303 and r.headers["location"] == "/beheer/login"
    payload = json.loads(base64.urlsafe_b64decode(forged_cookie("x").split(".")[0] + "=="))
    r = await client.post("/beheer/replay", data={"gemeente": "GM0363", "csrf": payload["c"]})
    assert r.status_code == 303 and r.headers["location"] == "/beheer/login"


async def test_the_cookie_is_a_random_id_stored_only_as_its_hash(
    client: httpx.AsyncClient, running: Running
) -> None:
    """The cookie carries a random id, signed; the database keeps only the id's SHA-256."""
    await login(client)
    value = client.cookies[COOKIE]
    session_id = signing(running).session_id(value, 60)
    assert session_id is not None and len(session_id) >= 43  # token_urlsafe(32): 256 bits
    async with running.runtime.sessions() as s:
        rows = (await s.execute(select(beheer_sessions))).all()
    assert [r.id_sha256 for r in rows] == [hashlib.sha256(session_id.encode()).hexdigest()]
    assert rows[0].operator == "beheer" and rows[0].revoked_at is None
    assert value not in repr(rows) and session_id not in repr(rows)


async def test_a_cookie_kept_after_logout_is_refused(
    client: httpx.AsyncClient, running: Running
) -> None:
    """Logout revokes the session in the database: the same cookie sent again opens nothing."""
    await login(client)
    value = client.cookies[COOKIE]
    assert (await client.get("/beheer")).status_code == 200
    r = await client.post("/beheer/logout")
    assert r.status_code == 303 and r.headers["location"] == "/beheer/login"
    client.cookies.clear()
    client.cookies.set(COOKIE, value, path="/beheer")
    r = await client.get("/beheer")
    assert r.status_code == 303 and r.headers["location"] == "/beheer/login"
    async with running.runtime.sessions() as s:
        revoked = await s.scalar(select(beheer_sessions.c.revoked_at))
    assert revoked is not None


async def test_a_removed_operator_loses_session_and_key(
    client: httpx.AsyncClient, senders_file: Path
) -> None:
    """Taking the operator out of the senders file ends its session and its key at once (the
    file is read again when it changes): no restart needed."""
    await login(client)
    html = (await client.get("/beheer")).text
    write_senders(senders_file, {k: v for k, v in KEYS.items() if k != "beheer"})
    r = await client.get("/beheer")
    assert r.status_code == 303 and r.headers["location"] == "/beheer/login"
    r = await client.post("/beheer/replay", data={"gemeente": "GM0363", "csrf": csrf_of(html)})
    assert r.status_code == 303
    assert (await client.get("/beheer", headers=auth("beheer"))).status_code == 303
    r = await client.get("/v1/beheer/replays", headers=auth("beheer"))
    assert r.status_code == 401
    # Back in the file with its key: a new login works again.
    write_senders(senders_file, KEYS)
    assert (await login(client)).status_code == 303
    assert (await client.get("/beheer")).status_code == 200


async def test_a_rotated_operator_key_ends_the_old_session(
    client: httpx.AsyncClient, senders_file: Path
) -> None:
    """A session belongs to the key it was opened with: a new key for the operator (e.g. after
    a leak) ends the sessions of the old one."""
    await login(client)
    write_senders(senders_file, {**KEYS, "beheer": ("operator", "new-operator-key")})
    assert (await client.get("/beheer")).status_code == 303
    assert (await login(client, "test-operator-key")).status_code == 401
    assert (await login(client, "new-operator-key")).status_code == 303
    assert (await client.get("/beheer")).status_code == 200


async def test_an_operator_demoted_to_sender_loses_the_session(
    client: httpx.AsyncClient, senders_file: Path
) -> None:
    await login(client)
    write_senders(senders_file, {**KEYS, "beheer": ("vo", KEYS["beheer"][1])})
    assert (await client.get("/beheer")).status_code == 303


async def test_an_invalid_senders_file_keeps_the_previous_senders(
    client: httpx.AsyncClient, senders_file: Path
) -> None:
    """A half-written or broken file is not taken: the senders as they were stay (logged as
    senders_file_invalid), so a typo does not lock everyone out."""
    new = senders_file.with_suffix(".new")
    new.write_text("senders: [{name: x}\n")
    os.replace(new, senders_file)
    r = await client.get("/v1/beheer/replays", headers=auth("beheer"))
    assert r.status_code == 200


async def test_a_session_ends_after_its_term(client: httpx.AsyncClient, running: Running) -> None:
    """KOPPELPUNT_BEHEER_SESSION_MINUTES after the login the session is over."""
    await login(client)
    assert (await client.get("/beheer")).status_code == 200
    start = running.runtime.clock()
    minutes = running.runtime.settings.beheer_session_minutes
    running.runtime.clock = lambda: start + timedelta(minutes=minutes, seconds=1)
    assert (await client.get("/beheer")).status_code == 303


async def test_the_session_cookie_is_secure_over_https(running: Running) -> None:
    transport = httpx.ASGITransport(app=running.asgi)
    async with httpx.AsyncClient(transport=transport, base_url="https://koppelpunt.test") as c:
        r = await login(c)
    cookie = r.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/beheer" in cookie
