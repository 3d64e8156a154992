"""Masking of BSNs in text that leaves the service: two policies, one module.

A BSN must never reach an error text or a log line. The code that writes those texts names
elements, lines and rules, never values; these functions are the safety net behind it.

- `mask_error_text` (error texts: problem+json bodies, the stored reasons of refused messages,
  the /beheer page): every run of nine or more digits becomes asterisks, whatever its check
  digit. An error text has no business carrying a long number, so this costs nothing, and it
  also covers what the elfproef does not: an onderwijsnummer, a BSN with one digit mistyped,
  a BSN glued to other digits.
- `mask_log_text` (log lines): every run of exactly nine digits, and inside a longer run every
  nine-digit window that passes the BSN elfproef or the onderwijsnummer check, becomes
  asterisks. Logs carry long numbers that matter for diagnosis (offsets, byte counts,
  durations); those keep their digits unless a window in them could be a person's number.
  A run longer than LOG_MAX_CHECKED_RUN digits is masked whole: checking it window by window
  would cost time proportional to a length an attacker chooses.

Both replace digits one for one, so a masked text keeps its length and shape. No window of nine
unmasked digits in a log policy's output passes the elfproef: unmasked digits that are adjacent
in the output were adjacent in the input, and every passing window there was masked.

Pure functions, no imports from the rest of koppelpunt except the check digits, so logging and
every layer can use them without an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from koppelpunt.pipeline.checks import is_valid_bsn, is_valid_onderwijsnummer

MASK_CHAR = "*"
MASK = MASK_CHAR * 9
# Longer digit runs in a log line are masked whole (see the module docstring).
LOG_MAX_CHECKED_RUN = 256

# \d: any Unicode decimal digit; error texts err towards masking.
_ERROR_RUN = re.compile(r"\d{9,}")
_LOG_RUN = re.compile(r"[0-9]{9,}")


def mask_error_text(text: str) -> str:
    """Every run of nine or more digits replaced by as many asterisks (the error-text policy)."""
    return _ERROR_RUN.sub(_stars, text)


def mask_log_text(text: str) -> str:
    """Exact nine-digit runs, and check-digit-valid nine-digit windows of longer runs, masked."""
    return _LOG_RUN.sub(_mask_log_run, text)


def could_be_person_number(window: str) -> bool:
    """A nine-digit string that passes the BSN elfproef or the onderwijsnummer check."""
    return is_valid_bsn(window) or is_valid_onderwijsnummer(window)


def mask_json(value: Any, mask: Callable[[str], str] = mask_error_text) -> Any:
    """Every string in a JSON-like value (dicts, lists, tuples; keys too) masked with `mask`.

    Other values are returned as they are; integers included (a count or a line number is no
    BSN in an error text; logging handles integers itself).
    """
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {
            (mask(k) if isinstance(k, str) else k): mask_json(v, mask) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [mask_json(v, mask) for v in value]
    return value


def _stars(match: re.Match[str]) -> str:
    return MASK_CHAR * len(match.group())


def _mask_log_run(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) == 9 or len(run) > LOG_MAX_CHECKED_RUN:
        return MASK_CHAR * len(run)
    masked = bytearray(len(run))  # 1 where a digit belongs to a passing window
    for start in range(len(run) - 8):
        if could_be_person_number(run[start : start + 9]):
            masked[start : start + 9] = b"\x01" * 9
    if not any(masked):
        return run
    return "".join(MASK_CHAR if m else c for c, m in zip(run, masked, strict=True))
