"""The Haal Centraal BRP adapter against a real local HTTP server (tests/lookup/brp_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from koppelpunt.lookup.circuit_breaker import CircuitBreaker, CircuitState
from koppelpunt.lookup.haal_centraal import HaalCentraalLookup, gemeente_of
from koppelpunt.pipeline.run import UNAVAILABLE
from tests.lookup.brp_server import API_KEY, FakeBrp, serve

DAY = date(2027, 3, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def brp() -> Iterator[FakeBrp]:
    yield from serve()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture(loop_scope="session")
async def adapter(brp: FakeBrp, clock: Clock) -> AsyncIterator[HaalCentraalLookup]:
    lookup = HaalCentraalLookup(
        brp.url,
        api_key=API_KEY,
        timeout_seconds=0.5,
        retries=2,
        retry_backoff_seconds=0,
        breaker=CircuitBreaker(3, 30.0, clock=clock),
    )
    yield lookup
    await lookup.close()


def bsns(n: int) -> list[str]:
    return [f"9{i:08d}" for i in range(n)]


class TestAnswers:
    async def test_gemeente_van_inschrijving(
        self, brp: FakeBrp, adapter: HaalCentraalLookup
    ) -> None:
        """A registered person gives the 4-digit code of the gemeente van inschrijving."""
        brp.add("999990007", "0363", "Amsterdam")
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): "0363"}

    async def test_request_shape(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """POST {base}/personen with the documented body and X-API-KEY; no BSN in the URL."""
        brp.add("999990007", "0363")
        await adapter.lookup([("999990007", DAY)])
        assert brp.requests == [
            {
                "path": "/haalcentraal/api/brp/personen",
                "body": {
                    "type": "RaadpleegMetBurgerservicenummer",
                    "burgerservicenummer": ["999990007"],
                    "fields": ["burgerservicenummer", "gemeenteVanInschrijving"],
                },
            }
        ]
        assert brp.headers[0]["x-api-key"] == API_KEY

    async def test_absent_person_is_none(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """An empty `personen` list means not found: None (filtered as geenWoongemeente)."""
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): None}

    async def test_404_is_none(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """A 404 answer means not found too, and is not retried."""
        brp.fail_next = [404]
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): None}
        assert len(brp.requests) == 1
        assert adapter.breaker.state is CircuitState.CLOSED

    @pytest.mark.parametrize(
        "persoon",
        [
            {
                "gemeenteVanInschrijving": {
                    "code": "1999",
                    "omschrijving": "Registratie Niet Ingezetenen (RNI)",
                }
            },
            {"gemeenteVanInschrijving": {"code": "0000", "omschrijving": "Onbekend"}},
            {},
            {"gemeenteVanInschrijving": {"omschrijving": "zonder code"}},
            {
                "gemeenteVanInschrijving": {"code": "0363", "omschrijving": "Amsterdam"},
                "opschortingBijhouding": {"reden": {"code": "E", "omschrijving": "emigratie"}},
            },
        ],
        ids=["rni", "onbekend", "missing", "no-code", "opschorting"],
    )
    async def test_no_dutch_gemeente_is_none(
        self, brp: FakeBrp, adapter: HaalCentraalLookup, persoon: dict[str, object]
    ) -> None:
        """RNI (1999), onbekend, a missing code or an opschorting bijhouding give None."""
        brp.personen["999990007"] = {"burgerservicenummer": "999990007", **persoon}
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): None}

    async def test_same_bsn_on_two_dates(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """The API knows only the current gemeente: both peildata get it, in one request."""
        brp.add("999990007", "0599")
        other = date(2026, 1, 1)
        found = await adapter.lookup([("999990007", DAY), ("999990007", other)])
        assert found == {("999990007", DAY): "0599", ("999990007", other): "0599"}
        assert len(brp.requests) == 1

    async def test_batches_of_twenty(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """45 BSNs go out in requests of at most 20, and every one is answered."""
        wanted = bsns(45)
        for b in wanted:
            brp.add(b, "0344")
        found = await adapter.lookup([(b, DAY) for b in wanted])
        assert found == {(b, DAY): "0344" for b in wanted}
        sizes = [len(r["body"]["burgerservicenummer"]) for r in brp.requests]
        assert sorted(sizes) == [5, 20, 20]

    async def test_no_keys_no_request(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """Nothing to look up: no call to the BRP."""
        assert await adapter.lookup([]) == {}
        assert brp.requests == []


class TestFailures:
    async def test_5xx_then_recovery_is_retried(
        self, brp: FakeBrp, adapter: HaalCentraalLookup
    ) -> None:
        """Two 503s then a 200: retried within the bound, and the answer is used."""
        brp.add("999990007", "0363")
        brp.fail_next = [503, 500]
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): "0363"}
        assert len(brp.requests) == 3

    async def test_5xx_beyond_retries_is_unavailable(
        self, brp: FakeBrp, adapter: HaalCentraalLookup
    ) -> None:
        """A BRP that keeps failing: 1 + retries attempts, then UNAVAILABLE (parked)."""
        brp.down = 503
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): UNAVAILABLE}
        assert len(brp.requests) == 3

    async def test_timeout_is_unavailable(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """Answers slower than the timeout, three times: UNAVAILABLE."""
        brp.fail_next = ["slow", "slow", "slow"]
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): UNAVAILABLE}

    async def test_timeout_then_answer(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """One slow answer, then a normal one: the retry gives the gemeente."""
        brp.add("999990007", "0363")
        brp.fail_next = ["slow"]
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): "0363"}

    async def test_connection_refused_is_unavailable(self) -> None:
        """Nothing listening: UNAVAILABLE, not an exception."""
        lookup = HaalCentraalLookup(
            "http://127.0.0.1:1/haalcentraal/api/brp", retries=1, retry_backoff_seconds=0
        )
        try:
            assert await lookup.lookup([("999990007", DAY)]) == {("999990007", DAY): UNAVAILABLE}
        finally:
            await lookup.close()

    async def test_wrong_api_key_is_not_retried(self, brp: FakeBrp, clock: Clock) -> None:
        """The server checks X-API-KEY: a wrong key gives 401, UNAVAILABLE, one request."""
        lookup = HaalCentraalLookup(
            brp.url, api_key="wrong", retries=3, retry_backoff_seconds=0,
            breaker=CircuitBreaker(3, 30.0, clock=clock),
        )  # fmt: skip
        try:
            brp.add("999990007", "0363")
            assert await lookup.lookup([("999990007", DAY)]) == {("999990007", DAY): UNAVAILABLE}
            assert len(brp.requests) == 1
        finally:
            await lookup.close()

    async def test_one_failing_batch_parks_only_its_bsns(
        self, brp: FakeBrp, adapter: HaalCentraalLookup
    ) -> None:
        """With 25 BSNs, a failing first batch parks its 20; the second batch is answered."""
        wanted = bsns(25)
        for b in wanted:
            brp.add(b, "0363")
        brp.failing_bsns = {wanted[0]}
        found = await adapter.lookup([(b, DAY) for b in wanted])
        assert [found[(b, DAY)] for b in wanted] == [UNAVAILABLE] * 20 + ["0363"] * 5

    async def test_logs_carry_no_bsn(self, brp: FakeBrp, adapter: HaalCentraalLookup) -> None:
        """The failure log line counts personen and never names a BSN."""
        brp.down = 500
        with capture_logs() as logs:
            await adapter.lookup([("999990007", DAY)])
        assert any(e["event"] == "brp_lookup_failed" for e in logs)
        assert "999990007" not in repr(logs)


class TestCircuitBreaker:
    async def test_opens_after_consecutive_failures(
        self, brp: FakeBrp, adapter: HaalCentraalLookup
    ) -> None:
        """After 3 failed calls the circuit opens and no request goes out any more."""
        brp.down = 500
        for _ in range(3):
            await adapter.lookup([("999990007", DAY)])
        assert adapter.breaker.state is CircuitState.OPEN
        sent = len(brp.requests)
        brp.down = None
        brp.add("999990007", "0363")
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): UNAVAILABLE}
        assert len(brp.requests) == sent

    async def test_half_open_recovers(
        self, brp: FakeBrp, adapter: HaalCentraalLookup, clock: Clock
    ) -> None:
        """After the reset time one trial call goes out; success closes the circuit."""
        brp.down = 500
        for _ in range(3):
            await adapter.lookup([("999990007", DAY)])
        brp.down = None
        brp.add("999990007", "0363")
        clock.now += 30.0
        assert adapter.breaker.state is CircuitState.HALF_OPEN
        assert await adapter.lookup([("999990007", DAY)]) == {("999990007", DAY): "0363"}
        assert adapter.breaker.state is CircuitState.CLOSED

    async def test_failed_trial_opens_again(
        self, brp: FakeBrp, adapter: HaalCentraalLookup, clock: Clock
    ) -> None:
        """A failing trial call in half-open opens the circuit for another reset period."""
        brp.down = 500
        for _ in range(3):
            await adapter.lookup([("999990007", DAY)])
        clock.now += 30.0
        await adapter.lookup([("999990007", DAY)])
        assert adapter.breaker.state is CircuitState.OPEN
        clock.now += 29.0
        assert adapter.breaker.state is CircuitState.OPEN

    def test_success_resets_the_count(self, clock: Clock) -> None:
        """Failures must be consecutive: a success in between starts counting again."""
        breaker = CircuitBreaker(2, 10.0, clock=clock)
        breaker.record_failure()
        breaker.record_success()
        breaker.record_failure()
        assert breaker.state is CircuitState.CLOSED
        breaker.record_failure()
        assert breaker.state is CircuitState.OPEN

    def test_half_open_lets_one_trial_through(self, clock: Clock) -> None:
        """In half-open only one caller gets to try; the others are refused until it ends."""
        breaker = CircuitBreaker(1, 10.0, clock=clock)
        breaker.record_failure()
        assert not breaker.allow()
        clock.now = 10.0
        assert breaker.allow()
        assert not breaker.allow()
        breaker.record_success()
        assert breaker.allow()


class TestGemeenteOf:
    def test_plain(self) -> None:
        """The code is taken as the BRP gives it (4 digits)."""
        assert gemeente_of({"gemeenteVanInschrijving": {"code": "0014"}}) == "0014"

    def test_odd_code_is_none(self) -> None:
        """A code that is not 4 digits is no gemeente."""
        assert gemeente_of({"gemeenteVanInschrijving": {"code": "GM0014"}}) is None


class TestCircuitBreakerProperties:
    @given(
        st.integers(1, 4),
        st.lists(st.sampled_from(["ok", "fail", "tick", "allow"]), max_size=40),
    )
    def test_never_lets_a_call_through_while_open(self, threshold: int, events: list[str]) -> None:
        """Against a reference model: a call is allowed iff closed, or half-open without trial."""
        clock = Clock()
        breaker = CircuitBreaker(threshold, 10.0, clock=clock)
        failures, opened_at, trial = 0, None, False
        for event in events:
            if event == "tick":
                clock.now += 5.0
            elif event == "ok":
                breaker.record_success()
                failures, opened_at, trial = 0, None, False
            elif event == "fail":
                breaker.record_failure()
                trial = False
                if opened_at is not None:
                    opened_at = clock.now
                else:
                    failures += 1
                    if failures >= threshold:
                        opened_at = clock.now
            else:
                half_open = opened_at is not None and clock.now - opened_at >= 10.0
                expected = opened_at is None or (half_open and not trial)
                if half_open and not trial:
                    trial = True
                assert breaker.allow() is expected
