"""Prometheus metrics, in a registry per application instance (tests run several side by side)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from koppelpunt.model import Signalering


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.berichten = Counter(
            "koppelpunt_berichten_total",
            "Messages received, by soort and result (accepted, duplicate, invalid, conflict).",
            ["soort", "result"],
            registry=self.registry,
        )
        self.records = Counter(
            "koppelpunt_records_total",
            "Records decided, by soort and outcome (doorgestuurd, gefilterd:<reden>, afgewezen).",
            ["soort", "outcome"],
            registry=self.registry,
        )
        self.signaleringen_created = Counter(
            "koppelpunt_signaleringen_created_total",
            "Signaleringen stored in the outbox, by type (on receipt, peildatum runs, parked "
            "retries).",
            ["type"],
            registry=self.registry,
        )
        self.signaleringen_published = Counter(
            "koppelpunt_signaleringen_published_total",
            "Signaleringen acknowledged by Kafka.",
            registry=self.registry,
        )
        self.publish_failures = Counter(
            "koppelpunt_publish_failures_total",
            "Publication attempts that failed (retried with backoff).",
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "koppelpunt_outbox_backlog",
            "Signaleringen stored but not yet acknowledged by Kafka (as of the last relay pass).",
            registry=self.registry,
        )
        self.receive_seconds = Histogram(
            "koppelpunt_receive_seconds",
            "Time from request body read to receipt, by soort.",
            ["soort"],
            registry=self.registry,
        )
        self.group_commit_size = Histogram(
            "koppelpunt_group_commit_messages",
            "Messages stored per group-commit transaction (1: no company; see docs/scaling.md).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )

        # Authentication: `kind` is bearer (an API key, also on /beheer) or beheer_login;
        # `limit` is address or key. Fixed values only: never a key, name or address.
        self.auth_failures = Counter(
            "koppelpunt_auth_failures_total",
            "Failed authentications, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.auth_throttled = Counter(
            "koppelpunt_auth_throttled_total",
            "Authentication attempts refused with 429 (too many failures), by kind and limit.",
            ["kind", "limit"],
            registry=self.registry,
        )

    def count_created(
        self, signaleringen: Iterable[Signalering], inserted: Collection[str]
    ) -> None:
        """Count, by type, the signaleringen whose id the outbox actually inserted."""
        ids = set(inserted)
        by_type: dict[str, int] = {}
        for s in signaleringen:
            if s.signalering_id in ids:
                by_type[s.type.value] = by_type.get(s.type.value, 0) + 1
                ids.discard(s.signalering_id)  # the same id twice in the input counts once
        for t, n in by_type.items():
            self.signaleringen_created.labels(t).inc(n)
