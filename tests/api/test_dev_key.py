"""The public development log encryption key is refused unless KOPPELPUNT_DEVELOPMENT_MODE is
set: by create_app, by `koppelpunt serve` (exit code 2, before it listens) and by every command
that uses the key (issue 21, finding 3). So is the public /beheer signing key (issue 25)."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from bench import harness
from koppelpunt.api.app import create_app
from koppelpunt.cli.main import app as cli
from koppelpunt.config import DEV_LOG_ENCRYPTION_KEY, Settings
from koppelpunt.errors import ConfigurationError
from tests.messages import BSN

OWN_KEY = base64.b64encode(os.urandom(32)).decode()
OWN_BEHEER_KEY = secrets.token_urlsafe(32)


def test_the_default_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPPELPUNT_DEVELOPMENT_MODE", raising=False)
    s = Settings()
    assert s.development_mode is False and s.uses_public_log_key
    with pytest.raises(ConfigurationError, match="KOPPELPUNT_DEVELOPMENT_MODE"):
        s.refuse_public_log_key()
    assert s.uses_public_beheer_key
    with pytest.raises(ConfigurationError, match="KOPPELPUNT_DEVELOPMENT_MODE"):
        s.refuse_public_beheer_key()


def test_create_app_refuses_the_public_key_without_the_switch(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="public development key"):
        create_app(settings.model_copy(update={"development_mode": False}))
    create_app(settings)  # development_mode=True: the tests' own settings
    own_log_key = settings.model_copy(
        update={"development_mode": False, "log_encryption_key": SecretStr(OWN_KEY)}
    )
    with pytest.raises(ConfigurationError, match="KOPPELPUNT_BEHEER_SECRET_KEY is the public"):
        create_app(own_log_key)
    create_app(own_log_key.model_copy(update={"beheer_secret_key": SecretStr(OWN_BEHEER_KEY)}))


def test_a_short_beheer_key_is_refused_without_quoting_it(settings: Settings) -> None:
    """Under 32 characters is too short to sign with, in development mode too; the error names
    the setting, not the value."""
    short = settings.model_copy(update={"beheer_secret_key": SecretStr("kort-geheim-1234")})
    with pytest.raises(ConfigurationError, match="at least 32 characters") as raised:
        create_app(short)
    assert "kort-geheim" not in str(raised.value)


def test_commands_that_use_the_key_refuse_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """inzage decrypts the verwerkingenlog, the relay encrypts: refused (main() turns it into
    exit code 2). A command that does not touch the key (db upgrade) runs."""
    monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", database_url)
    monkeypatch.setenv("KOPPELPUNT_DEVELOPMENT_MODE", "false")
    result = CliRunner().invoke(cli, ["inzage", "--bsn", BSN[0]])
    assert isinstance(result.exception, ConfigurationError), result.output
    # The relay logs each publication with the BSN encrypted: refused before it publishes.
    result = CliRunner().invoke(cli, ["relay", "--once"])
    assert isinstance(result.exception, ConfigurationError), result.output
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    monkeypatch.setenv("KOPPELPUNT_LOG_ENCRYPTION_KEY", OWN_KEY)
    result = CliRunner().invoke(cli, ["inzage", "--bsn", BSN[0]])
    assert result.exit_code == 0, result.output


async def test_serve_exits_2_with_the_public_key_and_starts_with_the_switch(
    database_url: str, kafka_bootstrap: str, senders_file: Path, tmp_path: Path
) -> None:
    """The real `koppelpunt serve`: exit code 2 and a clear message without the switch; with
    it (as `make run` sets it) the service starts and answers."""
    env = harness.service_env(
        database_url=database_url,
        bootstrap=kafka_bootstrap,
        senders_file=senders_file,
        topic_prefix=f"vva.signalering.d{uuid.uuid4().hex[:8]}",
        extra={
            "KOPPELPUNT_LOG_ENCRYPTION_KEY": DEV_LOG_ENCRYPTION_KEY,
            "KOPPELPUNT_DEVELOPMENT_MODE": "false",
            "KOPPELPUNT_LOG_JSON": "false",
        },
    )
    refused = harness.serve(env, tmp_path / "refused.log")
    assert refused.proc is not None
    try:
        assert await asyncio.to_thread(refused.proc.wait, 60) == 2
    finally:
        refused.stop()  # a service that started anyway must not outlive the test
    text = (tmp_path / "refused.log").read_text()
    assert "public development key" in text and "KOPPELPUNT_DEVELOPMENT_MODE=true" in text
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(refused.base_url + "/livez")

    started = harness.serve(
        {**env, "KOPPELPUNT_DEVELOPMENT_MODE": "true"}, tmp_path / "started.log"
    )
    try:
        await started.wait_ready(path="/livez")
    finally:
        started.stop()
