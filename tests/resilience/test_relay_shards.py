"""Relay shards on PostgreSQL: disjoint by BSN, and one relay per shard at a time."""

from __future__ import annotations

import dataclasses

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koppelpunt.store import outbox
from koppelpunt.store.db import session_factory
from tests.db_fixtures import postgres_only
from tests.messages import BSN
from tests.store.helpers import T0, signalering

SHARDS = 4


@postgres_only
class TestRelayShards:
    async def test_shards_partition_the_outbox_by_bsn(self, engine: AsyncEngine) -> None:
        """Every due row is in exactly one shard, and all rows of one BSN in the same one."""
        items = [
            dataclasses.replace(signalering(f"s-{i}", minutes=i), bsn=BSN[i % len(BSN)])
            for i in range(60)
        ]
        async with session_factory(engine).begin() as session:
            await outbox.add_signaleringen(session, items)
        seen: dict[str, int] = {}
        claimed: list[str] = []
        for index in range(SHARDS):
            async with session_factory(engine).begin() as session:
                shard = outbox.ShardSet((index,), SHARDS)
                for item in await outbox.claim_pending(session, limit=100, now=T0, shard=shard):
                    claimed.append(item.signalering_id)
                    assert seen.setdefault(item.key, index) == index
        assert sorted(claimed) == sorted(i.signalering_id for i in items)
        assert len(set(seen.values())) > 1  # the BSNs really spread over several shards

    async def test_a_shard_is_locked_by_one_relay_at_a_time(self, engine: AsyncEngine) -> None:
        """While one transaction holds shards, another cannot take them; after commit it can."""
        sessions = session_factory(engine)
        every = tuple(range(SHARDS))
        async with sessions.begin() as first:
            assert (await outbox.lock_free_shards(first, SHARDS)).indexes == every
            async with sessions.begin() as second:
                assert (await outbox.lock_free_shards(second, SHARDS)).indexes == ()
        async with sessions.begin() as third:
            assert (await outbox.lock_free_shards(third, SHARDS)).indexes == every

    async def test_a_relay_takes_every_free_shard_at_once(self, engine: AsyncEngine) -> None:
        """lock_free_shards takes all shards nobody holds, skips the held ones, and holds
        what it took until commit."""
        sessions = session_factory(engine)
        async with sessions.begin() as first:
            assert await hold_shard(first, 1)  # as another relay would
            async with sessions.begin() as second:
                taken = await outbox.lock_free_shards(second, SHARDS)
                assert taken == outbox.ShardSet((0, 2, 3), SHARDS)
                async with sessions.begin() as third:
                    assert (await outbox.lock_free_shards(third, SHARDS)).indexes == ()
        async with sessions.begin() as fourth:
            assert (await outbox.lock_free_shards(fourth, SHARDS)).indexes == (0, 1, 2, 3)

    async def test_a_claim_over_several_shards_is_theirs_alone(self, engine: AsyncEngine) -> None:
        """Claimed with a set of shards: exactly the rows of those shards, oldest first; with
        every shard: every due row, as without shards."""
        items = [
            dataclasses.replace(signalering(f"s-{i}", minutes=i), bsn=BSN[i % len(BSN)])
            for i in range(60)
        ]
        async with session_factory(engine).begin() as session:
            await outbox.add_signaleringen(session, items)
        by_shard: dict[int, list[str]] = {}
        for index in range(SHARDS):
            async with session_factory(engine).begin() as session:
                shard = outbox.ShardSet((index,), SHARDS)
                by_shard[index] = [
                    i.signalering_id
                    for i in await outbox.claim_pending(session, limit=100, now=T0, shard=shard)
                ]
        order = [i.signalering_id for i in items]
        async with session_factory(engine).begin() as session:
            two = outbox.ShardSet((0, 2), SHARDS)
            claimed = [
                i.signalering_id
                for i in await outbox.claim_pending(session, limit=100, now=T0, shard=two)
            ]
        assert sorted(claimed, key=order.index) == claimed  # oldest first
        assert set(claimed) == set(by_shard[0]) | set(by_shard[2])
        async with session_factory(engine).begin() as session:
            every = outbox.ShardSet(tuple(range(SHARDS)), SHARDS)
            claimed = [
                i.signalering_id
                for i in await outbox.claim_pending(session, limit=100, now=T0, shard=every)
            ]
        assert claimed == order


async def hold_shard(session: AsyncSession, index: int) -> bool:
    """Lock one shard the way a relay does (same namespace), for the rest of the transaction."""
    locked = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:namespace, :index)"),
        {"namespace": outbox.RELAY_SHARD_LOCK_NAMESPACE, "index": index},
    )
    return bool(locked)
