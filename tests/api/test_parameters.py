"""Every path and query parameter (and the operators' JSON fields) answers bad input with a
400/404 problem+json: never a 500, and never a 503 that blames the database for a bad request.

Each value here made some endpoint answer 500 (SQLite) or 503 (PostgreSQL refuses a NUL, a
64-bit overflow or an over-long varchar) before: integer overflow, digits that are not ASCII
(str.isdigit and \\d take "²" and "٣"), dates whose conversion to UTC overflows, control
characters. The suite runs on SQLite and, with KOPPELPUNT_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import auth

PROBLEM = "application/problem+json"

HUGE = "99999999999999999999999"
INT64_PLUS_ONE = str(2**63)
NON_ASCII_DIGITS = ["²", "٣٦٣", "１２"]
CONTROL = ["\x00", "a\x00b", "x\x1fy", "\x7f"]
OUT_OF_RANGE_MOMENTS = [
    "0001-01-01",  # Amsterdam time: before datetime's first instant in UTC
    "0001-01-01T00:00+14:00",
    "9999-12-31T23:59:59-14:00",  # after its last
    "1800-01-01",
    "3000-01-02",
]

PATH_CASES = [
    # 400 where the value cannot be an id (api/parameters.py AFWIJZING_ID), 404 where it can
    # but does not exist (beyond 64 bits).
    ("/v1/beheer/afwijzingen/{}", value, {400, 404})
    for value in [HUGE, "R" + HUGE, INT64_PLUS_ONE, "R" + INT64_PLUS_ONE, "9" * 5000]
    + NON_ASCII_DIGITS
    + ["R" + v for v in NON_ASCII_DIGITS]
] + [
    (path, value, {400})
    for path in ("/v1/beheer/afwijzingen/{}", "/v1/beheer/replays/{}", "/v1/berichten/{}")
    for value in CONTROL
]

QUERY_CASES = (
    [("/v1/beheer/afwijzingen", {"since": v}, {400}) for v in OUT_OF_RANGE_MOMENTS]
    + [
        (path, {name: v}, {400})
        for path, name in (
            ("/v1/beheer/afwijzingen", "sender"),
            ("/v1/beheer/afwijzingen", "since"),
            ("/v1/beheer/outbox/failing", "gemeente"),
            ("/v1/beheer/lag", "gemeente"),
        )
        for v in CONTROL
    ]
    + [
        (path, {"limit": v}, {400})
        for path in (
            "/v1/beheer/afwijzingen",
            "/v1/beheer/replays",
            "/v1/beheer/outbox/failing",
            "/v1/beheer/parked",
        )
        for v in [HUGE, INT64_PLUS_ONE, "-1", "1e309", "NaN", *NON_ASCII_DIGITS]
    ]
    + [("/v1/beheer/afwijzingen/1", {"raw": v}, {400}) for v in ["2", "\x00", HUGE]]
    + [("/v1/beheer/lag", {"gemeente": "GM٠٣٦٣"}, {400})]
)

BODY_CASES: list[tuple[str, dict[str, Any]]] = (
    [
        ("/v1/beheer/replays", {"gemeente": "GM0363", k: v})
        for k in ("since", "until")
        for v in OUT_OF_RANGE_MOMENTS
    ]
    + [("/v1/beheer/replays", {"gemeente": v}) for v in ["GM٠٣٦٣", "GM0363\x00", "G" * 5000]]
    + [
        ("/v1/beheer/replays", {"gemeente": "GM0363", "dryRun": True, field: v})
        for field in ("type", "toTopic", "since")
        for v in [*CONTROL, "X" * 5000]
    ]
    + [("/v1/beheer/outbox/retry", {"signaleringIds": [v]}) for v in [*CONTROL, "X" * 5000]]
    + [("/v1/beheer/outbox/retry", {"signaleringIds": [str(n) for n in range(40_000)]})]
    + [("/v1/beheer/inzage", {"bsn": v}) for v in ["٩٩٩٩٩٠٠٠٧", "\x00", "9" * 5000]]
)


def _assert_problem(r: httpx.Response, expected: set[int]) -> None:
    assert r.status_code in expected, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]


class TestPathParameters:
    @pytest.mark.parametrize(("template", "value", "expected"), PATH_CASES)
    async def test_bad_path_parameter_is_a_problem(
        self, client: httpx.AsyncClient, template: str, value: str, expected: set[int]
    ) -> None:
        """A bad id in the path: 404 (no such thing) or 400 (not a possible id)."""
        r = await client.get(template.format(quote(value, safe="")), headers=auth("beheer"))
        _assert_problem(r, expected)


class TestQueryParameters:
    @pytest.mark.parametrize(("path", "params", "expected"), QUERY_CASES)
    async def test_bad_query_parameter_is_a_problem(
        self,
        client: httpx.AsyncClient,
        path: str,
        params: dict[str, str],
        expected: set[int],
    ) -> None:
        """A bad query value: 400 problem+json."""
        r = await client.get(path, params=params, headers=auth("beheer"))
        _assert_problem(r, expected)

    async def test_moments_inside_the_range_still_work(self, client: httpx.AsyncClient) -> None:
        """The first and last accepted days are accepted."""
        for since in ("1900-01-02", "2999-12-30T00:00+00:00"):
            r = await client.get(
                "/v1/beheer/afwijzingen", params={"since": since}, headers=auth("beheer")
            )
            assert r.status_code == 200, r.text


class TestJsonFields:
    @pytest.mark.parametrize(
        ("path", "body"), BODY_CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(BODY_CASES)]
    )
    async def test_bad_json_field_is_400(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any]
    ) -> None:
        """A field the database cannot hold or the service cannot mean: 400, not 500/503."""
        r = await client.post(path, json=body, headers=auth("beheer"))
        _assert_problem(r, {400, 413})


# Requests whose parameters are bad and which carry no key: the key is checked first.
UNAUTHENTICATED_CASES = [
    ("GET", "/v1/beheer/parked?limit=0"),
    ("GET", "/v1/beheer/afwijzingen?since=gisteren"),
    ("GET", "/v1/beheer/afwijzingen/R%C2%B2"),
    ("GET", "/v1/beheer/lag?gemeente=Amsterdam"),
    ("GET", "/v1/beheer/outbox/failing?limit=-1"),
    ("GET", "/v1/beheer/replays/not-a-uuid"),
    ("GET", "/v1/berichten/" + "x" * 65),
]


class TestKeyBeforeParameters:
    @pytest.mark.parametrize(("method", "url"), UNAUTHENTICATED_CASES)
    async def test_no_key_is_401_whatever_the_parameters(
        self, client: httpx.AsyncClient, method: str, url: str
    ) -> None:
        """Without a key, 401: a 400 would tell an unauthenticated client about the API."""
        r = await client.request(method, url)
        _assert_problem(r, {401})

    @pytest.mark.parametrize(("method", "url"), UNAUTHENTICATED_CASES[:6])
    async def test_a_sender_key_is_403_whatever_the_parameters(
        self, client: httpx.AsyncClient, method: str, url: str
    ) -> None:
        """A sender's key on an operator endpoint: 403 before the parameters are looked at."""
        r = await client.request(method, url, headers=auth("koppelpunt-vo"))
        _assert_problem(r, {403})
