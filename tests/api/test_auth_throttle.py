"""Failed authentication is throttled per client address and per presented key, for the API's
bearer keys and the /beheer login: 429 with Retry-After, counted in /metrics, bounded in memory
(issue 21, finding 8). Short windows here; the defaults are in config.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from koppelpunt.api.auth import AuthThrottle, SenderRegistry, client_bucket
from koppelpunt.config import Settings
from tests.conftest import Running, auth

WINDOW = 1.0
PER_ADDRESS = 3
PER_KEY = 2
REPLAYS = "/v1/beheer/replays"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "auth_failure_window_seconds": WINDOW,
            "auth_failures_per_address": PER_ADDRESS,
            "auth_failures_per_key": PER_KEY,
        }
    )


FromAddress = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def from_address(running: Running) -> FromAddress:
    """A client of the real app whose requests come from the given address."""

    @asynccontextmanager
    async def make(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=running.asgi, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://koppelpunt.test") as c:
            yield c

    return make


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.split()[-1])
    return 0.0


async def test_an_address_gets_429_after_its_failures_and_recovers(
    from_address: FromAddress,
) -> None:
    """After PER_ADDRESS wrong keys from one address, that address gets 429 problem+json with
    Retry-After, even with a correct key; another address is not affected; after the window
    the address is let in again."""
    async with from_address("192.0.2.10") as a, from_address("192.0.2.20") as b:
        for i in range(PER_ADDRESS):
            r = await a.get(REPLAYS, headers=bearer(f"guess-{i}"))
            assert r.status_code == 401
        r = await a.get(REPLAYS, headers=auth("beheer"))
        assert r.status_code == 429
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "too-many-requests"
        assert 1 <= int(r.headers["retry-after"]) <= WINDOW + 1
        assert (await b.get(REPLAYS, headers=auth("beheer"))).status_code == 200
        await asyncio.sleep(WINDOW + 0.2)
        assert (await a.get(REPLAYS, headers=auth("beheer"))).status_code == 200


async def test_one_wrong_key_from_many_addresses_is_throttled_per_key(
    from_address: FromAddress,
) -> None:
    """The same wrong key from different addresses: refused after PER_KEY failures wherever it
    comes from; the addresses' own (correct) keys still work."""
    for i in range(PER_KEY):
        async with from_address(f"198.51.100.{i}") as c:
            assert (await c.get(REPLAYS, headers=bearer("stale-key"))).status_code == 401
    async with from_address("198.51.100.99") as c:
        r = await c.get(REPLAYS, headers=bearer("stale-key"))
        assert r.status_code == 429 and "retry-after" in r.headers
        assert (await c.get(REPLAYS, headers=auth("beheer"))).status_code == 200


async def test_sender_endpoints_are_throttled_too(
    from_address: FromAddress,
) -> None:
    """Every caller of sender_of gets the throttle: the senders' POST endpoint as well."""
    async with from_address("203.0.113.5") as c:
        for i in range(PER_ADDRESS):
            r = await c.post("/v1/prognoses", headers=bearer(f"nope-{i}"), content=b"<x/>")
            assert r.status_code == 401
        r = await c.post("/v1/prognoses", headers=auth("koppelpunt-vo"), content=b"<x/>")
        assert r.status_code == 429 and r.headers["retry-after"]


async def test_beheer_login_is_throttled_per_address_not_per_operator(
    from_address: FromAddress,
) -> None:
    """Wrong logins from one address: 429 with a Dutch message and Retry-After. The real
    operator logging in from elsewhere is not locked out by them; after the window the
    address may try again."""
    async with from_address("192.0.2.66") as evil, from_address("192.0.2.7") as real:
        for i in range(PER_ADDRESS):
            r = await evil.post("/beheer/login", data={"sleutel": f"raad-{i}"})
            assert r.status_code == 401
        r = await evil.post("/beheer/login", data={"sleutel": "test-operator-key"})
        assert r.status_code == 429 and "Te veel mislukte pogingen" in r.text
        assert 1 <= int(r.headers["retry-after"]) <= WINDOW + 1
        assert "koppelpunt_beheer" not in r.headers.get("set-cookie", "")
        r = await real.post("/beheer/login", data={"sleutel": "test-operator-key"})
        assert r.status_code == 303
        await asyncio.sleep(WINDOW + 0.2)
        r = await evil.post("/beheer/login", data={"sleutel": "test-operator-key"})
        assert r.status_code == 303


async def test_a_sender_key_at_the_login_counts_for_the_address_only(
    from_address: FromAddress,
) -> None:
    """A VO key at the /beheer login is a failed login: it counts against the address, but not
    against the key, which is valid and keeps working for its sender elsewhere."""
    async with from_address("192.0.2.77") as c, from_address("192.0.2.78") as sender:
        for _ in range(PER_ADDRESS):
            r = await c.post("/beheer/login", data={"sleutel": "test-vo-key"})
            assert r.status_code == 401
        r = await c.post("/beheer/login", data={"sleutel": "test-vo-key"})
        assert r.status_code == 429
        r = await sender.post("/v1/prognoses", headers=auth("koppelpunt-vo"), content=b"<x/>")
        assert r.status_code not in (401, 429)


async def test_failures_and_throttles_are_counted_without_key_material(
    from_address: FromAddress,
) -> None:
    async with from_address("192.0.2.99") as c:
        for i in range(PER_ADDRESS):
            await c.get(REPLAYS, headers=bearer(f"geheim-{i}"))
        await c.get(REPLAYS, headers=bearer("geheim-x"))
        await c.post("/beheer/login", data={"sleutel": "geheim-y"})
        text = (await c.get("/metrics")).text
    assert metric(text, "koppelpunt_auth_failures_total", kind="bearer") == PER_ADDRESS
    assert metric(text, "koppelpunt_auth_throttled_total", kind="bearer", limit="address") == 1
    assert (
        metric(text, "koppelpunt_auth_throttled_total", kind="beheer_login", limit="address") == 1
    )
    assert "geheim" not in text and "192.0.2.99" not in text


async def test_the_apps_throttle_tables_stay_bounded(
    settings: Settings,
    running: Running,
    from_address: FromAddress,
) -> None:
    """Failures from more addresses (each with another key) than the table holds: the oldest
    entries are evicted, the table never exceeds its cap."""
    senders: SenderRegistry = running.state["senders"]
    throttle = senders.throttle
    assert throttle is not None
    throttle.max_entries = 20
    for i in range(60):
        async with from_address(f"10.1.{i // 250}.{i % 250}") as c:
            assert (await c.get(REPLAYS, headers=bearer(f"k{i}"))).status_code == 401
    assert throttle.entries() <= 2 * 20


class TestAuthThrottle:
    def test_sliding_window(self) -> None:
        now = [100.0]
        t = AuthThrottle(window=10, per_address=2, per_key=5, max_entries=10, clock=lambda: now[0])
        assert t.blocked("a", None) is None
        t.failed("a", None)
        now[0] = 104
        t.failed("a", None)
        assert t.blocked("a", None) == ("address", 6)  # until the first failure is 10 s old
        assert t.blocked("b", None) is None
        now[0] = 110.5
        assert t.blocked("a", None) is None  # one failure left in the window
        t.failed("a", None)
        assert t.blocked("a", None) == ("address", 4)

    def test_memory_is_bounded_and_the_oldest_is_evicted(self) -> None:
        t = AuthThrottle(window=60, per_address=1, per_key=1, max_entries=100)
        for i in range(10_000):
            t.failed(f"addr-{i}", i.to_bytes(16, "big"))
        assert t.entries() == 200
        assert t.blocked("addr-9999", None) is not None
        assert t.blocked("addr-0", None) is None  # evicted long ago

    def test_addresses_are_bucketed_ipv6_per_64(self) -> None:
        assert client_bucket("2001:db8:1:2:aaaa::1") == client_bucket("2001:db8:1:2:bbbb::9")
        assert client_bucket("2001:db8:1:2::1") != client_bucket("2001:db8:1:3::1")
        assert client_bucket("::ffff:192.0.2.1") == "192.0.2.1"
        assert client_bucket("192.0.2.1") == "192.0.2.1"
        assert client_bucket(None) is None
