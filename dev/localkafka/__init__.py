"""The local Kafka broker of `make run`, the tests and the benchmarks (see broker.py).

    python -m dev.localkafka start|stop|status|env|watch [--dir var/kafka] ...

Run from the repository root (the Makefile does), so that `dev` is importable.
"""

from dev.localkafka.broker import (
    ADMIN_USER,
    SCRAM_MECHANISM,
    SERVICE_TOPIC_PREFIX,
    SERVICE_USER,
    BrokerError,
    LocalBroker,
    broker_usable,
    main,
)

__all__ = [
    "ADMIN_USER",
    "SCRAM_MECHANISM",
    "SERVICE_TOPIC_PREFIX",
    "SERVICE_USER",
    "BrokerError",
    "LocalBroker",
    "broker_usable",
    "main",
]
