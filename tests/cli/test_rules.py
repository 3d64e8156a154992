"""`koppelpunt rules check | dry-run | schema` on real files, a real database and broker."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from koppelpunt.config import Settings
from koppelpunt.pipeline.rules_check import rules_json_schema
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import metadata
from tests.conftest import Running, auth
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml
from tests.test_end_to_end import topics_with_prefix

RULES_DIR = Path(__file__).resolve().parents[2] / "routing_rules"
XML = {"Content-Type": "application/xml"}
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    from koppelpunt.cli.main import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    target = tmp_path / "candidate"
    target.mkdir()
    for path in RULES_DIR.glob("*.yaml"):
        shutil.copy(path, target / path.name)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


class TestCheck:
    def test_ok_with_version(self) -> None:
        """The shipped rules: exit 0, OK and the version."""
        code, out, _ = invoke("rules", "check", str(RULES_DIR))
        assert code == 0
        assert out.startswith(f"OK {RULES_DIR}: version 2026.1")

    def test_every_error_with_file_and_field(self, candidate: Path) -> None:
        """Each problem on its own line as path: field: message; exit 1."""
        edit(candidate / "filters.yaml", "jonger_dan: 23", "jonger_dan: 0")
        edit(candidate / "signaleringen.yaml", "{maand: 10, dag: 1}", "{maand: 13, dag: 1}")
        code, out, err = invoke("rules", "check", str(candidate))
        assert code == 1
        assert "OK" not in out
        assert f"{candidate / 'filters.yaml'}: leeftijd.jonger_dan: " in err
        assert f"{candidate / 'signaleringen.yaml'}: peildata.teldatum.maand: " in err
        assert f"{candidate}: 2 problem(s)" in err

    def test_schema_command_prints_the_schema_file(self) -> None:
        """`rules schema` prints exactly what routing_rules/schema.json holds."""
        code, out, _ = invoke("rules", "schema")
        assert code == 0
        assert json.loads(out) == rules_json_schema()
        assert json.loads((RULES_DIR / "schema.json").read_text()) == json.loads(out)


async def snapshot(running: Running, settings: Settings) -> tuple[dict[str, int], set[str]]:
    counts = {}
    async with running.runtime.sessions() as session:
        for table in metadata.sorted_tables:
            counts[table.name] = await session.scalar(select(func.count()).select_from(table))
        counts["unpublished"] = await session.scalar(
            select(func.count())
            .select_from(metadata.tables["outbox"])
            .where(metadata.tables["outbox"].c.published_at.is_(None))
        )
    return counts, await topics_with_prefix(settings.kafka_bootstrap, settings.topic_prefix)


class TestDryRun:
    @pytest.mark.parametrize("lookup", [True, False], ids=["lookup", "no-lookup"])
    async def test_adds_and_withdraws_per_gemeente_and_type_and_changes_nothing(
        self,
        lookup: bool,
        client: httpx.AsyncClient,
        running: Running,
        settings: Settings,
        candidate: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Age limit 27 adds a prognose in GM0363, AANMELDSTATUS off withdraws one in GM0599.

        The pupil aged 24 was filtered before the lookup, so the dry run looks them up in the
        register; the others reuse the stored woongemeenten. With --no-lookup that pupil is
        counted as geparkeerd instead. Database and topics are unchanged.
        """
        async with running.runtime.sessions.begin() as session:
            await upsert_woonregister(
                session, [(BSN[0], "0363", None), (BSN[1], "0599", None), (BSN[2], "0363", None)]
            )
        prognose = prognose_xml(
            "dry-1",
            [L(bsn=BSN[0]), L(bsn=BSN[2], geboortedatum="2002-06-01"), L(bsn=BSN[3])],
        )
        r = await client.post(
            "/v1/prognoses", content=prognose, headers={**XML, **auth("koppelpunt-vo")}
        )
        assert r.status_code == 202
        assert r.json()["gefilterd"]["leeftijd"] == 1
        status = aanmeldstatus_xml("dry-2", [A(bsn=BSN[1])])
        r = await client.post(
            "/v1/aanmeldstatussen", content=status, headers={**XML, **auth("koppelpunt-mbo")}
        )
        assert r.status_code == 202 and r.json()["aantalSignaleringen"] == 1
        await running.relay.drain()
        before = await snapshot(running, settings)

        edit(candidate / "filters.yaml", "jonger_dan: 23", "jonger_dan: 27")
        edit(candidate / "filters.yaml", 'version: "2026.1"', 'version: "2027.1-concept"')
        edit(candidate / "signaleringen.yaml", "AANMELDSTATUS: true", "AANMELDSTATUS: false")
        monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("KOPPELPUNT_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
        monkeypatch.setenv("KOPPELPUNT_TOPIC_PREFIX", settings.topic_prefix)
        since = date.today().isoformat()
        args = ["rules", "dry-run", str(candidate), "--since", since, "--details"]
        code, out, err = await asyncio.to_thread(
            invoke, *args, *([] if lookup else ["--no-lookup"])
        )
        assert code == 0, err
        lines = out.splitlines()
        assert "2026.1" in lines[0] and "2027.1-concept" in lines[0]
        assert f"berichten since {since}: 2 (4 records)" in out
        rows = [line.split() for line in lines if line.startswith("GM")]
        withdrawn = ["GM0599", "AANMELDSTATUS", "+0", "-1"]
        geparkeerd = next(line.split() for line in lines if line.startswith("  geparkeerd"))
        if lookup:
            assert rows == [["GM0363", "PROGNOSE", "+1", "-0"], withdrawn]
            assert "total: +1 -1 (unchanged 1)" in out
            assert geparkeerd == ["geparkeerd", "0", "→", "0"]
        else:
            assert rows == [withdrawn]
            assert "total: +0 -1 (unchanged 1)" in out
            assert geparkeerd == ["geparkeerd", "0", "→", "1"]
        assert sum(1 for line in lines if line.startswith(("  + ", "  - "))) == len(rows)
        # Unchanged but for the dry run's own line in the verwerkingenlog (an operator action).
        after_counts, after_topics = await snapshot(running, settings)
        before_counts, before_topics = before
        assert after_counts == {
            **before_counts,
            "verwerkingenlog": before_counts["verwerkingenlog"] + 1,
        }
        assert after_topics == before_topics

    async def test_no_messages_since(
        self, running: Running, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Nothing stored in the period: an empty report, exit 0."""
        monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", settings.database_url)
        code, out, _ = await asyncio.to_thread(
            invoke, "rules", "dry-run", str(RULES_DIR), "--since", "2099-01-01"
        )
        assert code == 0
        assert "berichten since 2099-01-01: 0 (0 records)" in out
        assert "no signalering would be added or withdrawn" in out

    def test_invalid_candidate_is_refused(self, candidate: Path) -> None:
        """A candidate that fails the check is not run: its problems, exit 1."""
        edit(candidate / "filters.yaml", "jonger_dan: 23", "jonger_dan: nul")
        code, _, err = invoke("rules", "dry-run", str(candidate), "--since", "2027-01-01")
        assert code == 1
        assert "leeftijd.jonger_dan" in err
