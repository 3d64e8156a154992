"""Bodies: the key is checked before a body is read, and every body is capped before it is
buffered (KOPPELPUNT_MAX_FORM_BODY_BYTES; the XML endpoints have KOPPELPUNT_MAX_BODY_BYTES).

The memory test runs `koppelpunt serve` as its own process and measures that process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from bench import harness
from bench.harness import Process
from koppelpunt.config import Settings
from tests.conftest import KEYS, auth
from tests.http_server import connection, head, read_response
from tests.messages import L, prognose_xml

PROBLEM = "application/problem+json"
JSON_ENDPOINTS = ["/v1/beheer/inzage", "/v1/beheer/replays", "/v1/beheer/outbox/retry"]
LIMIT = 64 * 1024


async def chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """A streamed (chunked) body of `total` bytes with no Content-Length."""
    for _ in range(total // size):
        yield b"a" * size


class TestAuthenticateFirst:
    @pytest.mark.parametrize("path", JSON_ENDPOINTS)
    async def test_bad_body_without_key_is_401(self, client: httpx.AsyncClient, path: str) -> None:
        """No key and a body that is not JSON: 401, not 400: the body is not read first."""
        r = await client.post(
            path, content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith(PROBLEM)

    @pytest.mark.parametrize("path", JSON_ENDPOINTS)
    async def test_bad_body_with_a_sender_key_is_403(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        """A sender's key (not an operator): 403 before the body is parsed."""
        r = await client.post(path, content=b"{not json", headers=auth("koppelpunt-vo"))
        assert r.status_code == 403, r.text

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/v1/beheer/inzage", b"{not json"),
            ("/v1/beheer/inzage", b'{"bsn": "' + b"9" * 40 + b'"}'),
            ("/v1/beheer/replays", b'{"gemeente": "GM0363", "onbekend": 1}'),
            ("/v1/beheer/outbox/retry", b'{"signaleringIds": 5}'),
        ],
    )
    async def test_bad_body_with_the_key_is_400(
        self, client: httpx.AsyncClient, path: str, body: bytes
    ) -> None:
        """With an operator's key a bad body is 400 invalid-request, naming the place but
        never echoing the input."""
        r = await client.post(path, content=body, headers=auth("beheer"))
        assert r.status_code == 400, r.text
        problem = r.json()
        assert problem["code"] == "invalid-request"
        assert problem["fouten"] and all(f["locatie"].startswith("body") for f in problem["fouten"])
        assert "9" * 40 not in r.text

    async def test_retry_without_a_body_still_means_all(self, client: httpx.AsyncClient) -> None:
        """POST /v1/beheer/outbox/retry with no body retries every failing one (none here)."""
        r = await client.post("/v1/beheer/outbox/retry", headers=auth("beheer"))
        assert r.status_code == 200, r.text
        assert r.json() == {"aantal": 0}


class TestBodyCap:
    @pytest.mark.parametrize("path", [*JSON_ENDPOINTS, "/beheer/login"])
    async def test_declared_length_over_the_cap_is_413(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        """Content-Length over the cap: 413 problem+json and Connection: close, before
        anything reads it (also before the key is checked: nothing is learned from it)."""
        r = await client.post(path, content=b"a" * (LIMIT + 1), headers=auth("beheer"))
        assert r.status_code == 413, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.headers["connection"] == "close"
        assert r.json()["maxBytes"] == LIMIT

    @pytest.mark.parametrize("path", [*JSON_ENDPOINTS, "/beheer/login"])
    async def test_streamed_body_over_the_cap_is_413(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        """A chunked body with no Content-Length: 413 as soon as it passes the cap."""
        r = await client.post(path, content=chunks(4 * LIMIT), headers=auth("beheer"))
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "payload-too-large"

    async def test_body_at_the_cap_is_read(self, client: httpx.AsyncClient) -> None:
        """A body of exactly the cap is read (here: not JSON, so 400 with the key)."""
        r = await client.post("/v1/beheer/inzage", content=b" " * LIMIT, headers=auth("beheer"))
        assert r.status_code == 400, r.text

    async def test_xml_endpoints_keep_their_own_larger_limit(
        self, client: httpx.AsyncClient
    ) -> None:
        """A prognose larger than the form cap is received (MAX_BODY_BYTES applies there)."""
        records = [L(bsn=None, onderwijsnummer="100000007")] * 600
        body = prognose_xml("groot-1", records)
        assert len(body) > LIMIT
        r = await client.post(
            "/v1/prognoses",
            content=body,
            headers={"Content-Type": "application/xml", **auth("koppelpunt-vo")},
        )
        assert r.status_code == 202, r.text


# --- the memory an unauthenticated client can make the real server use -------------------------

HUGE = 256 * 1024 * 1024
GROWTH_BOUND = 50 * 1024 * 1024  # bytes of peak RSS growth allowed for all the attempts
ANSWER_WITHIN = 15.0  # seconds from the first byte to the answer, on a loaded machine


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def send_huge(port: int, path: str, *headers: str, chunked: bool) -> tuple[int, float]:
    """Send a 256 MiB body until the server answers (as a client that reads while it writes
    does); the answer's status and the seconds it took."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {HUGE}"
    piece = b"a" * (1024 * 1024)
    frame = (b"%x\r\n" % len(piece)) + piece + b"\r\n" if chunked else piece
    started = time.monotonic()
    async with connection(port) as (reader, writer):
        writer.write(head("POST", path, framing, *headers))
        answer = asyncio.ensure_future(read_response(reader))
        sent = 0
        try:
            while sent < HUGE and not answer.done():
                writer.write(frame)
                drained = asyncio.ensure_future(writer.drain())
                await asyncio.wait(
                    {answer, drained}, timeout=ANSWER_WITHIN, return_when=asyncio.FIRST_COMPLETED
                )
                drained.cancel()
                sent += len(piece)
            if chunked and not answer.done():
                writer.write(b"0\r\n\r\n")  # all of it sent: end the body
        except ConnectionError:
            pass  # refused and closed while we were still sending
        response = await asyncio.wait_for(answer, ANSWER_WITHIN)
    assert response is not None, f"{path}: closed without an answer"
    return response.status, time.monotonic() - started


@pytest_asyncio.fixture(loop_scope="session")
async def serve_process(settings: Settings, tmp_path: Path) -> AsyncIterator[Process]:
    """`koppelpunt serve` as its own process, on this test's database and broker."""
    env = harness.service_env(
        database_url=settings.database_url,
        bootstrap=settings.kafka_bootstrap,
        senders_file=settings.senders_file,
        topic_prefix=settings.topic_prefix,
        extra={"KOPPELPUNT_RELAY_ENABLED": "false", "KOPPELPUNT_SCHEDULER_ENABLED": "false"},
    )
    process = harness.serve(env, tmp_path / "serve.log")
    try:
        await process.wait_ready(path="/livez")
        yield process
    finally:
        process.stop()


class TestUnauthenticatedMemory:
    async def test_huge_bodies_are_refused_without_buffering(self, serve_process: Process) -> None:
        """256 MiB to /beheer/login and to the operators' JSON endpoints, declared and
        chunked, with and without a key: each answered quickly (401/413), and the server's
        peak memory grows by less than 50 MB over all of them (a read body would add
        hundreds of MB)."""
        port = serve_process.port
        assert port is not None
        operator = f"Authorization: Bearer {KEYS['beheer'][1]}"
        form = "Content-Type: application/x-www-form-urlencoded"
        before = peak_rss(serve_process.pid)
        cases = [("/beheer/login", "", form)] + [
            (path, who, *key)
            for path in ("/v1/beheer/inzage", "/v1/beheer/replays")
            for who, key in (("no key", ()), ("key", (operator,)))
        ]
        answers: dict[tuple[str, str, str], tuple[int, float]] = {}
        for path, who, *headers in cases:
            for framing in ("declared", "chunked"):
                answers[(path, framing, who)] = await send_huge(
                    port, path, *headers, chunked=framing == "chunked"
                )
        growth = peak_rss(serve_process.pid) - before
        assert growth < GROWTH_BOUND, (f"{growth / 2**20:.0f} MiB", answers)
        slow = {case: seconds for case, (_, seconds) in answers.items() if seconds > ANSWER_WITHIN}
        assert not slow, slow
        assert {case: status for case, (status, _) in answers.items()} == {
            ("/beheer/login", "declared", ""): 413,
            ("/beheer/login", "chunked", ""): 413,
            ("/v1/beheer/inzage", "declared", "no key"): 413,
            ("/v1/beheer/inzage", "chunked", "no key"): 401,
            ("/v1/beheer/inzage", "declared", "key"): 413,
            ("/v1/beheer/inzage", "chunked", "key"): 413,
            ("/v1/beheer/replays", "declared", "no key"): 413,
            ("/v1/beheer/replays", "chunked", "no key"): 401,
            ("/v1/beheer/replays", "declared", "key"): 413,
            ("/v1/beheer/replays", "chunked", "key"): 413,
        }
