"""Rejected messages and records: list, show (with raw bytes), export; CLI and endpoints."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from koppelpunt.app.rejected import get_rejection, list_rejections
from koppelpunt.errors import NotFoundError
from tests.conftest import Running, auth
from tests.messages import BSN, L, prognose_xml

from .helpers import invoke_cli

XML = {"Content-Type": "application/xml"}
BROKEN = b"<prognoses><niet-af>"


async def _post_both(client: httpx.AsyncClient) -> None:
    """One message refused as a whole (400), one accepted with one record rejected."""
    response = await client.post(
        "/v1/prognoses", content=BROKEN, headers={**auth("koppelpunt-vo"), **XML}
    )
    assert response.status_code == 400
    body = prognose_xml("P-REJ-1", [L(bsn=BSN[0]), L(bsn="999990008")])
    response = await client.post(
        "/v1/prognoses", content=body, headers={**auth("koppelpunt-vo"), **XML}
    )
    assert response.status_code == 202
    assert [a["index"] for a in response.json()["afgewezen"]] == [1]


class TestOperations:
    async def test_lists_messages_and_records_with_reasons(
        self, running: Running, client: httpx.AsyncClient
    ) -> None:
        """Both kinds appear, newest first, each with sender and reasons."""
        await _post_both(client)
        rows = await list_rejections(running.runtime)
        assert {r.kind for r in rows} == {"bericht", "record"}
        message = next(r for r in rows if r.kind == "bericht")
        record = next(r for r in rows if r.kind == "record")
        assert (message.sender, message.status_code, message.raw_size) == (
            "koppelpunt-vo",
            400,
            len(BROKEN),
        )
        assert message.reasons
        assert record.id.startswith("R") and record.record_index == 1
        assert record.bericht_id == "P-REJ-1"
        assert "elfproef" in json.dumps(record.reasons)
        assert await list_rejections(running.runtime, sender="koppelpunt-mbo") == []

    async def test_show_gives_the_raw_bytes(
        self, running: Running, client: httpx.AsyncClient
    ) -> None:
        """The refused body comes back byte for byte; a record gives its whole message."""
        await _post_both(client)
        rows = await list_rejections(running.runtime)
        message = next(r for r in rows if r.kind == "bericht")
        record = next(r for r in rows if r.kind == "record")
        assert (await get_rejection(running.runtime, message.id))[1] == BROKEN
        raw = (await get_rejection(running.runtime, record.id))[1]
        assert raw is not None and b"P-REJ-1" in raw
        with pytest.raises(NotFoundError):
            await get_rejection(running.runtime, "999")
        with pytest.raises(NotFoundError):
            await get_rejection(running.runtime, "bogus")


class TestEndpoints:
    async def test_operator_lists_and_shows(
        self, running: Running, client: httpx.AsyncClient
    ) -> None:
        """GET /v1/beheer/afwijzingen and /{id}?raw=true for an operator."""
        await _post_both(client)
        listed = await client.get("/v1/beheer/afwijzingen", headers=auth("beheer"))
        assert listed.status_code == 200
        rows = listed.json()["afwijzingen"]
        assert {r["soort"] for r in rows} == {"bericht", "record"}
        message = next(r for r in rows if r["soort"] == "bericht")
        shown = await client.get(
            f"/v1/beheer/afwijzingen/{message['id']}?raw=true", headers=auth("beheer")
        )
        assert shown.status_code == 200
        assert base64.b64decode(shown.json()["raw"]) == BROKEN
        missing = await client.get("/v1/beheer/afwijzingen/424242", headers=auth("beheer"))
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")

    async def test_senders_may_not(self, running: Running, client: httpx.AsyncClient) -> None:
        """A vo sender gets 403, no key 401."""
        assert (
            await client.get("/v1/beheer/afwijzingen", headers=auth("koppelpunt-vo"))
        ).status_code == 403
        assert (await client.get("/v1/beheer/afwijzingen")).status_code == 401


class TestCli:
    async def test_list_show_export(
        self, running: Running, client: httpx.AsyncClient, cli_env: None, tmp_path: Path
    ) -> None:
        """rejected list --json, show ID --raw and export --output on the same database."""
        await _post_both(client)
        listed = await invoke_cli(["rejected", "list", "--json"])
        assert listed.exit_code == 0, listed.output
        rows = json.loads(listed.stdout)
        message = next(r for r in rows if r["soort"] == "bericht")
        shown = await invoke_cli(["rejected", "show", message["id"]])
        assert shown.exit_code == 0 and "koppelpunt-vo" in shown.output
        raw = await invoke_cli(["rejected", "show", message["id"], "--raw"])
        assert raw.stdout_bytes == BROKEN
        out = tmp_path / "export.jsonl"
        exported = await invoke_cli(["rejected", "export", "--output", str(out)])
        assert exported.exit_code == 0, exported.output
        assert stat.S_IMODE(out.stat().st_mode) == 0o600  # raw messages hold BSNs
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) == 2
        by_kind = {line["soort"]: line for line in lines}
        assert base64.b64decode(by_kind["bericht"]["raw"]) == BROKEN
        missing = await invoke_cli(["rejected", "show", "R999"])
        assert missing.exit_code == 1


async def test_a_command_says_which_database_it_reads(
    running: Running, cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On stderr, as an absolute path: a relative SQLite URL depends on where it runs."""
    from koppelpunt.config import Settings
    from koppelpunt.store.db import describe_database

    listed = await invoke_cli(["rejected", "list"])
    assert listed.exit_code == 0, listed.output
    url = Settings().database_url
    assert f"database: {describe_database(url)}" in listed.stderr
    password = make_url(url).password
    if password:
        assert str(password) not in listed.stderr
