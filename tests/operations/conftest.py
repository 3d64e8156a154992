"""Fixtures of the operations tests."""

from __future__ import annotations

import pytest

from koppelpunt.config import Settings


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads its settings from the environment: point it at this test's parts."""
    monkeypatch.setenv("KOPPELPUNT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KOPPELPUNT_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("KOPPELPUNT_TOPIC_PREFIX", settings.topic_prefix)
