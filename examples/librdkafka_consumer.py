#!/usr/bin/env python3
"""Signaleringen lezen met confluent-kafka (librdkafka) en het `--format librdkafka`-bestand.

    pip install confluent-kafka
    python examples/librdkafka_consumer.py verbinding.properties --group leerplicht

`verbinding.properties` is what `koppelpunt access grant NAME --gemeente GM0363 --format
librdkafka --output verbinding.properties` writes; the same file works for kcat (-F) when kcat
is built with librdkafka 2.6.1 or newer. This shows the connection only: it prints one line
per record (partition, offset, ce_type, ce_id) and commits after each. For validation and
de-duplication see examples/consumer.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from confluent_kafka import Consumer, KafkaException


def read_config(path: Path) -> dict[str, str]:
    """librdkafka properties: `key=value` lines; `#` starts a comment."""
    config: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            config[key.strip()] = value.strip()
    return config


def comments(path: Path, label: str) -> str:
    """A value from the file's comment header, e.g. the topics or the group prefix."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"# {label}:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"{path}: no '# {label}:' line")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("config", type=Path, help="verbinding.properties (--format librdkafka)")
    parser.add_argument("--group", default="leerplicht", help="group id after the NAME. prefix")
    parser.add_argument("--max", type=int, default=0, help="stop after this many records")
    parser.add_argument("--idle", type=float, default=0, help="stop after this many idle seconds")
    args = parser.parse_args(argv)
    config = read_config(args.config)
    topics = [t.strip() for t in comments(args.config, "topics").split(",")]
    prefix = comments(args.config, "consumer group ids must start with")
    consumer = Consumer(
        {
            **config,
            "group.id": prefix + args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    seen, idle = 0, 0.0
    try:
        while not args.max or seen < args.max:
            record = consumer.poll(1.0)
            if record is None:
                idle += 1
                if args.idle and idle >= args.idle:
                    break
                continue
            if record.error():
                raise KafkaException(record.error())
            idle = 0
            headers = {k: v.decode() for k, v in record.headers() or []}
            print(
                f"{record.topic()}[{record.partition()}]@{record.offset()} "
                f"{headers.get('ce_type')} {headers.get('ce_id')}",
                flush=True,
            )
            consumer.commit(record, asynchronous=False)
            seen += 1
    except KafkaException as exc:
        print(f"consumer: {exc.args[0].str() if exc.args else exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
