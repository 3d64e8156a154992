"""Check digits and the schooljaar rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koppelpunt.pipeline.checks import check_schooljaar, is_valid_bsn, is_valid_onderwijsnummer
from tests.strategies import bsns, onderwijsnummers


class TestIsValidBsn:
    @pytest.mark.parametrize("bsn", ["999993653", "999990019", "999990032", "111222333"])
    def test_accepts_known_valid_numbers(self, bsn: str) -> None:
        """Published test BSNs pass the elfproef."""
        assert is_valid_bsn(bsn)

    @pytest.mark.parametrize(
        "bsn", ["999993654", "123456789", "000000000", "99999365", "9999936530", "99999365a", ""]
    )
    def test_rejects_wrong_check_digit_shape_and_zeros(self, bsn: str) -> None:
        """A wrong check digit, a wrong length, a non-digit or all zeros is refused."""
        assert not is_valid_bsn(bsn)

    @given(bsn=bsns, position=st.integers(0, 8), delta=st.integers(1, 9))
    def test_detects_every_single_digit_error(self, bsn: str, position: int, delta: int) -> None:
        """Changing any one digit of a valid BSN never yields another valid BSN."""
        digit = (int(bsn[position]) + delta) % 10
        changed = bsn[:position] + str(digit) + bsn[position + 1 :]
        assert not is_valid_bsn(changed)

    @given(bsn=bsns)
    def test_generated_bsns_are_valid(self, bsn: str) -> None:
        """The shared strategy only produces elfproef-valid BSNs."""
        assert is_valid_bsn(bsn)


class TestIsValidOnderwijsnummer:
    @pytest.mark.parametrize("nummer", ["101234508", "100000007", "101234567"])
    def test_accepts_valid_numbers(self, nummer: str) -> None:
        """Numbers starting with 10 whose weighted sum (last digit +1) is 5 modulo 11 pass."""
        assert is_valid_onderwijsnummer(nummer)

    @pytest.mark.parametrize("nummer", ["101234509", "999993653", "201234508", "10123450", ""])
    def test_rejects_wrong_check_prefix_or_length(self, nummer: str) -> None:
        """A wrong check digit, a prefix other than 10, or a wrong length is refused."""
        assert not is_valid_onderwijsnummer(nummer)

    @given(nummer=onderwijsnummers, position=st.integers(2, 8), delta=st.integers(1, 9))
    def test_detects_every_single_digit_error(self, nummer: str, position: int, delta: int) -> None:
        """Changing any one digit after the 10 prefix never yields another valid number."""
        digit = (int(nummer[position]) + delta) % 10
        changed = nummer[:position] + str(digit) + nummer[position + 1 :]
        assert not is_valid_onderwijsnummer(changed)


class TestCheckSchooljaar:
    @pytest.mark.parametrize("value", ["2026-2027", "1999-2000"])
    def test_accepts_consecutive_years(self, value: str) -> None:
        """The second year is the first plus one."""
        assert check_schooljaar(value)

    @pytest.mark.parametrize("value", ["2026-2028", "2026-2026", "2027-2026", "2026/2027", "26-27"])
    def test_rejects_other_pairs_and_shapes(self, value: str) -> None:
        """Any other pair of years, or another shape, is refused."""
        assert not check_schooljaar(value)
