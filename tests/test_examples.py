"""The examples in schemas/examples/ are valid and their signaleringen files are current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "schemas" / "examples"


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("examples_generate", EXAMPLES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestExamples:
    def test_signaleringen_files_are_current(self) -> None:
        """Receiving the example messages through the service's receive path gives exactly the
        committed files: the receipts and every signalering, derived ones included."""
        generated = _generator().generate()  # type: ignore[attr-defined]
        committed = {p.name: p.read_bytes() for p in (EXAMPLES / "signaleringen").iterdir()}
        assert generated == committed

    def test_example_signaleringen_are_xsd_valid(self) -> None:
        """Every example signalering validates against schemas/signalering.xsd."""
        xsd = etree.XMLSchema(etree.parse(str(ROOT / "schemas" / "signalering.xsd")))
        files = sorted((EXAMPLES / "signaleringen").glob("*.xml"))
        assert len(files) == 7
        for f in files:
            xsd.assertValid(etree.parse(str(f)))
