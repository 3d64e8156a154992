"""koppelpunt serve freezes its start-up heap (gc.freeze) and unfreezes it at shutdown."""

from __future__ import annotations

import gc

from asgi_lifespan import LifespanManager

from koppelpunt.api.app import create_app
from koppelpunt.config import Settings


async def test_serve_freezes_what_start_up_allocated(settings: Settings) -> None:
    assert gc.get_freeze_count() == 0
    app = create_app(settings, freeze_heap=True)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30):
        # The runtime built at start-up (schemas, rules, gemeente table) is among them.
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


async def test_an_app_without_it_freezes_nothing(settings: Settings) -> None:
    async with LifespanManager(create_app(settings), startup_timeout=60, shutdown_timeout=30):
        assert gc.get_freeze_count() == 0
