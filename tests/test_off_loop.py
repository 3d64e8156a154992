"""A large message's pure work runs in a thread, so the event loop keeps answering meanwhile.

The spies below wrap the real steps and sleep in them (time.sleep: the whole thread waits, as
it would in 50 ms of Python): run on the loop's thread, they would keep every other task
waiting, and the ticker would not move.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from koppelpunt import off_loop
from koppelpunt.app import derived, parked, receive
from koppelpunt.app.derived import run_peildatum
from koppelpunt.errors import InvalidMessageError
from koppelpunt.model import Soort
from koppelpunt.off_loop import OFF_LOOP_RECORDS, records_in, run_pure
from koppelpunt.pipeline import derive, run
from koppelpunt.store.register import upsert_woonregister
from tests.conftest import Running
from tests.hostile import CASES_DIR
from tests.messages import BSN, A, L, aanmeldstatus_xml, prognose_xml
from tests.strategies import bsn_from_prefix
from tests.test_derived_end_to_end import FlakyLookup
from tests.test_receive_session import register
from tests.ticker import Ticker

SENDER = "koppelpunt-mbo"
_berichtId: contextvars.ContextVar[str] = contextvars.ContextVar("test_berichtId")


def _blocking(seconds: float) -> int:
    """Keeps its thread busy for `seconds`; the thread it ran on."""
    time.sleep(seconds)
    return threading.get_ident()


async def _ran(records: int, seconds: float = 0.05) -> tuple[int, int]:
    """(thread a blocking function ran on, ticks of the loop meanwhile) via run_pure."""
    async with Ticker(0) as ticker:
        before = ticker.ticks
        thread = await run_pure(records, _blocking, seconds)
        return thread, ticker.ticks - before


class TestRunPure:
    async def test_small_work_runs_on_the_loops_thread(self) -> None:
        """Below OFF_LOOP_RECORDS the trip to a thread costs more than it saves."""
        thread, ticks = await _ran(OFF_LOOP_RECORDS - 1)
        assert thread == threading.get_ident()
        assert ticks == 0  # nothing else ran meanwhile: why large work must not stay here

    async def test_large_work_runs_in_a_thread_while_the_loop_goes_on(self) -> None:
        thread, ticks = await _ran(OFF_LOOP_RECORDS)
        assert thread != threading.get_ident()
        assert ticks > 0

    async def test_context_goes_along(self) -> None:
        """The log's bound berichtId (a contextvar) is seen in the thread too."""
        token = _berichtId.set("ctx-1")
        try:
            assert await run_pure(OFF_LOOP_RECORDS, _berichtId.get) == "ctx-1"
        finally:
            _berichtId.reset(token)

    async def test_an_error_reaches_the_caller(self) -> None:
        def fail(text: str) -> None:
            raise ValueError(text)

        with pytest.raises(ValueError, match="boom"):
            await run_pure(OFF_LOOP_RECORDS, fail, "boom")

    def test_records_in_weighs_a_body_before_parsing(self) -> None:
        assert records_in(b"x" * (off_loop.BYTES_PER_RECORD * 7 + 1)) == 7
        # a real record is larger than BYTES_PER_RECORD: a body errs towards the thread
        one = aanmeldstatus_xml("w", [A()])
        two = aanmeldstatus_xml("w", [A(), A()])
        assert len(two) - len(one) > off_loop.BYTES_PER_RECORD

    def test_records_in_weighs_markup_too(self) -> None:
        """A small body full of tags or attributes (issue 21's 19 KB attribute bomb) weighs
        what refusing it may cost, not what its size suggests."""
        bomb = (CASES_DIR / "attribute-bomb.xml").read_bytes()
        assert len(bomb) // off_loop.BYTES_PER_RECORD < OFF_LOOP_RECORDS <= records_in(bomb)
        assert records_in(aanmeldstatus_xml("w", [A()] * 3)) < OFF_LOOP_RECORDS


class _Spy:
    """Wraps a step: records the thread it ran on and whether the loop ran meanwhile."""

    def __init__(self, step: Callable[..., Any], ticker: Ticker) -> None:
        self.step = step
        self.ticker = ticker
        self.calls: list[tuple[bool, int]] = []  # (on the loop's thread, ticks during)
        self.loop_thread = threading.get_ident()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        before = self.ticker.ticks
        result = self.step(*args, **kwargs)
        time.sleep(0.05)  # as a step of a 10,000-record message would take
        on_loop = threading.get_ident() == self.loop_thread
        self.calls.append((on_loop, self.ticker.ticks - before))
        return result


def _spy_on(
    monkeypatch: pytest.MonkeyPatch, ticker: Ticker, steps: dict[str, tuple[object, str]]
) -> dict[str, _Spy]:
    """Replaces each step, named by (owner, attribute), with a _Spy of it."""
    spies: dict[str, _Spy] = {}
    for name, (owner, attribute) in steps.items():
        spies[name] = _Spy(getattr(owner, attribute), ticker)
        monkeypatch.setattr(owner, attribute, spies[name])
    return spies


async def _receive_spied(
    running: Running, monkeypatch: pytest.MonkeyPatch, bericht_id: str, records: int
) -> tuple[receive.Received, dict[str, _Spy]]:
    runtime = running.runtime
    await register(runtime)
    aanmeldingen = [A(bsn=BSN[0], aanmelding_id=f"{bericht_id}-{n}") for n in range(records)]
    body = aanmeldstatus_xml(bericht_id, aanmeldingen)
    async with Ticker(0) as ticker:
        steps = {
            "parse": (receive, "parse_message"),
            "decide": (receive, "_prepare"),
            "derive": (derived, "_derive_group"),
        }
        spies = _spy_on(monkeypatch, ticker, steps)
        received = await receive.receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
    return received, spies


class TestReceive:
    async def test_a_large_messages_pure_steps_leave_the_loop_free(
        self, running: Running, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Parse, decision and rendering, and derivation of a message of OFF_LOOP_RECORDS
        records run in a thread: the loop went on during each (0 ticks when inline)."""
        received, spies = await _receive_spied(running, monkeypatch, "large-1", OFF_LOOP_RECORDS)
        assert received.status_code == 202
        assert received.receipt["aantalRecords"] == OFF_LOOP_RECORDS
        assert received.receipt["aantalSignaleringen"] == OFF_LOOP_RECORDS
        _assert_off_loop(spies)

    @pytest.mark.parametrize("group_size", [1, 32])
    async def test_a_small_messages_steps_stay_on_the_loop(
        self, running: Running, monkeypatch: pytest.MonkeyPatch, group_size: int
    ) -> None:
        """Alone or through the group commit."""
        runtime = running.runtime
        monkeypatch.setattr(
            runtime,
            "settings",
            runtime.settings.model_copy(update={"receive_group_size": group_size}),
        )
        received, spies = await _receive_spied(running, monkeypatch, f"small-{group_size}", 3)
        assert received.status_code == 202
        assert received.receipt["aantalSignaleringen"] == 3
        for name, spy in spies.items():
            assert [on_loop for on_loop, _ in spy.calls] == [True], name


class TestRefusal:
    async def test_a_small_body_full_of_markup_is_parsed_off_the_loop(
        self, running: Running, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The attribute bomb is refused in a thread: the loop went on meanwhile."""
        body = (CASES_DIR / "attribute-bomb.xml").read_bytes()
        async with Ticker(0) as ticker:
            spies = _spy_on(monkeypatch, ticker, {"parse": (receive, "parse_message")})
            with pytest.raises(InvalidMessageError):
                await receive.receive(running.runtime, body, Soort.PROGNOSE, "koppelpunt-vo")
        _assert_off_loop(spies)


def _assert_off_loop(spies: dict[str, _Spy]) -> None:
    """Each spied step ran once, in a thread, while the loop went on (0 ticks when inline)."""
    for name, spy in spies.items():
        assert len(spy.calls) == 1, name
        on_loop, ticks = spy.calls[0]
        assert not on_loop, name
        assert ticks > 0, name


class TestParkedRetry:
    async def test_a_large_parked_messages_pure_steps_leave_the_loop_free(
        self, running: Running, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A message parked whole (BRP down) is parsed, decided, derived and rendered again
        at the retry: in a thread, as at receipt."""
        runtime = running.runtime
        await register(runtime)
        flaky = FlakyLookup(runtime.lookup)
        runtime.lookup = flaky
        aanmeldingen = [A(bsn=BSN[0], aanmelding_id=f"p-{n}") for n in range(OFF_LOOP_RECORDS)]
        body = aanmeldstatus_xml("parked-large", aanmeldingen)
        received = await receive.receive(runtime, body, Soort.AANMELDSTATUS, SENDER)
        assert received.receipt["geparkeerd"] == OFF_LOOP_RECORDS
        flaky.down = False
        async with Ticker(0) as ticker:
            steps = {
                "parse": (parked, "parse_message"),
                "decide": (run, "decide"),
                "derive": (derive, "on_receipt"),
                "render": (parked, "render_all"),
            }
            spies = _spy_on(monkeypatch, ticker, steps)
            retried = await parked.retry_parked(runtime)
        assert (retried.decided, retried.still_parked) == (OFF_LOOP_RECORDS, 0)
        assert retried.signaleringen == OFF_LOOP_RECORDS
        _assert_off_loop(spies)


class TestPeildatum:
    async def test_a_large_batchs_decisions_leave_the_loop_free(
        self, running: Running, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """OFF_LOOP_RECORDS pupils with a prognose and no aanmelding on 1 April: their
        decisions and renderings run in a thread."""
        runtime = running.runtime
        prefixes = (bsn_from_prefix(str(p)) for p in range(99_999_000, 100_000_000))
        bsns = [b for b in prefixes if b is not None][:OFF_LOOP_RECORDS]
        assert len(bsns) == OFF_LOOP_RECORDS
        async with runtime.sessions.begin() as session:
            await upsert_woonregister(session, [(b, "0363", None) for b in bsns])
        body = prognose_xml("peildatum-large", [L(bsn=b) for b in bsns])
        received = await receive.receive(runtime, body, Soort.PROGNOSE, "koppelpunt-vo")
        assert received.status_code == 202
        async with Ticker(0) as ticker:
            steps = {"decide": (derived, "_decide_peildatum"), "render": (derived, "render_all")}
            spies = _spy_on(monkeypatch, ticker, steps)
            result = await run_peildatum(runtime, date(2027, 4, 1))
        assert result.counts() == {("GM0363", "NIET_AANGEMELD"): OFF_LOOP_RECORDS}
        _assert_off_loop(spies)
