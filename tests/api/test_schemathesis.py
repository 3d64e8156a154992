"""Schemathesis, a fuzzer nobody here wrote, against the served OpenAPI document.

It runs against a throwaway instance (`koppelpunt serve` as a subprocess with this test's own
database and its own topic prefix on the session's broker), never a shared one: the operator
key can start real replays. Every check schemathesis has must pass for each role's key: no
server error, no undocumented status, no response outside its schema, no schema-valid request
refused, no wrong Allow header. The refusals no OpenAPI schema can express (an XSD-invalid
message, a BSN that fails the elfproef, a gemeente not in the table) are listed in
schemathesis.toml beside this file. schemathesis is a dev dependency: without it this fails.
The whole report of each run is written to var/test-artifacts/schemathesis-<sender>.txt.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bench import harness
from tests.conftest import KEYS
from tests.http_server import throwaway_service

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
ST = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")


@pytest_asyncio.fixture(loop_scope="session")
async def service(
    database_url: str, kafka_bootstrap: str, senders_file: Path, tmp_path: Path
) -> AsyncIterator[harness.Process]:
    async with throwaway_service(database_url, kafka_bootstrap, senders_file, tmp_path) as process:
        yield process


@pytest.mark.parametrize("sender", ["beheer", "koppelpunt-vo"])
async def test_every_check_passes(service: harness.Process, sender: str, tmp_path: Path) -> None:
    run = functools.partial(
        subprocess.run,
        [
            ST,
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{service.base_url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {KEYS[sender][1]}",
            "--max-examples",
            "25",
            "--seed",
            "20261205",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    result = await asyncio.to_thread(run)
    report = ARTIFACTS / f"schemathesis-{sender}.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(result.stdout + result.stderr, encoding="utf-8")
    assert result.returncode == 0, f"schemathesis failed; its whole report: {report}\n" + (
        result.stdout[-6000:] + result.stderr[-2000:]
    )
