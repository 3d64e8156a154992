"""Settings: what the configured database URL says about the backend."""

from __future__ import annotations

import pytest

from koppelpunt.config import Settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://u:p@db/koppelpunt", True),
        ("postgresql://u:p@db/koppelpunt", True),
        ("postgresql+psycopg://db/koppelpunt", True),
        ("sqlite+aiosqlite:///var/koppelpunt.db", False),
        ("sqlite+aiosqlite:///var/postgresql.db", False),
    ],
)
def test_uses_postgresql_reads_the_backend_of_the_url(url: str, expected: bool) -> None:
    """Relay shards and LISTEN/NOTIFY follow the URL's backend, whatever its driver."""
    assert Settings(database_url=url).uses_postgresql is expected
