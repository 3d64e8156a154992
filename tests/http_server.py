"""The app on the real HTTP server (koppelpunt.api.server, as `koppelpunt serve` runs it) on a
free port in the test's event loop, and a raw HTTP/1.1 client for what httpx will not send:
partial heads, trickled bytes, odd transfer codings."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench import harness
from koppelpunt.api.app import create_app
from koppelpunt.api.server import server
from koppelpunt.config import Settings
from tests.kafka_fixtures import free_port


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int]:
    """create_app(settings) on koppelpunt's server; yields the port."""
    port = free_port()
    srv = server(create_app(settings), settings, host="127.0.0.1", port=port)
    task = asyncio.create_task(srv.serve())
    for _ in range(600):
        if srv.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert srv.started, "the server did not start"
    try:
        yield port
    finally:
        srv.should_exit = True
        await task


@contextlib.asynccontextmanager
async def throwaway_service(
    database_url: str, bootstrap: str, senders_file: Path, directory: Path
) -> AsyncIterator[harness.Process]:
    """`koppelpunt serve` as a process of its own (as in production: its own event loop, so a
    stalled loop shows), on the test's database with a topic prefix of its own; its log is
    `directory/serve.log`. Never a shared instance: an operator key there starts real replays."""
    env = harness.service_env(
        database_url=database_url,
        bootstrap=bootstrap,
        senders_file=senders_file,
        topic_prefix=f"vva.signalering.t{uuid.uuid4().hex[:8]}",
        extra={"KOPPELPUNT_TOPIC_PARTITIONS": "1", "KOPPELPUNT_LOG_LEVEL": "WARNING"},
    )
    process = harness.serve(env, directory / "serve.log")
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop(timeout=15)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


async def read_response(reader: asyncio.StreamReader) -> Response | None:
    """One response (Content-Length framed, as every answer of ours is); None on a close
    before any byte of a response."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(status, headers, body)


async def closed(reader: asyncio.StreamReader) -> bool:
    """The server has closed the connection (EOF or reset)."""
    try:
        return await reader.read(1) == b""
    except ConnectionError:
        return True


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def head(method: str, path: str, *headers: str) -> bytes:
    """A request head: request line, Host, the given header lines, the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: koppelpunt.test", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")
