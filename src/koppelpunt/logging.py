"""structlog set-up: JSON lines, context through contextvars, and no BSN ever in a log line.

Code binds berichtId, gemeentecode and rule names, never a BSN. As a second line of defence the
last processor masks every run of nine digits (a BSN or an onderwijsnummer) in every value, so
a mistake in a log call cannot leak one.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_NINE_DIGITS = re.compile(r"(?<!\d)\d{9}(?!\d)")
MASK = "*********"


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _NINE_DIGITS.sub(MASK, value)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 100_000_000 <= value <= 999_999_999
    ):
        return MASK
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return value


def mask_bsn(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace nine-digit numbers by asterisks in every field."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask(value)
    return event_dict


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to the current sys.stderr."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Configure structlog (and route stdlib logging, e.g. uvicorn and aiokafka, through it)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_bsn,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Whatever sys.stderr is when a line is written (not the one at configure time): a
        # test runner that swaps and closes it must not leave a dead stream behind.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = _CurrentStderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared[:-1], structlog.stdlib.add_logger_name, mask_bsn],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
