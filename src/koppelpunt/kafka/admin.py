"""Topic administration and the clients' connection settings.

The broker runs with `auto.create.topics.enable=false`, so a typo in a topic name fails loudly
instead of silently creating a topic nobody reads. Topics are therefore created here, by
`koppelpunt topics ensure` and lazily by the publisher before its first send to a topic, with
the configured replication factor and a topic-level `min.insync.replicas`.

Two clients connect from the same settings: aiokafka (`client_kwargs`) publishes and creates
topics in the service; confluent-kafka's AdminClient (`confluent_config`, `AdminSession`) runs
the operator's admin work (ACLs, SCRAM users, consumer-group offsets), which aiokafka has no
API for. Both take `kafka_bootstrap` as a comma-separated list and try the next address when
one is down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError, ServiceUnavailableError
from koppelpunt.kafka.tls import kafka_ssl_context
from koppelpunt.pipeline.envelope import topic_for as topic_for  # one rule, re-exported

T = TypeVar("T")

# Kafka error codes that CreateTopics may answer per topic.
_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36
# Keep CreateTopics requests small: the controller handles each as one metadata batch.
_CREATE_BATCH = 100


# A gemeente's replay topic is its own topic plus this suffix: a replay may go there (or to
# the gemeente topic) only, and `koppelpunt access grant` lets the gemeente's vendors read it.
REPLAY_TOPIC_SUFFIX = ".replay"


def replay_topic_for(prefix: str, gemeentecode: str) -> str:
    """`vva.signalering` + `GM0363` -> `vva.signalering.gm0363.replay` (validated as topic_for)."""
    return topic_for(prefix, gemeentecode) + REPLAY_TOPIC_SUFFIX


def bootstrap_servers(settings: Settings) -> list[str]:
    """`kafka_bootstrap` as a list of host:port (comma-separated, blanks ignored)."""
    return [a.strip() for a in settings.kafka_bootstrap.split(",") if a.strip()]


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Bootstrap and security arguments shared by every aiokafka client we create."""
    kwargs: dict[str, Any] = {
        # A comma-separated list: aiokafka tries each address until one answers.
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


def confluent_config(settings: Settings) -> dict[str, str | int | float | bool]:
    """The librdkafka configuration of the same connection as `client_kwargs` (bootstrap
    list, security protocol, SASL user and TLS files), for confluent-kafka's AdminClient.

    Pass `admin_settings(settings)` (kafka/access.py) for the admin principal.
    """
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": ",".join(bootstrap_servers(settings)),
        "security.protocol": settings.kafka_security_protocol,
        "client.id": "koppelpunt-beheer",
    }
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_username or ""
        config["sasl.password"] = settings.kafka_password or ""
    for key, value in (
        ("ssl.ca.location", settings.kafka_ssl_cafile),
        ("ssl.certificate.location", settings.kafka_ssl_certfile),
        ("ssl.key.location", settings.kafka_ssl_keyfile),
    ):
        if value:
            config[key] = str(value)
    return config


# librdkafka's own log lines (a refused connection to one of several bootstrap addresses, a
# login refused) go to Python logging instead of straight to stderr.
_LIBRDKAFKA_LOG = logging.getLogger("koppelpunt.kafka.librdkafka")


class AdminSession:
    """confluent-kafka's AdminClient with our settings, timeouts and errors.

    The AdminClient answers with concurrent futures that block: `call` runs the request and
    waits for its result in a worker thread, so the event loop keeps running, and turns
    librdkafka's errors into ServiceUnavailableError (unreachable, timed out) or lets the
    caller map the broker's own error codes (`KafkaException.args[0].code()`).
    """

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout
        try:
            self.client = AdminClient(
                {**confluent_config(settings), "socket.timeout.ms": int(timeout * 1000)},
                logger=_LIBRDKAFKA_LOG,
            )
        except (KafkaException, ValueError, TypeError) as exc:
            # e.g. an unknown security protocol or SASL mechanism, an unreadable TLS file
            raise ConfigurationError(f"the Kafka client settings are not usable: {exc}") from exc

    async def call(self, request: Callable[[], T], what: str) -> T:
        """Run `request` (which waits on the client's futures) in a thread; errors that are
        no answer from the broker become ServiceUnavailableError naming `what`."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return await asyncio.to_thread(request)
            except KafkaException as exc:
                error = kafka_error(exc)
                if error is not None and _retriable(error) and time.monotonic() < deadline:
                    # e.g. the group coordinator not available yet: the first group on a
                    # fresh cluster creates __consumer_offsets.
                    await asyncio.sleep(0.25)
                    continue
                if error is not None and no_answer(error):
                    raise ServiceUnavailableError(
                        await self.unavailable_message(what, error)
                    ) from exc
                raise
            except concurrent.futures.TimeoutError as exc:
                raise ServiceUnavailableError(
                    f"{what}: no answer from Kafka at {self.settings.kafka_bootstrap} within "
                    f"{self.timeout:.0f} s"
                ) from exc
            finally:
                self.client.poll(0)  # hand librdkafka's queued log lines to _LIBRDKAFKA_LOG

    async def unavailable_message(self, what: str, error: ConfluentError) -> str:
        refusal = await login_problem(self.settings)
        if refusal is not None:
            return f"{what}: {refusal}"
        return f"{what}: Kafka at {self.settings.kafka_bootstrap} is unreachable: {error.str()}"

    def wait(self, future: concurrent.futures.Future[Any]) -> Any:
        """The result of one of the client's futures (blocking: call it inside `call`)."""
        return future.result(timeout=self.timeout + 5)


# The broker's answers that mean "no usable connection"; librdkafka's own local errors
# (transport, timeouts, every broker down, authentication) have negative codes.
_NO_ANSWER = frozenset(
    {ConfluentError.REQUEST_TIMED_OUT, ConfluentError.SASL_AUTHENTICATION_FAILED}
)


# Answers that pass by themselves, which librdkafka does not always mark retriable.
_PASSING = frozenset(
    {
        ConfluentError.COORDINATOR_LOAD_IN_PROGRESS,
        ConfluentError.COORDINATOR_NOT_AVAILABLE,
        ConfluentError.NOT_COORDINATOR,
    }
)


def _retriable(error: ConfluentError) -> bool:
    return bool(error.retriable()) or error.code() in _PASSING


def no_answer(error: ConfluentError) -> bool:
    """The error is librdkafka's (no broker answered) rather than a broker's refusal."""
    return error.code() < 0 or error.code() in _NO_ANSWER


def kafka_error(exc: KafkaException) -> ConfluentError | None:
    """The KafkaError inside a confluent KafkaException (None when there is none)."""
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, ConfluentError) else None


async def login_problem(settings: Settings, timeout: float = 3.0) -> str | None:  # noqa: ASYNC109
    """Why the broker refused our login, or None (it accepted it, or is simply unreachable).

    aiokafka reports a refused SASL login while bootstrapping as a plain "Unable to
    bootstrap" KafkaConnectionError (the cause only goes to its log). One direct connection
    to each bootstrap address in turn brings the broker's own error back, so operators (relay
    last_error, logs) see "authentication refused" rather than "unreachable".
    """
    if not settings.kafka_sasl_mechanism:
        return None
    for address in bootstrap_servers(settings):
        refusal = await _login_refusal(settings, address, timeout)
        if refusal is not None:
            return refusal
    return None


async def _login_refusal(settings: Settings, address: str, timeout: float) -> str | None:  # noqa: ASYNC109
    host, _, port = address.rpartition(":")
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
    """Whether any bootstrap address accepts a TCP connection at all."""
    for address in bootstrap_servers(settings):
        host, _, port = address.rpartition(":")
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(
                    host.strip("[]") or "localhost", int(port)
                )
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


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
                    [
                        NewTopic(
                            t,
                            num_partitions,
                            settings.topic_replication_factor,
                            topic_configs=topic_configs(settings),
                        )
                        for t in batch
                    ]
                )
                created += _check_created(response.topic_errors)
            await _wait_visible(admin, created)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise ServiceUnavailableError(f"creating Kafka topics failed: {exc!r}") from exc
    finally:
        await admin.close()
    return created


def topic_configs(settings: Settings) -> dict[str, str]:
    """Topic-level configs of the topics we create: with acks=all a write needs this many
    in-sync replicas, so a topic of replication factor 3 with 2 survives a lost broker
    without accepting writes that only one broker holds."""
    return {"min.insync.replicas": str(settings.topic_min_insync_replicas)}


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
