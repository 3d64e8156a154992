"""Topic administration: one topic per gemeente, created deliberately.

The broker runs with `auto.create.topics.enable=false`, so a typo in a topic name fails loudly
instead of silently creating a topic nobody reads. Topics are therefore created here, by
`koppelpunt topics ensure` and lazily by the publisher before its first send to a topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError, ServiceUnavailableError
from koppelpunt.kafka.tls import kafka_ssl_context

_GEMEENTECODE = re.compile(r"GM[0-9]{4}")  # ASCII digits: \d also takes "٣"
# Kafka error codes that CreateTopics may answer per topic.
_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36
# Keep CreateTopics requests small: the controller handles each as one metadata batch.
_CREATE_BATCH = 100


def topic_for(prefix: str, gemeentecode: str) -> str:
    """`vva.signalering` + `GM0363` -> `vva.signalering.gm0363` (lowercase, validated).

    Raises ValueError for anything but a CBS gemeentecode: a wrong code here is a bug
    upstream, and publishing it would create a topic no gemeente reads.
    """
    code = gemeentecode.strip().upper()
    if not _GEMEENTECODE.fullmatch(code):
        raise ValueError(f"not a gemeentecode (GM + 4 digits): {gemeentecode!r}")
    return f"{prefix.rstrip('.')}.{code.lower()}".lower()


# A gemeente's replay topic is its own topic plus this suffix: a replay may go there (or to
# the gemeente topic) only, and `koppelpunt access grant` lets the gemeente's vendors read it.
REPLAY_TOPIC_SUFFIX = ".replay"


def replay_topic_for(prefix: str, gemeentecode: str) -> str:
    """`vva.signalering` + `GM0363` -> `vva.signalering.gm0363.replay` (validated as topic_for)."""
    return topic_for(prefix, gemeentecode) + REPLAY_TOPIC_SUFFIX


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Bootstrap and security arguments shared by every aiokafka client we create."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in {"SSL", "SASL_SSL"}:
        kwargs["ssl_context"] = kafka_ssl_context(settings)
    if settings.kafka_sasl_mechanism:
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        # aiokafka uses the "plain" field names for SCRAM too.
        kwargs["sasl_plain_username"] = settings.kafka_username
        kwargs["sasl_plain_password"] = settings.kafka_password
    return kwargs


async def login_problem(settings: Settings, timeout: float = 3.0) -> str | None:  # noqa: ASYNC109
    """Why the broker refused our login, or None (it accepted it, or is simply unreachable).

    aiokafka reports a refused SASL login while bootstrapping as a plain "Unable to
    bootstrap" KafkaConnectionError (the cause only goes to its log). One direct connection
    to the first bootstrap address brings the broker's own error back, so operators (relay
    last_error, logs) see "authentication refused" rather than "unreachable".
    """
    if not settings.kafka_sasl_mechanism:
        return None
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    kwargs = client_kwargs(settings)
    try:
        async with asyncio.timeout(timeout):
            conn = await create_conn(
                host.strip("[]") or "localhost",
                int(port),
                request_timeout_ms=int(timeout * 1000),
                ssl_context=kwargs.get("ssl_context"),
                security_protocol=kwargs["security_protocol"],
                sasl_mechanism=kwargs["sasl_mechanism"],
                sasl_plain_username=kwargs["sasl_plain_username"],
                sasl_plain_password=kwargs["sasl_plain_password"],
            )
    except (KafkaConnectionError, OSError, TimeoutError, ValueError):
        return None  # not a refusal: the broker is not there (yet)
    except KafkaError as exc:  # SaslAuthenticationFailed, UnsupportedSaslMechanism, ...
        return (
            f"Kafka at {settings.kafka_bootstrap} refused the login of "
            f"{settings.kafka_username!r}: {type(exc).__name__}: {exc}"
        )
    conn.close()
    return None


async def describe_unavailable(settings: Settings, exc: BaseException) -> str:
    """A message for a failed connect: the broker's refusal when it refused our login, or a
    protocol mismatch when it accepts connections but not our plaintext client."""
    if isinstance(exc, KafkaConnectionError | TimeoutError):
        refusal = await login_problem(settings)
        if refusal is not None:
            return refusal
        if settings.kafka_security_protocol == "PLAINTEXT" and await _accepts_tcp(settings):
            return (
                f"Kafka at {settings.kafka_bootstrap} accepts connections but not this "
                "plaintext client: the listener expects SASL or TLS. Set "
                "KOPPELPUNT_KAFKA_SECURITY_PROTOCOL (SASL_SSL or SASL_PLAINTEXT), "
                "KOPPELPUNT_KAFKA_SASL_MECHANISM and the credentials; for the local broker: "
                'eval "$(make -s kafka-env)"'
            )
    return f"Kafka at {settings.kafka_bootstrap} is unreachable: {type(exc).__name__}: {exc}"


async def _accepts_tcp(settings: Settings, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
    """Whether the first bootstrap address accepts a TCP connection at all."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host.strip("[]") or "localhost", int(port))
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _admin(settings: Settings, timeout: float) -> AIOKafkaAdminClient:  # noqa: ASYNC109
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
    except (KafkaError, OSError, TimeoutError) as exc:
        await admin.close()
        raise ServiceUnavailableError(await describe_unavailable(settings, exc)) from exc
    return admin


async def ensure_topics(
    settings: Settings,
    topics: Sequence[str],
    partitions: int | None = None,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - also the client's request timeout
) -> list[str]:
    """Create the topics that do not exist yet; return the names this call created.

    Idempotent and safe against a concurrent creator (TOPIC_ALREADY_EXISTS counts as done).
    Any other per-topic error (invalid name, not authorised, policy) is a ConfigurationError.
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return []
    num_partitions = partitions if partitions is not None else settings.topic_partitions
    admin = await _admin(settings, timeout)
    created: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            for i in range(0, len(missing), _CREATE_BATCH):
                batch = missing[i : i + _CREATE_BATCH]
                response = await admin.create_topics(
                    [NewTopic(t, num_partitions, settings.topic_replication_factor) for t in batch]
                )
                created += _check_created(response.topic_errors)
            await _wait_visible(admin, created)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"creating Kafka topics failed: {exc!r}") from exc
    finally:
        await admin.close()
    return created


async def _wait_visible(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> None:
    """Wait until the broker's metadata lists the new topics.

    CreateTopics returns once the controller committed them; the broker learns of them a
    moment later. Callers (a producer, `list_topics`) should find them at once.
    """
    while topics:
        known = set(await admin.list_topics())
        if all(t in known for t in topics):
            return
        await asyncio.sleep(0.05)


def _check_created(topic_errors: Sequence[tuple[str, int, str | None]]) -> list[str]:
    created: list[str] = []
    problems: list[str] = []
    for topic, code, message in topic_errors:
        if code == _NO_ERROR:
            created.append(topic)
        elif code != _TOPIC_ALREADY_EXISTS:
            problems.append(f"{topic}: error {code} {message or ''}".strip())
    if problems:
        raise ConfigurationError("Kafka refused to create topics: " + "; ".join(problems))
    return created


async def list_topics(
    settings: Settings,
    prefix: str,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - also the client's request timeout
) -> list[str]:
    """Sorted topic names under `prefix` (`vva.signalering` matches `vva.signalering.*`)."""
    head = prefix.rstrip(".") + "."
    admin = await _admin(settings, timeout)
    try:
        async with asyncio.timeout(timeout):
            names: list[str] = await admin.list_topics()
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"listing Kafka topics failed: {exc!r}") from exc
    finally:
        await admin.close()
    return sorted(n for n in names if n.startswith(head))
