"""Repository for the local woongemeente register."""

from __future__ import annotations

import time
from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.store.register import SINCE_ALWAYS, find_woonregister, upsert_woonregister
from koppelpunt.store.tables import woonregister


class TestUpsert:
    async def test_insert_and_overwrite(self, session: AsyncSession) -> None:
        """A second upsert for the same bsn and date overwrites the gemeentecode."""
        assert await upsert_woonregister(session, [("999993653", "0363", date(2020, 1, 1))]) == 1
        await upsert_woonregister(session, [("999993653", "0599", date(2020, 1, 1))])
        await session.commit()
        assert await find_woonregister(session, ["999993653"]) == {
            "999993653": [(date(2020, 1, 1), "0599")]
        }

    async def test_missing_date_means_since_always(self, session: AsyncSession) -> None:
        """A row without geldig_vanaf is stored as 0001-01-01 and sorts first."""
        await upsert_woonregister(
            session, [("999993653", "0599", date(2023, 6, 1)), ("999993653", "0363", None)]
        )
        assert await find_woonregister(session, ["999993653"]) == {
            "999993653": [(SINCE_ALWAYS, "0363"), (date(2023, 6, 1), "0599")]
        }

    async def test_last_duplicate_in_input_wins(self, session: AsyncSession) -> None:
        """Within one call a later row for the same key wins."""
        count = await upsert_woonregister(
            session, [("999993653", "0363", None), ("999993653", "0518", None)]
        )
        assert count == 1
        assert await find_woonregister(session, ["999993653"]) == {
            "999993653": [(SINCE_ALWAYS, "0518")]
        }

    async def test_updated_at_is_aware(self, session: AsyncSession) -> None:
        """updated_at comes back timezone-aware."""
        await upsert_woonregister(session, [("999993653", "0363", None)])
        updated_at = await session.scalar(select(woonregister.c.updated_at))
        assert updated_at is not None and updated_at.utcoffset() is not None

    async def test_rejects_cbs_code(self, session: AsyncSession) -> None:
        """The register keeps BRP codes (0363), not CBS codes (GM0363)."""
        with pytest.raises(ValueError, match="4 digits"):
            await upsert_woonregister(session, [("999993653", "GM0363", None)])

    async def test_hundred_thousand_rows(self, session: AsyncSession) -> None:
        """A 100,000-row import finishes in a few seconds."""
        rows = [(f"{i:09d}", "0363", date(2020, 1, 1)) for i in range(100_000)]
        started = time.perf_counter()
        assert await upsert_woonregister(session, rows) == 100_000
        await session.commit()
        elapsed = time.perf_counter() - started
        found = await find_woonregister(session, ["000000000", "000099999"])
        assert set(found) == {"000000000", "000099999"}
        assert elapsed < 20, f"100,000 rows took {elapsed:.2f}s"


class TestFind:
    async def test_many_bsns_are_chunked(self, session: AsyncSession) -> None:
        """A lookup of 1,500 BSNs (more than one IN list) finds every stored one."""
        stored = [(f"{i:09d}", f"{i % 400:04d}", None) for i in range(0, 3000, 2)]
        await upsert_woonregister(session, stored)
        asked = [f"{i:09d}" for i in range(1500)]
        found = await find_woonregister(session, asked)
        assert len(found) == 750
        assert found["000000002"] == [(SINCE_ALWAYS, "0002")]
        assert "000000001" not in found

    async def test_empty_input(self, session: AsyncSession) -> None:
        """No BSNs asked, nothing found, no query fails."""
        assert await find_woonregister(session, []) == {}
