"""Migration 0009: signalering ids already in the verwerkingenlog become keyed references."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError
from koppelpunt.store.db import create_engine, upgrade
from koppelpunt.store.tables import verwerkingenlog
from koppelpunt.store.verwerkingenlog import LogCipher

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SID = "7abb60d5-d486-5018-9507-9fccc469a949"
OTHER = "0d6b6c1e-6a52-5f3b-8a6c-2f1b1c6f7e01"


def _line(name: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "trace_id": "0" * 31 + "1",
        "operation_id": "0" * 15 + "1",
        "name": name,
        "status_code": "OK",
        "start_time": T0,
        "end_time": T0,
        "verwerkingsactiviteit": "vva-signaleren-gemeenten",
        "attributes": attributes,
    }


class TestMigration0009:
    async def test_ids_become_references_under_the_service_key(
        self, empty_database_url: str
    ) -> None:
        """`signaleringId` -> `signaleringRef`, `signaleringIds` -> `signaleringRefs`, equal
        to what the service writes now; other attributes and lines stay as they were."""
        await upgrade(empty_database_url, "0007")
        lines = [
            _line("publiceren", {"signaleringId": SID, "type": "PROGNOSE", "topic": "t"}),
            _line("beheer.outbox_retry", {"signaleringIds": [SID, OTHER], "aantal": 2}),
            _line("ontvangen", {"berichtId": "b-1", "record": 0}),
        ]
        engine = create_engine(empty_database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(insert(verwerkingenlog), lines)
            await upgrade(empty_database_url)
            async with engine.connect() as connection:
                stored = list(
                    await connection.scalars(
                        select(verwerkingenlog.c.attributes).order_by(verwerkingenlog.c.id)
                    )
                )
        finally:
            await engine.dispose()
        cipher = LogCipher.from_settings(Settings())  # the key the migration ran with
        assert stored == [
            {"signaleringRef": cipher.signalering_ref(SID), "type": "PROGNOSE", "topic": "t"},
            {
                "signaleringRefs": [cipher.signalering_ref(SID), cipher.signalering_ref(OTHER)],
                "aantal": 2,
            },
            {"berichtId": "b-1", "record": 0},
        ]

    async def test_the_public_key_is_refused_when_lines_need_it(
        self, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """References made with the public development key would be computable by anyone and
        could never be made again with the real key: without the development switch the
        migration stops (ConfigurationError, exit code 2 in `db upgrade`), changing nothing."""
        assert Settings().uses_public_log_key
        await upgrade(empty_database_url, "0007")
        engine = create_engine(empty_database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    insert(verwerkingenlog), [_line("publiceren", {"signaleringId": SID})]
                )
            monkeypatch.setenv("KOPPELPUNT_DEVELOPMENT_MODE", "false")
            with pytest.raises(ConfigurationError, match="public development key"):
                await upgrade(empty_database_url)
            async with engine.connect() as connection:
                stored = list(await connection.scalars(select(verwerkingenlog.c.attributes)))
        finally:
            await engine.dispose()
        assert stored == [{"signaleringId": SID}]

    async def test_no_key_is_needed_without_ids(
        self, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A new database (or one whose log holds no id) migrates with any key."""
        monkeypatch.setenv("KOPPELPUNT_DEVELOPMENT_MODE", "false")
        await upgrade(empty_database_url)
