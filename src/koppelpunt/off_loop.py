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

What a body will cost is weighed before it is parsed, from its size and from its markup: a
small body can hold many tags and attributes, and refusing an invalid one costs Python time
per node (xmlschema's report, up to `KOPPELPUNT_XML_DETAILED_REPORT_MAX_NODES` nodes).
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
# ... and every `<` or `=` in it (a tag, an attribute, a namespace declaration) counts as a
# record: xmlschema's report of an invalid message takes up to ~40 µs per node, so the bodies
# that stay on the loop (fewer than OFF_LOOP_RECORDS of them) cost at most ~20 ms to refuse.
# A valid record has 10-30 of them: messages of more than 20-50 records go to the thread.
MARKUP_PER_RECORD = 1

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
    """About how many records' worth of work a body is, to decide where to parse it: by its
    size, or by its markup when that weighs more (counted only when the size does not
    already send it to the thread; two scans in C, ~1 ms per MB)."""
    by_size = len(body) // BYTES_PER_RECORD
    if by_size >= OFF_LOOP_RECORDS:
        return by_size
    return max(by_size, (body.count(b"<") + body.count(b"=")) // MARKUP_PER_RECORD)
