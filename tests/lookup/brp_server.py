"""A real local HTTP server implementing the documented Haal Centraal BRP Personen shapes.

    POST /personen  X-API-KEY: <key>
    {"type": "RaadpleegMetBurgerservicenummer", "burgerservicenummer": [1..20], "fields": [...]}
    → 200 {"personen": [{"burgerservicenummer", "gemeenteVanInschrijving": {code, omschrijving}}]}

Wrong key → 401, a body outside the contract → 400 (problem+json). Tests script failures with
`fail_next` (a status code, or "slow" to answer after the client's timeout) and switch the whole
server off with `down`. Runs stdlib http.server in a thread on a free port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "test-brp-key"


@dataclass
class FakeBrp:
    personen: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_next: list[int | str] = field(default_factory=list)
    down: int | None = None  # every request answers this status while set
    failing_bsns: set[str] = field(default_factory=set)  # a request naming one of these: 500
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    slow_seconds: float = 2.0
    url: str = ""

    def add(self, bsn: str, code: str | None, naam: str = "Gemeente", **extra: Any) -> None:
        persoon: dict[str, Any] = {"burgerservicenummer": bsn, **extra}
        if code is not None:
            persoon["gemeenteVanInschrijving"] = {"code": code, "omschrijving": naam}
        self.personen[bsn] = persoon


def _handler(brp: FakeBrp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any], ctype: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _problem(self, status: int, title: str) -> None:
            self._send(status, {"status": status, "title": title}, "application/problem+json")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            brp.headers.append({k.lower(): v for k, v in self.headers.items()})
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            brp.requests.append({"path": self.path, "body": body})
            if brp.fail_next:
                failure = brp.fail_next.pop(0)
                if failure == "slow":
                    time.sleep(brp.slow_seconds)
                    self._send(200, {"personen": []}, "application/json")
                    return
                assert isinstance(failure, int)
                self._problem(failure, "scripted failure")
                return
            if brp.down is not None:
                self._problem(brp.down, "down")
                return
            named = body.get("burgerservicenummer") if isinstance(body, dict) else None
            if isinstance(named, list) and brp.failing_bsns & set(named):
                self._problem(500, "scripted failure for this batch")
                return
            if self.path != "/haalcentraal/api/brp/personen":
                self._problem(404, "Not Found")
                return
            if self.headers.get("X-API-KEY") != API_KEY:
                self._problem(401, "Niet geauthenticeerd")
                return
            bsns = body.get("burgerservicenummer") if isinstance(body, dict) else None
            if (
                not isinstance(body, dict)
                or body.get("type") != "RaadpleegMetBurgerservicenummer"
                or not isinstance(bsns, list)
                or not 1 <= len(bsns) <= 20
                or not isinstance(body.get("fields"), list)
            ):
                self._problem(400, "Bad Request")
                return
            fields = set(body["fields"])
            personen = [
                {
                    k: v
                    for k, v in brp.personen[b].items()
                    if k in fields or k == "opschortingBijhouding"
                }
                for b in bsns
                if b in brp.personen
            ]
            self._send(200, {"personen": personen}, "application/json")

    return Handler


def serve() -> Iterator[FakeBrp]:
    brp = FakeBrp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(brp))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    brp.url = f"http://127.0.0.1:{server.server_address[1]}/haalcentraal/api/brp"
    try:
        yield brp
    finally:
        server.shutdown()
        server.server_close()
