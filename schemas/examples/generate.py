"""Regenerate schemas/examples/signaleringen/ from the example messages, through the service's
own receive path: `.venv/bin/python schemas/examples/generate.py`.

The two messages are received as the service receives them (koppelpunt.app.receive, a throwaway
SQLite database, the local woonregister from woonregister.csv), so derived signaleringen such
as GEEN_PLAATSING are in the output too. The clock is fixed so the files are stable;
tests/test_examples.py checks they equal what the service produces.
"""

from __future__ import annotations

import asyncio
import csv
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from koppelpunt.app.receive import receive
from koppelpunt.config import Settings
from koppelpunt.model import Soort
from koppelpunt.runtime import Runtime
from koppelpunt.store.db import upgrade_sync
from koppelpunt.store.register import upsert_woonregister
from koppelpunt.store.tables import outbox, signaleringen

HERE = Path(__file__).resolve().parent
NOW = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
MESSAGES = (
    ("prognoses", Soort.PROGNOSE, "koppelpunt-vo"),
    ("aanmeldstatussen", Soort.AANMELDSTATUS, "koppelpunt-mbo"),
)


def generate() -> dict[str, bytes]:
    """File name -> content: per message its receipt and its signaleringen in stored order."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/examples.db"
        upgrade_sync(url, create=True)
        return asyncio.run(_generate(Settings(database_url=url, relay_enabled=False)))


async def _generate(settings: Settings) -> dict[str, bytes]:
    runtime = Runtime.build(settings)
    runtime.clock = lambda: NOW
    try:
        with (HERE / "woonregister.csv").open(encoding="utf-8") as fh:
            rows = [
                (row["bsn"], row["gemeentecode"].removeprefix("GM"), None)
                for row in csv.DictReader(fh)
            ]
        async with runtime.sessions.begin() as session:
            await upsert_woonregister(session, rows)
        out: dict[str, bytes] = {}
        seen: set[str] = set()
        for name, soort, sender in MESSAGES:
            received = await receive(runtime, (HERE / f"{name}.xml").read_bytes(), soort, sender)
            out[f"{name}.receipt.json"] = (json.dumps(received.receipt, indent=2) + "\n").encode()
            async with runtime.sessions() as session:
                stored = (
                    await session.execute(
                        select(
                            signaleringen.c.signalering_id,
                            signaleringen.c.type,
                            signaleringen.c.gemeentecode,
                            signaleringen.c.payload,
                        )
                        .join(outbox, outbox.c.signalering_id == signaleringen.c.signalering_id)
                        .order_by(outbox.c.id)
                    )
                ).all()
            new = [row for row in stored if row.signalering_id not in seen]
            # Outbox order is the order the service publishes them in.
            for n, row in enumerate(new, start=1):
                seen.add(row.signalering_id)
                out[f"{name}.{n}.{row.type.lower()}.{row.gemeentecode.lower()}.xml"] = bytes(
                    row.payload
                )
        return out
    finally:
        await runtime.close()


if __name__ == "__main__":
    target = HERE / "signaleringen"
    target.mkdir(exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    for name, content in generate().items():
        (target / name).write_bytes(content)
        print(name)
