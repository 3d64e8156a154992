"""The two masking policies: error texts (every run of nine or more digits) and log lines
(exact nine-digit runs, and elfproef-valid windows inside longer runs)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from koppelpunt.masking import (
    LOG_MAX_CHECKED_RUN,
    MASK,
    could_be_person_number,
    mask_error_text,
    mask_json,
    mask_log_text,
)
from koppelpunt.pipeline.checks import is_valid_bsn
from tests.messages import BSN, ONDERWIJSNUMMER
from tests.strategies import bsns

# Anything around a BSN: letters, digits, punctuation, other scripts' digits.
around = st.text(
    alphabet=st.sampled_from("0123456789abcXYZ -_:/.*٣") | st.characters(codec="utf-8"),
    max_size=40,
)


def bsn_windows(text: str) -> list[str]:
    """Every nine-digit window of every ASCII digit run that passes the elfproef."""
    windows = []
    for run in re.findall(r"[0-9]{9,}", text):
        windows += [run[i : i + 9] for i in range(len(run) - 8) if is_valid_bsn(run[i : i + 9])]
    return windows


class TestLogPolicy:
    def test_a_bsn_glued_to_a_longer_number_is_masked(self) -> None:
        """The line of issue 21: `berichtId LOGMASK-2026999993653` was logged unmasked."""
        masked = mask_log_text("berichtId LOGMASK-2026999993653")
        assert "999993653" not in masked
        assert masked.startswith("berichtId LOGMASK-") and len(masked) == 31

    def test_a_long_number_without_a_person_number_keeps_its_digits(self) -> None:
        """Offsets and byte counts stay readable unless a window could be a BSN."""
        number = "1000000000000"  # no nine-digit window of it passes a check
        assert not any(could_be_person_number(number[i : i + 9]) for i in range(5))
        assert mask_log_text(f"offset {number}") == f"offset {number}"

    def test_every_exact_nine_digit_run_is_masked(self) -> None:
        """A BSN that fails the elfproef, or an onderwijsnummer, standing alone: masked."""
        assert mask_log_text("x 123456789 y") == f"x {MASK} y"
        assert mask_log_text(ONDERWIJSNUMMER) == MASK

    def test_a_run_longer_than_the_check_limit_is_masked_whole(self) -> None:
        run = "1" * (LOG_MAX_CHECKED_RUN + 1)
        assert mask_log_text(run) == "*" * len(run)

    @given(before=around, bsn=bsns, after=around)
    def test_no_elfproef_window_survives(self, before: str, bsn: str, after: str) -> None:
        """For any text with a valid BSN anywhere in it (also glued to digits or letters),
        the masked text has no nine-digit window that passes the elfproef, and its length."""
        text = before + bsn + after
        masked = mask_log_text(text)
        assert bsn_windows(masked) == []
        assert len(masked) == len(text)

    @given(text=around)
    def test_only_digits_change(self, text: str) -> None:
        """Masking replaces digits one for one and leaves everything else as it was."""
        masked = mask_log_text(text)
        assert len(masked) == len(text)
        assert all(
            m == c or (c in "0123456789" and m == "*") for c, m in zip(text, masked, strict=True)
        )


class TestErrorTextPolicy:
    @given(before=around, digits=st.text(alphabet="0123456789", min_size=9), after=around)
    def test_no_run_of_nine_digits_survives(self, before: str, digits: str, after: str) -> None:
        """Any run of nine or more digits is masked, whatever its check digit."""
        masked = mask_error_text(before + digits + after)
        assert not re.search(r"\d{9}", masked)

    def test_short_numbers_stay(self) -> None:
        """Line numbers, lengths and counts in a reason keep their digits."""
        text = "regel 12345678: langer dan 64 tekens"
        assert mask_error_text(text) == text

    def test_json_is_masked_everywhere_but_its_numbers(self) -> None:
        body = {"detail": f"bsn {BSN[0]}", "fouten": [{"reden": BSN[1], "regel": 123456789}]}
        masked = mask_json(body)
        assert masked == {"detail": f"bsn {MASK}", "fouten": [{"reden": MASK, "regel": 123456789}]}
