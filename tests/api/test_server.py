"""The HTTP server's limits (koppelpunt.api.server) on the real server: header size and time,
body time, keep-alive, connections, transfer codings, forwarded headers, disconnects.

Time bounds here are security properties (a hostile client is cut off): each is the configured
limit plus a margin generous enough for a loaded two-core machine.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from koppelpunt.api.server import KoppelpuntHttpProtocol, ServerConfig, server_config
from koppelpunt.config import Settings
from tests.conftest import KEYS
from tests.http_server import Response, closed, connection, head, read_response, serving

PROBLEM = "application/problem+json"
MARGIN = 4.0  # seconds on top of a limit before a test calls it "held"
VO_KEY = f"Authorization: Bearer {KEYS['koppelpunt-vo'][1]}"

Serve = Callable[..., AbstractAsyncContextManager[int]]


@pytest.fixture
def serve(settings: Settings) -> Serve:
    """serve(**settings) -> the app on the real server with those settings changed."""

    def start(**changes: object) -> AbstractAsyncContextManager[int]:
        quiet = {"relay_enabled": False, "scheduler_enabled": False, **changes}
        return serving(settings.model_copy(update=quiet))

    return start


def problem(response: object) -> dict[str, object]:
    assert response is not None, "the server closed without answering"
    assert response.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    assert response.headers["connection"] == "close"  # type: ignore[attr-defined]
    body: dict[str, object] = json.loads(response.body)  # type: ignore[attr-defined]
    return body


class TestHeaders:
    async def test_slow_loris_is_cut_off_after_the_header_timeout(self, serve: Serve) -> None:
        """Headers trickled one byte a second: 408 problem+json and a close, within the limit."""
        async with serve(http_header_timeout_seconds=2.0) as port, connection(port) as (r, w):
            started = time.monotonic()
            w.write(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            answered = asyncio.ensure_future(read_response(r))
            for byte in b"X-Slow: " + b"a" * 60:
                if answered.done():
                    break
                w.write(bytes([byte]))
                await asyncio.wait({answered}, timeout=1.0)
            response = await asyncio.wait_for(answered, MARGIN)
            elapsed = time.monotonic() - started
            assert response is not None and response.status == 408
            assert problem(response)["code"] == "header-timeout"
            assert await asyncio.wait_for(closed(r), MARGIN)
            assert elapsed < 2.0 + MARGIN, elapsed

    async def test_a_connection_that_sends_nothing_is_closed(self, serve: Serve) -> None:
        """Connect and stay silent: closed without an answer after the header timeout."""
        async with serve(http_header_timeout_seconds=1.0) as port, connection(port) as (r, _):
            started = time.monotonic()
            assert await asyncio.wait_for(read_response(r), 1.0 + MARGIN) is None
            assert time.monotonic() - started >= 0.9

    async def test_a_head_over_the_limit_gets_431(self, serve: Serve) -> None:
        """One 64 KiB header against a 16 KiB limit: 431, before the head is all in."""
        async with serve(http_max_header_bytes=16 * 1024) as port, connection(port) as (r, w):
            w.write(head("GET", "/livez", "X-Big: " + "a" * (64 * 1024)))
            response = await asyncio.wait_for(read_response(r), MARGIN)
            assert response is not None and response.status == 431
            assert problem(response)["code"] == "header-too-large"

    async def test_many_large_headers_get_431_without_memory(self, serve: Serve) -> None:
        """Eight 64 MiB headers (the finding's 593 MB): refused after the first 16 KiB; the
        server reads no further, so the client cannot even send them all."""
        async with serve() as port, connection(port) as (r, w):
            w.write(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-0: ")
            answered = asyncio.ensure_future(read_response(r))
            chunk = b"a" * (1024 * 1024)
            sent = 0
            try:
                while sent < 8 * 64 * 1024 * 1024 and not answered.done():
                    w.write(chunk)
                    await asyncio.wait_for(w.drain(), MARGIN)
                    sent += len(chunk)
            except ConnectionError:
                pass  # refused and closed while we were still sending
            assert sent < 64 * 1024 * 1024
            response = await asyncio.wait_for(answered, MARGIN)
            assert response is not None and response.status == 431

    async def test_a_head_just_under_the_limit_is_served(self, serve: Serve) -> None:
        """A 12 KiB header under the 16 KiB limit is an ordinary request."""
        async with serve(http_max_header_bytes=16 * 1024) as port, connection(port) as (r, w):
            w.write(head("GET", "/livez", "X-Big: " + "a" * (12 * 1024)))
            response = await asyncio.wait_for(read_response(r), MARGIN)
            assert response is not None and response.status == 200


class TestBodies:
    async def test_slow_body_gets_408_within_the_body_timeout(self, serve: Serve) -> None:
        """A body that trickles: 408 problem+json and a close, within the limit."""
        async with serve(http_body_timeout_seconds=2.0) as port, connection(port) as (r, w):
            started = time.monotonic()
            w.write(
                head(
                    "POST",
                    "/v1/prognoses",
                    VO_KEY,
                    "Content-Type: application/xml",
                    "Content-Length: 1000",
                )
                + b"<prognoses"
            )
            answered = asyncio.ensure_future(read_response(r))
            while not answered.done() and time.monotonic() - started < 2.0 + MARGIN:
                w.write(b" ")
                await asyncio.wait({answered}, timeout=0.5)
            response = await asyncio.wait_for(answered, MARGIN)
            assert response is not None and response.status == 408
            assert problem(response)["code"] == "body-timeout"
            assert time.monotonic() - started < 2.0 + MARGIN
            assert await asyncio.wait_for(closed(r), MARGIN)

    async def test_unread_body_after_an_early_answer_is_cut_off(self, serve: Serve) -> None:
        """No key: 401 at once; a body that keeps trickling after it is closed at the limit."""
        async with serve(http_body_timeout_seconds=2.0) as port, connection(port) as (r, w):
            started = time.monotonic()
            w.write(head("POST", "/v1/prognoses", "Content-Length: 100000") + b"<x")
            response = await asyncio.wait_for(read_response(r), MARGIN)
            assert response is not None and response.status == 401
            gone = asyncio.ensure_future(closed(r))
            while not gone.done() and time.monotonic() - started < 2.0 + MARGIN:
                w.write(b" ")
                await asyncio.wait({gone}, timeout=0.5)
            assert gone.done() and gone.result()

    async def test_client_disconnect_is_logged_as_such(self, serve: Serve) -> None:
        """A sender that goes away mid-body: `client_disconnected` (info), not a fault."""
        with structlog.testing.capture_logs() as logs:
            async with serve() as port:
                async with connection(port) as (_, w):
                    w.write(
                        head(
                            "POST",
                            "/v1/prognoses",
                            VO_KEY,
                            "Content-Type: application/xml",
                            "Content-Length: 1000",
                        )
                        + b"<prognoses"
                    )
                    await w.drain()
                    await asyncio.sleep(0.3)
                for _ in range(50):
                    if any(e["event"] == "client_disconnected" for e in logs):
                        break
                    await asyncio.sleep(0.1)
        events = [(e["event"], e["log_level"]) for e in logs]
        assert ("client_disconnected", "info") in events
        assert not [e for e in events if e[0] == "unhandled_fault"]


class TestConnections:
    async def test_idle_keep_alive_connection_is_closed(self, serve: Serve) -> None:
        """After a response, an idle kept-alive connection is closed after the keep-alive."""
        async with serve(http_keep_alive_seconds=1) as port, connection(port) as (r, w):
            w.write(head("GET", "/livez"))
            response = await asyncio.wait_for(read_response(r), MARGIN)
            assert response is not None and response.status == 200
            assert await asyncio.wait_for(closed(r), 1.0 + MARGIN)

    async def test_blank_lines_do_not_keep_a_connection_open(self, serve: Serve) -> None:
        """CRLFs between requests (which the parser skips) do not hold a connection: it is
        closed after the header timeout."""
        async with (
            serve(http_keep_alive_seconds=1, http_header_timeout_seconds=2.0) as port,
            connection(port) as (r, w),
        ):
            w.write(head("GET", "/livez"))
            response = await asyncio.wait_for(read_response(r), MARGIN)
            assert response is not None and response.status == 200
            started = time.monotonic()
            gone = asyncio.ensure_future(closed(r))
            while not gone.done() and time.monotonic() - started < 2.0 + MARGIN:
                w.write(b"\r\n")
                await asyncio.wait({gone}, timeout=0.5)
            assert gone.done() and gone.result()

    async def test_beyond_the_connection_limit_requests_get_503(self, serve: Serve) -> None:
        """Three idle connections fill a limit of three: a fourth gets 503 with Retry-After;
        once one of them goes, requests are served again."""
        async with serve(http_max_connections=3) as port:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            try:
                async with connection(port) as (r, w):
                    w.write(head("GET", "/livez"))
                    response = await asyncio.wait_for(read_response(r), MARGIN)
                    assert response is not None and response.status == 503
                    assert problem(response)["code"] == "too-many-connections"
                    assert response.headers["retry-after"]
                _, first = idle.pop()
                first.close()
                await first.wait_closed()
                await asyncio.sleep(0.2)
                async with connection(port) as (r, w):
                    w.write(head("GET", "/livez"))
                    response = await asyncio.wait_for(read_response(r), MARGIN)
                    assert response is not None and response.status == 200
            finally:
                for _, writer in idle:
                    writer.close()


async def _post_xml_with_coding(port: int, coding: str, body: bytes) -> Response | None:
    """POST /v1/prognoses as the VO sender with `Transfer-Encoding: coding`; the answer."""
    async with connection(port) as (r, w):
        w.write(
            head(
                "POST",
                "/v1/prognoses",
                VO_KEY,
                "Content-Type: application/xml",
                f"Transfer-Encoding: {coding}",
            )
            + body
        )
        return await asyncio.wait_for(read_response(r), MARGIN)


class TestProtocol:
    async def test_transfer_coding_other_than_chunked_gets_501(self, serve: Serve) -> None:
        """`Transfer-Encoding: gzip, chunked` is refused (501), not read as plain chunked."""
        async with serve() as port:
            response = await _post_xml_with_coding(
                port, "gzip, chunked", b"5\r\n<x/>\n\r\n0\r\n\r\n"
            )
        assert response is not None and response.status == 501
        assert problem(response)["code"] == "transfer-encoding-not-implemented"

    async def test_plain_chunked_is_read(self, serve: Serve) -> None:
        """Plain chunked bodies still work (here: an XML body the parser refuses, 400)."""
        async with serve() as port:
            response = await _post_xml_with_coding(port, "chunked", b"4\r\n<x/>\r\n0\r\n\r\n")
        assert response is not None and response.status == 400


class TestForwardedHeaders:
    @staticmethod
    async def logged_client(port: int, caplog: pytest.LogCaptureFixture) -> str:
        """The client address in the access log line of one request that claims to be
        forwarded for 203.0.113.9."""
        caplog.clear()
        async with connection(port) as (r, w):
            w.write(head("GET", "/livez", "X-Forwarded-For: 203.0.113.9"))
            response = await asyncio.wait_for(read_response(r), MARGIN)
            assert response is not None and response.status == 200
        [record] = [rec for rec in caplog.records if rec.name == "uvicorn.access"]
        assert isinstance(record.args, tuple)
        return str(record.args[0])

    async def test_not_trusted_by_default(
        self, serve: Serve, caplog: pytest.LogCaptureFixture
    ) -> None:
        """By default X-Forwarded-For is ignored, also from 127.0.0.1: the peer is logged."""
        caplog.set_level(logging.INFO, logger="uvicorn.access")
        async with serve() as port:
            assert (await self.logged_client(port, caplog)).startswith("127.0.0.1:")

    async def test_trusted_from_a_configured_proxy(
        self, serve: Serve, caplog: pytest.LogCaptureFixture
    ) -> None:
        """From an address in KOPPELPUNT_TRUSTED_PROXIES the forwarded client is used."""
        caplog.set_level(logging.INFO, logger="uvicorn.access")
        async with serve(trusted_proxies=["127.0.0.0/8"]) as port:
            assert (await self.logged_client(port, caplog)).startswith("203.0.113.9")

    def test_a_bad_proxy_entry_is_refused(self) -> None:
        """A typo in KOPPELPUNT_TRUSTED_PROXIES fails at start instead of trusting nothing."""
        with pytest.raises(ValueError, match="trusted_proxies"):
            Settings(trusted_proxies=["10.0.0.300"])


class TestUvicornContract:
    def test_the_uvicorn_names_the_protocol_uses_exist(self, settings: Settings) -> None:
        """api/server.py builds on HttpToolsProtocol: fail loudly if uvicorn renames a hook."""
        for hook in (
            "connection_made",
            "connection_lost",
            "data_received",
            "on_message_begin",
            "on_headers_complete",
            "on_body",
            "on_message_complete",
        ):
            assert callable(getattr(HttpToolsProtocol, hook)), hook
        config = server_config(lambda *a: None, settings)
        assert isinstance(config, ServerConfig)
        config.load()
        assert config.http_protocol_class is KoppelpuntHttpProtocol
        protocol = KoppelpuntHttpProtocol(config, ServerState(), {}, asyncio.new_event_loop())
        for name in ("headers", "cycle", "connections", "pipeline", "client", "server_state"):
            assert hasattr(protocol, name), name
        assert isinstance(protocol.server_state.default_headers, list)
        protocol.loop.close()
        cycle_init = inspect.getsource(RequestResponseCycle.__init__)
        for name in ("disconnected", "message_event", "response_started", "response_complete"):
            assert f"self.{name} =" in cycle_init, name
        assert "keep_alive" in inspect.signature(RequestResponseCycle.__init__).parameters
        # api/tls.py: our SSLContext goes in through ssl_context_factory; the protocol puts the
        # client certificate into the scope at on_headers_complete, which reads self.scope.
        assert "ssl_context_factory" in inspect.signature(uvicorn.Config.__init__).parameters
        assert "self.scope = " in inspect.getsource(HttpToolsProtocol.on_message_begin)
        assert "self.scope" in inspect.getsource(HttpToolsProtocol.on_headers_complete)
