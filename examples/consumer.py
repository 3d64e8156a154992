#!/usr/bin/env python3
"""Voorbeeld-consumer voor leveranciers: signaleringen van koppelpunt gemeenten lezen.

A small, complete vendor consumer (aiokafka + lxml, nothing from koppelpunt itself):

    pip install aiokafka lxml
    python examples/consumer.py verbinding.json --xsd signalering.xsd [--state state.sqlite]

`verbinding.json` is the file the operator gives you (`koppelpunt access grant NAME
--gemeente GM0363 --output verbinding.json`). What this program shows, in order:

1. connect with SASL/SCRAM-SHA-512 using that file, in a consumer group that starts with your
   user name and a dot (`NAME.`): the broker refuses any other group name;
2. validate each value against the signalering XSD (refused records are kept aside, not lost,
   and do not block the rest of the partition);
3. de-duplicate on the CloudEvents header `ce_id` (= signaleringId): koppelpunt delivers at
   least once, so the same signalering can (rarely) arrive twice;
4. store the result and the `ce_id` in ONE local database transaction, and only then commit
   the Kafka offset. A crash in between means the record is read again, and step 3 skips it.

Replace `handle()` with your own processing (your case system); keep the order of the steps.
It prints one line per record (what became of it, type, gemeente, id) and a summary when it
stops. Stop with Ctrl-C; `--once` reads up to the end offsets seen at start and then stops (for
a scheduled job, and for the tests). A refused login or missing access is one line on stderr
and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from lxml import etree

NS = {"s": "urn:vva:signalering:1"}
DEFAULT_XSD = Path(__file__).resolve().parents[1] / "schemas" / "signalering.xsd"


# --- the local state: handled signaleringen and refused records --------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS signalering (
    ce_id        TEXT PRIMARY KEY,      -- de-duplication key (= signaleringId)
    type         TEXT NOT NULL,
    gemeentecode TEXT NOT NULL,
    xml          TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    "offset"     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS geweigerd (  -- records that failed validation: ask the operator
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    "offset"     INTEGER NOT NULL,
    reden        TEXT NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
"""


def open_state(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    return db


# --- validation -------------------------------------------------------------------------------
def load_xsd(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


def safe_parser() -> etree.XMLParser:  # noqa: TID251 - stand-alone example
    # Never expand entities or fetch anything: the value is data from the network.
    return etree.XMLParser(  # noqa: TID251 - stand-alone example, no koppelpunt import
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )


@dataclass
class Counters:
    handled: int = 0
    duplicates: int = 0
    refused: int = 0


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return str(value.decode("utf-8"))
    return None


def handle(db: sqlite3.Connection, record: ConsumerRecord[bytes, bytes], doc: Any) -> None:
    """YOUR processing goes here. It runs inside the transaction that also marks the ce_id."""
    db.execute(
        'INSERT INTO signalering (ce_id, type, gemeentecode, xml, topic, partition, "offset")'
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            header(record, "ce_id"),
            doc.findtext("s:type", namespaces=NS),
            doc.findtext("s:gemeentecode", namespaces=NS),
            (record.value or b"").decode("utf-8"),
            record.topic,
            record.partition,
            record.offset,
        ),
    )


def process(
    db: sqlite3.Connection,
    xsd: etree.XMLSchema,
    record: ConsumerRecord[bytes, bytes],
    counters: Counters,
) -> str:
    """Validate, de-duplicate and handle one record; commits the local transaction.

    Returns one line for the operator: what became of the record.
    """
    ce_id = header(record, "ce_id")
    with db:  # one transaction: the handling and the de-duplication mark, or neither
        try:
            doc = etree.fromstring(record.value or b"", safe_parser())
            xsd.assertValid(doc)
            if ce_id is None or ce_id != doc.findtext("s:signaleringId", namespaces=NS):
                raise ValueError("header ce_id is missing or differs from signaleringId")
        except (etree.XMLSyntaxError, etree.DocumentInvalid, ValueError) as exc:
            db.execute(
                'INSERT OR IGNORE INTO geweigerd (topic, partition, "offset", reden)'
                " VALUES (?, ?, ?, ?)",
                (record.topic, record.partition, record.offset, str(exc)[:500]),
            )
            counters.refused += 1
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            return f"refused   {where}: {str(exc)[:200]}"
        if db.execute("SELECT 1 FROM signalering WHERE ce_id = ?", (ce_id,)).fetchone():
            counters.duplicates += 1  # seen before: already handled, only move the offset
            return f"duplicate {ce_id}"
        handle(db, record, doc)
        counters.handled += 1
        kind = doc.findtext("s:type", namespaces=NS)
        gemeente = doc.findtext("s:gemeentecode", namespaces=NS)
        return f"handled   {kind} {gemeente} {ce_id}"


# --- the Kafka side ---------------------------------------------------------------------------
def consumer_from(config: dict[str, Any], group_suffix: str) -> AIOKafkaConsumer:
    # Trust the broker's CA from the connection file (sslCaPem); the host name is checked.
    # Without sslCaPem: the system's trust store (a broker with a public certificate).
    ssl_context = None
    if config["securityProtocol"] in {"SSL", "SASL_SSL"}:
        ssl_context = ssl.create_default_context(cadata=config.get("sslCaPem"))
    return AIOKafkaConsumer(
        *config["topics"],
        bootstrap_servers=config["bootstrapServers"],
        security_protocol=config["securityProtocol"],  # SASL_SSL
        ssl_context=ssl_context,
        sasl_mechanism=config["saslMechanism"],  # SCRAM-SHA-512
        sasl_plain_username=config["username"],  # aiokafka uses these names for SCRAM too
        sasl_plain_password=config["password"],
        group_id=config["groupPrefix"] + group_suffix,  # must start with "NAME."
        enable_auto_commit=False,  # we commit ourselves, after handling
        auto_offset_reset="earliest",  # a new group starts at the oldest retained record
        isolation_level="read_committed",
    )


async def run(args: argparse.Namespace, config: dict[str, Any], counters: Counters) -> None:
    xsd = load_xsd(args.xsd)
    db = open_state(args.state)
    consumer = consumer_from(config, args.group)
    ends: dict[TopicPartition, int] | None = None
    try:
        await consumer.start()
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, records in batches.items():
                for record in records:
                    print(process(db, xsd, record, counters), flush=True)
                # Only now, with the results safely in the local database, move the offset.
                await consumer.commit({tp: records[-1].offset + 1})
            if args.once:
                assigned = consumer.assignment()
                if assigned and ends is None:
                    ends = await consumer.end_offsets(list(assigned))
                if ends is not None:
                    positions = {tp: await consumer.position(tp) for tp in ends}
                    if all(positions[tp] >= end for tp, end in ends.items()):
                        break
    finally:
        await consumer.stop()
        db.close()


class LastError(logging.Handler):
    """Keeps aiokafka's last error message (e.g. the broker's reason for refusing the login),
    so the program can end with one clear line instead of aiokafka's log and a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("config", help="verbinding.json from `koppelpunt access grant`")
    parser.add_argument("--xsd", type=Path, default=DEFAULT_XSD, help="signalering.xsd")
    parser.add_argument("--state", type=Path, default=Path("consumer-state.sqlite"))
    parser.add_argument("--group", default="leerplicht", help="group id after NAME. prefix")
    parser.add_argument("--once", action="store_true", help="stop at the end offsets")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    counters = Counters()
    status = 0
    last_error = LastError()
    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.addHandler(last_error)
    aiokafka_log.propagate = False
    try:
        asyncio.run(run(args, config, counters))
    except KeyboardInterrupt:
        status = 130
    except KafkaError as exc:
        # A refused login (wrong or revoked password), no access to a topic or group, or no
        # broker: one line, no traceback; what was handled so far is committed.
        reason = last_error.message or str(exc) or type(exc).__name__
        print(
            f"consumer: Kafka refused or unreachable as {config['username']}: {reason}",
            file=sys.stderr,
        )
        status = 1
    print(
        f"handled {counters.handled}, duplicates {counters.duplicates}, refused {counters.refused}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
