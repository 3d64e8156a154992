"""Content checks that XSD 1.0 cannot express: check digits and the schooljaar.

The XSD guarantees the shape (9 digits, YYYY-YYYY); these functions check the arithmetic, so a
typo in a persoonsgebonden nummer rejects one record instead of reaching a gemeente.
"""

from __future__ import annotations

import re

_NINE_DIGITS = re.compile(r"[0-9]{9}")
_SCHOOLJAAR = re.compile(r"([0-9]{4})-([0-9]{4})")
# Weights of the first eight digits; the ninth digit's weight differs per number (see below).
_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def _weighted_sum(s: str) -> int:
    return sum(int(digit) * weight for digit, weight in zip(s, _WEIGHTS, strict=False))


def is_valid_bsn(s: str) -> bool:
    """The BSN elfproef: weights 9..2 and -1, sum divisible by 11, and not all zeros.

    Every weight is non-zero modulo the prime 11, so any single mistyped digit is caught.
    """
    if not _NINE_DIGITS.fullmatch(s) or s == "000000000":
        return False
    return (_weighted_sum(s) - int(s[8])) % 11 == 0


def is_valid_onderwijsnummer(s: str) -> bool:
    """DUO's variant of the elfproef: starts with 10, weights 9..2 and +1, sum % 11 == 5."""
    if not _NINE_DIGITS.fullmatch(s) or not s.startswith("10"):
        return False
    return (_weighted_sum(s) + int(s[8])) % 11 == 5


def check_schooljaar(s: str) -> bool:
    """`YYYY-YYYY` where the second year follows the first (2026-2027, not 2026-2028)."""
    match = _SCHOOLJAAR.fullmatch(s)
    return match is not None and int(match[2]) == int(match[1]) + 1
