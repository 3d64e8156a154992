"""koppelpunt_signaleringen_created_total counts every signalering stored in the outbox: on
receipt, from peildatum runs (CLI or scheduler) and from parked records decided later."""

from __future__ import annotations

import httpx

from koppelpunt.app.derived import run_peildatum
from koppelpunt.app.parked import retry_parked
from tests.conftest import Running
from tests.messages import BSN, A, L
from tests.test_derived_end_to_end import (
    APRIL_1,
    FlakyLookup,
    post_prognose,
    post_status,
    register,
    settled,
)


async def created(client: httpx.AsyncClient, soort: str) -> float:
    """The counter's value for one type, read from /metrics as Prometheus would."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(f'koppelpunt_signaleringen_created_total{{type="{soort}"}}'):
            return float(line.split()[-1])
    return 0.0


async def test_peildatum_run_is_counted_once(client: httpx.AsyncClient, running: Running) -> None:
    """A NIET_AANGEMELD run counts its signalering; running the date again counts nothing."""
    await register(running, [(BSN[0], "0363", None)])
    await post_prognose(client, "m-1", [L(bsn=BSN[0])])
    assert await created(client, "PROGNOSE") == 1
    assert await created(client, "NIET_AANGEMELD") == 0
    first = await run_peildatum(running.runtime, APRIL_1)
    assert len(first.new) == 1
    assert await created(client, "NIET_AANGEMELD") == 1
    await run_peildatum(running.runtime, APRIL_1)
    await run_peildatum(running.runtime, APRIL_1, dry_run=True)
    assert await created(client, "NIET_AANGEMELD") == 1
    await settled(running)


async def test_parked_retry_is_counted(client: httpx.AsyncClient, running: Running) -> None:
    """A parked withdrawal decided later counts its AANMELDSTATUS and GEEN_PLAATSING, once."""
    await register(running, [(BSN[0], "0363", None)])
    flaky = FlakyLookup(running.runtime.lookup)
    running.runtime.lookup = flaky
    await post_status(client, "m-2", [A(status="INGETROKKEN", statusdatum="2027-03-01")])
    assert await created(client, "AANMELDSTATUS") == 0
    flaky.down = False
    result = await retry_parked(running.runtime)
    assert result.signaleringen == 2
    assert await created(client, "AANMELDSTATUS") == 1
    assert await created(client, "GEEN_PLAATSING") == 1
    await retry_parked(running.runtime)
    assert await created(client, "GEEN_PLAATSING") == 1
    await settled(running)
