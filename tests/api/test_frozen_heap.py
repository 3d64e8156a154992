"""koppelpunt serve freezes its start-up heap (gc.freeze) and makes full collections rare;
at shutdown both are undone."""

from __future__ import annotations

import gc

from asgi_lifespan import LifespanManager

from koppelpunt.api.app import create_app
from koppelpunt.config import Settings
from koppelpunt.runtime import FULL_COLLECTION_AFTER


async def test_serve_freezes_what_start_up_allocated(settings: Settings) -> None:
    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    app = create_app(settings, freeze_heap=True)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        # The runtime built at start-up (schemas, rules, gemeente table) is among them.
        assert gc.get_freeze_count() > 10_000
        # Young generations as the interpreter had them; full collections rare.
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_AFTER)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


async def test_an_app_without_it_freezes_nothing(settings: Settings) -> None:
    before = gc.get_threshold()
    async with LifespanManager(create_app(settings), startup_timeout=60, shutdown_timeout=30):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before
