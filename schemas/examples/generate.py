"""Regenerate schemas/examples/signaleringen/ from the example messages (pure pipeline, no I/O
beyond these files): `.venv/bin/python schemas/examples/generate.py`. The timestamps are fixed
so the output is stable; tests/test_examples.py checks the files are current."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

from koppelpunt.lookup.register import woongemeente_on
from koppelpunt.model import Parsed, Soort
from koppelpunt.pipeline import run
from koppelpunt.pipeline.gemeenten import GemeenteTable
from koppelpunt.pipeline.parse import SchemaRegistry, parse_message
from koppelpunt.pipeline.render import render_signalering
from koppelpunt.pipeline.rules import load_rules

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NOW = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)


def generate() -> dict[str, bytes]:
    schemas = SchemaRegistry.load(ROOT / "schemas")
    rules = load_rules(ROOT / "routing_rules")
    gemeenten = GemeenteTable.load(ROOT / "data" / "rvig-tabel33-gemeenten.csv")
    with (HERE / "woonregister.csv").open(encoding="utf-8") as fh:
        register = {
            row["bsn"]: row["gemeentecode"].removeprefix("GM") for row in csv.DictReader(fh)
        }
    out: dict[str, bytes] = {}
    for name, soort in (("prognoses", Soort.PROGNOSE), ("aanmeldstatussen", Soort.AANMELDSTATUS)):
        parsed = parse_message((HERE / f"{name}.xml").read_bytes(), soort, schemas)
        assert isinstance(parsed, Parsed), parsed
        keys = run.lookups_needed(parsed, rules)
        found = {
            (bsn, day): woongemeente_on([(datetime.min.date(), register[bsn])], day)
            if bsn in register
            else None
            for bsn, day in keys
        }
        verwerking = run.decide(parsed, rules, gemeenten, found, NOW)
        receipt = run.receipt(verwerking, len(verwerking.signaleringen))
        out[f"{name}.receipt.json"] = (json.dumps(receipt, indent=2) + "\n").encode()
        for n, s in enumerate(verwerking.signaleringen, start=1):
            out[f"{name}.{n}.{s.type.value.lower()}.{s.gemeentecode.lower()}.xml"] = (
                render_signalering(s)
            )
    return out


if __name__ == "__main__":
    target = HERE / "signaleringen"
    target.mkdir(exist_ok=True)
    for old in target.iterdir():
        old.unlink()
    for name, content in generate().items():
        (target / name).write_bytes(content)
        print(name)
