"""The pure Python work of a large message, run off the event loop's thread.

Why: a 10,000-record message (the XSD's maximum) needs 0.1–0.25 s of Python for each of its
parse, decision, rendering and pupil-state steps. On the loop's thread nothing else runs
meanwhile: no health check, no other message's receipt, no relay pass (`bench/loop_stall.py`;
bench/ROUNDS.md, eleventh round). In a worker thread the same work takes the same CPU, but the
interpreter hands the GIL to the loop's thread whenever that thread waits for it longer than
the switch interval (5 ms), so the loop keeps answering between the worker's slices.

Small work stays on the loop: a trip to a thread and back costs ~0.1 ms, and a small
message's steps take less than that to a few ms. Only pure functions go to the thread
(no session, no I/O): they read the runtime's immutable parts and build new objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

# From this many records a step of a message (or of a group of messages) runs in a thread:
# up to ~10 ms of Python per step stay inline, the loop's slice on SQLite too (sqlite_driver).
OFF_LOOP_RECORDS = 500
# To weigh a body before it is parsed: a record of aanmeldstatus or prognose XML takes ~340
# bytes (bench/generate.py), so this errs towards the thread.
BYTES_PER_RECORD = 256

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def run_pure(
    records: int, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """`fn(*args, **kwargs)`: inline for fewer than OFF_LOOP_RECORDS records, else in a
    worker thread (the loop's default executor; contextvars such as the log's berichtId go
    along)."""
    if records < OFF_LOOP_RECORDS:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


def records_in(body: bytes) -> int:
    """About how many records a body holds, to decide where to parse it."""
    return len(body) // BYTES_PER_RECORD
