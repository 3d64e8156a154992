"""structlog set-up: JSON lines, context through contextvars, and no BSN ever in a log line.

Code binds berichtId, gemeentecode and rule names, never a BSN. As a second line of defence the
last processor masks, in every value, every run of exactly nine digits (a BSN or an
onderwijsnummer) and every nine-digit window of a longer digit run that passes the elfproef
(`koppelpunt.masking.mask_log_text`), so a mistake in a log call cannot leak one, not even
glued to other digits (`berichtId LOGMASK-2026999993653`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from koppelpunt.masking import mask_json, mask_log_text


def _mask(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        # An int is masked like its decimal digits; it stays an int when nothing was masked.
        text = str(value)
        masked = mask_log_text(text)
        return value if masked == text else masked
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    return mask_json(value, mask_log_text)


def mask_bsn(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask what could be a BSN (mask_log_text) in every field."""
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
