"""The API's parameter patterns say exactly what the service takes (api/parameters.py)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from koppelpunt.api.parameters import BSN, GEMEENTECODE, MOMENT
from koppelpunt.app.moments import parse_moment
from koppelpunt.pipeline.gemeenten import normalise_code

MOMENT_RE = re.compile(MOMENT)


class TestMoment:
    @given(st.from_regex(MOMENT_RE, fullmatch=True))
    def test_every_string_the_pattern_allows_is_a_moment(self, text: str) -> None:
        """No string the document allows is refused by the parser after it."""
        parse_moment(text)

    @given(st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31)))
    @example(date(2000, 2, 29))
    @example(date(2400, 2, 29))
    @example(date(1904, 2, 29))
    def test_every_day_of_the_range_is_allowed(self, day: date) -> None:
        assert MOMENT_RE.fullmatch(day.isoformat())

    @given(
        st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(2999, 12, 31, 23, 59, 59),
            timezones=st.none()
            | st.builds(
                timezone,
                st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
                    lambda m: timedelta(minutes=m)
                ),
            ),
        )
    )
    def test_isoformat_of_any_moment_in_range_is_allowed(self, moment: datetime) -> None:
        """What a client's library writes (to the minute offset) is taken and means the same."""
        text = moment.isoformat()
        assert MOMENT_RE.fullmatch(text), text
        parsed = parse_moment(text)
        assert parsed.replace(tzinfo=None) == moment.replace(tzinfo=None)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "1899-12-31",
            "3000-01-01",
            "0001-01-01",
            "1900-02-29",  # 1900 is no leap year
            "2100-02-29",
            "2027-02-29",
            "2027-04-31",
            "2027-13-01",
            "2027-03-01T24:00",
            "2027-03-01 09:00",  # Python reads it; the API's grammar has the T only
            "20270301",
            "2027-03-01T09:00+24:00",
            "2027-03-01\n",
            " 2027-03-01",
        ],
    )
    def test_not_allowed(self, text: str) -> None:
        assert not MOMENT_RE.fullmatch(text)
        # $ in Python also matches before a final newline; the API's validator (pydantic's
        # Rust regex) does not, and search must be refused as well as fullmatch.
        if not text.endswith("\n"):
            assert not MOMENT_RE.search(text)


class TestGemeentecode:
    @given(st.from_regex(GEMEENTECODE, fullmatch=True))
    def test_every_allowed_code_is_a_code(self, text: str) -> None:
        assert normalise_code(text) is not None

    @pytest.mark.parametrize("text", ["0363", "GM363", "GM03630", "GM٠٣٦٣", " GM0363", "GX0363"])
    def test_not_allowed(self, text: str) -> None:
        assert not re.fullmatch(GEMEENTECODE, text)


def test_bsn_is_nine_ascii_digits() -> None:
    assert re.fullmatch(BSN, "999990007")
    for text in ["99999000", "9999900070", "٩٩٩٩٩٠٠٠٧", "99999000x"]:
        assert not re.fullmatch(BSN, text)
