"""The HTTP server the service runs on: uvicorn with httptools, plus the limits uvicorn lacks.

`server_config(app, settings)` is the one place the server is configured: `koppelpunt serve`
and every test that starts a real server use it.

uvicorn (0.55) bounds the idle time between requests (`timeout_keep_alive`) and nothing else:
with httptools a client may take forever to send its headers or its body, and the headers may
be of any size. `KoppelpuntHttpProtocol` is uvicorn's `HttpToolsProtocol` (passed through the
public `Config(http=...)`) with these limits added:

- the request head (request line and headers) is at most KOPPELPUNT_HTTP_MAX_HEADER_BYTES: the
  parser is never fed more, and the client gets 431;
- the head must be complete within KOPPELPUNT_HTTP_HEADER_TIMEOUT_SECONDS of the connect (or of
  the first byte of the next request on a kept-alive connection): 408, or a silent close when
  nothing of a request was sent;
- the body must be complete within KOPPELPUNT_HTTP_BODY_TIMEOUT_SECONDS of the end of the head:
  408 while no response has started (the application then sees a disconnect), else a close;
- at most KOPPELPUNT_HTTP_MAX_CONNECTIONS connections: a request on one beyond gets 503;
- a transfer coding other than `chunked` gets 501 (httptools would read `gzip, chunked` as
  plain chunked: RFC 9112 6.1 wants 501 for a coding the server does not implement).

Each refusal is problem+json with `Connection: close`. Forwarded headers (X-Forwarded-For,
-Proto) are believed only from KOPPELPUNT_TRUSTED_PROXIES (uvicorn's ProxyHeadersMiddleware);
by default from nobody.

With KOPPELPUNT_TLS_CERT_FILE the server speaks HTTPS with koppelpunt's own SSLContext
(api/tls.py), handed to uvicorn through its public `ssl_context_factory`. uvicorn does not put
the client certificate into the ASGI scope; the protocol class does (the `tls` extension, from
the transport's `ssl_object` or a trusted proxy's header; api/tls.py). uvicorn is pinned to the
minor version this was tested with; tests/api/test_server.py fails if a name used here goes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from koppelpunt.api import problems
from koppelpunt.api.tls import TlsProxies, proxy_extension, server_context, transport_extension
from koppelpunt.config import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What KoppelpuntHttpProtocol enforces, from the settings of the same names."""

    max_header_bytes: int = 16 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    max_connections: int = 500

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            header_timeout_seconds=settings.http_header_timeout_seconds,
            body_timeout_seconds=settings.http_body_timeout_seconds,
            max_connections=settings.http_max_connections,
        )


class ServerConfig(uvicorn.Config):
    """uvicorn's Config with the limits the protocol reads."""

    def __init__(
        self,
        app: Any,
        *,
        limits: HttpLimits,
        tls_proxies: TlsProxies | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self.http_limits = limits
        self.tls_proxies = tls_proxies or TlsProxies(None, ())


def server_config(
    app: Any, settings: Settings, *, host: str | None = None, port: int | None = None
) -> ServerConfig:
    """The server for `app`: host and port default to KOPPELPUNT_HTTP_HOST/PORT."""
    trusted = list(settings.trusted_proxies)
    context = server_context(settings)
    if context is None:
        log.warning(
            "http_without_tls",
            detail="plain HTTP: development only (set KOPPELPUNT_TLS_CERT_FILE/KEY_FILE)",
        )
    return ServerConfig(
        app,
        limits=HttpLimits.from_settings(settings),
        tls_proxies=TlsProxies.from_settings(settings),
        ssl_context_factory=(lambda _config, _default: context) if context else None,
        host=host or settings.http_host,
        port=port or settings.http_port,
        http=KoppelpuntHttpProtocol,
        ws="none",  # no websocket endpoints: an Upgrade is an ordinary request
        lifespan="on",
        log_config=None,  # logging.configure_logging routes uvicorn's loggers
        timeout_keep_alive=settings.http_keep_alive_seconds,
        proxy_headers=bool(trusted),
        # Never uvicorn's default (FORWARDED_ALLOW_IPS or 127.0.0.1): any local process could
        # then choose the client address the service logs and throttles.
        forwarded_allow_ips=trusted,
    )


def server(
    app: Any, settings: Settings, *, host: str | None = None, port: int | None = None
) -> uvicorn.Server:
    """A uvicorn Server on server_config: `.run()` in a process, `.serve()` in a running loop."""
    return uvicorn.Server(server_config(app, settings, host=host, port=port))


def _response(status: int, code: str, detail: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole problem+json response with Connection: close, written by the protocol itself."""
    phrase = HTTPStatus(status).phrase
    body = bytes(problems.problem(status, phrase, detail, code=code).body)
    lines = [f"HTTP/1.1 {status} {phrase}".encode("ascii")]
    lines += [name + b": " + value for name, value in headers]
    lines += [
        b"content-type: " + problems.PROBLEM_JSON.encode("ascii"),
        b"content-length: " + str(len(body)).encode("ascii"),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class KoppelpuntHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header size, header and body time, connection and transfer-coding
    limits (see the module docstring)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = config.http_limits if isinstance(config, ServerConfig) else HttpLimits()
        self.limits: HttpLimits = limits
        proxies = config.tls_proxies if isinstance(config, ServerConfig) else TlsProxies(None, ())
        self.tls_proxies: TlsProxies = proxies
        self.tls_extension: dict[str, Any] | None = None  # of this connection's handshake
        self.from_tls_proxy = False
        self.awaiting_head = True  # between requests, or in a request line and headers
        self.head_started = False  # the parser has begun a request line, not yet its headers
        self.head_bytes = 0  # bytes given to the parser while awaiting a head
        self.heads = 0  # heads completed on this connection
        self.in_body = False  # head complete, body not yet
        self.body_deadline = 0.0
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.refused = False  # answered by the protocol: read nothing more

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.tls_extension = transport_extension(transport.get_extra_info("ssl_object"))
        self.from_tls_proxy = self.tls_proxies.trusts(self._client_host())
        # A connection that sends nothing is closed after the header timeout as well.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while data and not self.refused and not self.transport.is_closing():
            if not self.awaiting_head:
                super().data_received(data)
                break
            room = self.limits.max_header_bytes - self.head_bytes
            if len(data) <= room:
                self.head_bytes += len(data)
                super().data_received(data)
                break
            # More than the head may hold: give the parser only what fits. If the head is not
            # complete by then, it is too large; otherwise the rest is a body or the next head.
            part, data = data[:room], data[room:]
            heads = self.heads
            self.head_bytes += len(part)
            super().data_received(part)
            if self.heads == heads and not self.refused and not self.transport.is_closing():
                self._refuse(
                    431,
                    "header-too-large",
                    f"de regel en headers van het verzoek zijn samen groter dan "
                    f"{self.limits.max_header_bytes} bytes",
                )
        if self.refused or self.transport.is_closing():
            return
        # Timers only for what is still incomplete: a head or body that came whole in one
        # read (the usual case) costs none. Bytes before a head (blank lines, which the parser
        # skips) also start the head time while no response is due: they cancelled uvicorn's
        # keep-alive timer and must not hold the connection instead.
        if self.head_started or (self.awaiting_head and self._answered()):
            self._arm_head_timer()
        if self.in_body and self.body_timer is None:
            self.body_timer = self.loop.call_at(self.body_deadline, self._body_timed_out)

    # --- httptools parser callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.head_started = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        self.heads += 1
        self.head_started = False
        self.awaiting_head = False
        self.in_body = True
        self.body_deadline = self.loop.time() + self.limits.body_timeout_seconds
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        codings = [
            token.strip().lower()
            for name, value in self.headers
            if name == b"transfer-encoding"
            for token in value.split(b",")
            if token.strip()
        ]
        if codings and codings != [b"chunked"]:
            self._refuse(
                501,
                "transfer-encoding-not-implemented",
                "alleen Transfer-Encoding: chunked wordt ondersteund",
            )
            return
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                503,
                "too-many-connections",
                f"meer dan {self.limits.max_connections} verbindingen; probeer later",
                [(b"retry-after", problems.RETRY_AFTER_SECONDS.encode("ascii"))],
            )
            return
        self._put_tls_extension()
        super().on_headers_complete()

    def _put_tls_extension(self) -> None:
        """The client certificate into the scope (ASGI `tls` extension): a trusted proxy's
        header when this connection comes from one, else this connection's own handshake."""
        extension = self.tls_extension
        if self.from_tls_proxy:
            header = self.tls_proxies.header
            values = [value for name, value in self.headers if name == header]
            extension = proxy_extension(values[0] if len(values) == 1 else b"")
        if extension is not None:
            self.scope["extensions"] = {"tls": extension}  # type: ignore[dict-item]

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.in_body = False
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None
        self.awaiting_head = True
        self.head_bytes = 0
        super().on_message_complete()

    # --- limits -------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(
                self.limits.header_timeout_seconds, self._head_timed_out
            )

    def _cancel_timers(self) -> None:
        for timer in (self.head_timer, self.body_timer):
            if timer is not None:
                timer.cancel()
        self.head_timer = self.body_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.refused or self.transport.is_closing():
            return
        if not self.head_started:
            # Nothing of a request yet: the same as an idle keep-alive connection.
            log.info("http_idle_connection_closed", client=self._client_host())
            self.refused = True
            self.transport.close()
            return
        self._refuse(
            408,
            "header-timeout",
            f"de headers kwamen niet binnen {self.limits.header_timeout_seconds:g} s binnen",
        )

    def _body_timed_out(self) -> None:
        self.body_timer = None
        if self.refused or self.transport.is_closing() or not self.in_body:
            return
        if self.pipeline:
            # Queued behind a request still being answered, so not read yet: not late.
            self.body_deadline = self.loop.time() + self.limits.body_timeout_seconds
            self.body_timer = self.loop.call_at(self.body_deadline, self._body_timed_out)
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            # Answered before its body was read (e.g. 401): only the unread rest is late.
            log.info("http_body_timeout_after_response", client=self._client_host())
            self.refused = True
            self._cancel_timers()
            self.transport.close()
            return
        if cycle is not None:
            # The application sees a disconnect; whatever it still sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(
            408,
            "body-timeout",
            f"de body kwam niet binnen {self.limits.body_timeout_seconds:g} s binnen",
        )

    def _refuse(
        self,
        status: int,
        code: str,
        detail: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer `status` and close; read nothing more from this connection."""
        self.refused = True
        self._cancel_timers()
        log.info("http_refused", status=status, code=code, client=self._client_host())
        cycle = self.cycle
        if cycle is None or cycle.response_complete or cycle.disconnected:
            default = list(self.server_state.default_headers)
            self.transport.write(_response(status, code, detail, default + (headers or [])))
            self.transport.close()
        elif cycle.response_started:
            self.transport.close()  # a response is under way: it cannot be answered
        else:
            # A pipelined request behind one still being answered: finish that, then close.
            cycle.keep_alive = False

    def _answered(self) -> bool:
        """No request is waiting for its response on this connection."""
        return self.cycle is None or self.cycle.response_complete

    def _client_host(self) -> str | None:
        return self.client[0] if self.client else None
