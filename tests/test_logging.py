"""The log's last line of defence: what could be a BSN is masked in every logged value."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given

from koppelpunt.logging import configure_logging, mask_bsn
from tests.strategies import bsns
from tests.test_masking import around, bsn_windows


@contextlib.contextmanager
def json_logs() -> Iterator[None]:
    """structlog and stdlib logging as `koppelpunt serve` configures them, writing to the
    stderr of this moment (pytest's capture during a test's call); reset afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", json=True)
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


class TestMaskBsn:
    def test_a_bsn_inside_a_berichtid_is_not_logged(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Issue 21: `berichtId LOGMASK-2026999993653` reached the log unmasked."""
        with json_logs():
            log = structlog.get_logger("t")
            log.info("bericht_rejected", berichtId="LOGMASK-2026999993653")
            logging.getLogger("uvicorn.error").warning("from LOGMASK-2026999993653 via stdlib")
        err = capsys.readouterr().err
        assert "LOGMASK-2026" in err
        assert "999993653" not in err

    def test_numbers_and_nested_values(self) -> None:
        """Integers (exact or longer), dicts and lists are masked too; other numbers stay."""
        event = {
            "event": "x",
            "bsn": 999993653,
            "id": 2026999993653,
            "offset": 1000000000000,
            "nested": {"list": ["a 999993653 b", 7]},
        }
        masked = mask_bsn(None, "info", dict(event))
        assert masked["bsn"] == "*********"
        assert masked["id"] == "2026*********"
        assert masked["offset"] == 1000000000000
        assert masked["nested"] == {"list": ["a ********* b", 7]}

    @given(before=around, bsn=bsns, after=around)
    def test_no_elfproef_window_in_any_field(self, before: str, bsn: str, after: str) -> None:
        """For any value holding a valid BSN anywhere, no logged window passes the elfproef."""
        masked = mask_bsn(None, "info", {"event": before + bsn + after, "n": int(bsn)})
        assert bsn_windows(str(masked["event"])) == []
        assert bsn_windows(str(masked["n"])) == []
