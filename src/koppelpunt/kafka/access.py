"""Who may read which gemeente's signaleringen: SCRAM users and ACLs on the broker itself.

`koppelpunt access grant/revoke/list` (cli/access.py) are thin wrappers around this module.
There is no authorisation layer of our own: the broker authenticates every vendor with
SCRAM-SHA-512 and its StandardAuthorizer (deny by default) enforces the ACLs created here,
through Kafka's Admin API (AlterUserScramCredentials, CreateAcls, DeleteAcls, DescribeAcls).

The requests go through confluent-kafka's AdminClient (kafka/admin.py, AdminSession): aiokafka
has no ACL or SCRAM-credential API. The client salts and hashes a new password itself
(SCRAM, RFC 5802): the password never goes to the broker.

A grant for NAME (a gemeente or a regional leerplicht/RMC bureau serving several) gives the
principal `User:NAME`:
  - READ and DESCRIBE on exactly the topics `{topic_prefix}.{gm0363}` of its gemeenten
    (LITERAL patterns: no wildcard can ever widen it to another gemeente), and on their
    replay topics `{topic_prefix}.{gm0363}.replay` (operations/replay.py: a replay goes to a
    gemeente's own topic or to that one, so only its own vendors read it);
  - READ and DESCRIBE on consumer groups starting with `NAME.` (PREFIXED);
and nothing else: no WRITE, no CREATE, no other topic or group.

The controller commits a change before it answers; each broker then applies it from the
metadata log a moment later. grant and revoke return only when the broker they talk to has
applied it (the new password logs in, the ACLs are there or gone), so "granted" and "revoked"
are true when the command says so.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AclBinding as ConfluentAclBinding
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError
from koppelpunt.kafka.admin import (
    REPLAY_TOPIC_SUFFIX,
    AdminSession,
    kafka_error,
    login_problem,
    replay_topic_for,
    topic_for,
)
from koppelpunt.pipeline.gemeenten import GemeenteTable, cbs_code, normalise_code

# Kafka's enums (org.apache.kafka.common.resource / acl), as on the wire; confluent-kafka's
# ResourceType, ResourcePatternType and AclOperation have the same values.
RESOURCE_ANY, RESOURCE_TOPIC, RESOURCE_GROUP = 1, 2, 3
PATTERN_ANY, PATTERN_LITERAL, PATTERN_PREFIXED = 1, 3, 4
OP_ANY, OP_READ, OP_WRITE, OP_CREATE, OP_DESCRIBE = 1, 3, 4, 5, 8
PERMISSION_ANY, PERMISSION_ALLOW = 1, 3
SCRAM_ITERATIONS = 8192  # Kafka accepts 4096..16384
APPLY_SECONDS = 15.0  # how long grant/revoke wait for the broker to apply a committed change
RESOURCE_NOT_FOUND = 91  # DescribeUserScramCredentials / AlterUserScramCredentials

_RESOURCE_NAMES = {2: "topic", 3: "group", 4: "cluster", 5: "transactional-id"}
_PATTERN_NAMES = {3: "literal", 4: "prefixed"}
_OPERATION_NAMES = {
    2: "All",
    3: "Read",
    4: "Write",
    5: "Create",
    6: "Delete",
    7: "Alter",
    8: "Describe",
    9: "ClusterAction",
    10: "DescribeConfigs",
    11: "AlterConfigs",
    12: "IdempotentWrite",
}
# A principal name: it becomes a SCRAM user and the group prefix `NAME.`.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{1,62}")
# The principals of the local broker (kafka/broker.py): never handed out to a vendor.
_OWN_PRINCIPALS = frozenset({"koppelpunt", "koppelpunt-admin"})

log = structlog.get_logger(__name__)


class AccessError(ConfigurationError):
    """The broker refused an access change, or the request itself is wrong."""


@dataclass(frozen=True)
class AclBinding:
    """One ACL entry: ALLOW `operation` on a resource pattern for `User:principal`."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    operation: int

    def describe(self) -> str:
        pattern = _PATTERN_NAMES.get(self.pattern_type, str(self.pattern_type))
        resource = _RESOURCE_NAMES.get(self.resource_type, str(self.resource_type))
        operation = _OPERATION_NAMES.get(self.operation, str(self.operation))
        return f"{operation} {resource} {self.resource_name!r} ({pattern})"

    def confluent(self) -> ConfluentAclBinding:
        return ConfluentAclBinding(
            ResourceType(self.resource_type),
            self.resource_name,
            ResourcePatternType(self.pattern_type),
            f"User:{self.principal}",
            "*",
            AclOperation(self.operation),
            AclPermissionType.ALLOW,
        )

    @classmethod
    def from_confluent(cls, binding: ConfluentAclBinding) -> AclBinding | None:
        """Ours for an ALLOW entry of a `User:` principal; None for anything else."""
        if binding.permission_type != AclPermissionType.ALLOW:
            return None
        if not binding.principal.startswith("User:"):
            return None
        return cls(
            _value(binding.restype),
            binding.name,
            _value(binding.resource_pattern_type),
            binding.principal.split(":", 1)[1],
            _value(binding.operation),
        )


def _value(member: object) -> int:
    """The int of one of confluent-kafka's enums (typed as enum | str | int)."""
    value = getattr(member, "value", member)
    assert isinstance(value, int)
    return value


@dataclass(frozen=True)
class AclFilter:
    """DescribeAcls/DeleteAcls filter; None matches any name/principal."""

    resource_type: int = RESOURCE_ANY
    resource_name: str | None = None
    pattern_type: int = PATTERN_ANY
    principal: str | None = None
    operation: int = OP_ANY

    def confluent(self) -> AclBindingFilter:
        principal = None if self.principal is None else f"User:{self.principal}"
        return AclBindingFilter(
            ResourceType(self.resource_type),
            self.resource_name,  # type: ignore[arg-type]  # None matches any name
            ResourcePatternType(self.pattern_type),
            principal,  # type: ignore[arg-type]  # None matches any principal
            None,  # type: ignore[arg-type]  # any host
            AclOperation(self.operation),
            AclPermissionType.ANY,
        )


# --- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnectionConfig:
    """What a vendor needs to connect: printed once by `grant` (the password is not kept)."""

    name: str
    bootstrap: str
    security_protocol: str
    sasl_mechanism: str
    password: str | None  # None: the existing password was kept
    gemeenten: tuple[str, ...]
    topics: tuple[str, ...]
    # The gemeenten's replay topics: re-sent signaleringen (same ce_id) when an operator
    # replays to them instead of to the gemeente topic.
    replay_topics: tuple[str, ...] = ()
    # The CA (PEM) the broker's certificate chains to (KOPPELPUNT_KAFKA_SSL_CAFILE), handed to
    # the vendor in every format: a private CA is in no client's default trust store.
    ssl_ca_pem: str | None = None
    # librdkafka reads a CA from a file only (`ssl.ca.location`): where the CLI wrote it.
    ssl_ca_location: str | None = None

    @property
    def group_prefix(self) -> str:
        return f"{self.name}."

    def as_json(self) -> str:
        return (
            json.dumps(
                {
                    "bootstrapServers": self.bootstrap,
                    "securityProtocol": self.security_protocol,
                    "saslMechanism": self.sasl_mechanism,
                    "username": self.name,
                    "password": self.password,
                    "gemeenten": list(self.gemeenten),
                    "topics": list(self.topics),
                    "replayTopics": list(self.replay_topics),
                    "groupPrefix": self.group_prefix,
                    **({"sslCaPem": self.ssl_ca_pem} if self.ssl_ca_pem else {}),
                },
                indent=2,
            )
            + "\n"
        )

    def _header(self) -> list[str]:
        return [
            f"# koppelpunt: Kafka connection for {self.name}",
            f"# gemeenten: {', '.join(self.gemeenten)}",
            f"# topics: {', '.join(self.topics)}",
            f"# replay topics (only when the operator says so): {', '.join(self.replay_topics)}",
            f"# consumer group ids must start with: {self.group_prefix}",
            "# Keep this file secret: it holds a password that is shown only once.",
            f"bootstrap.servers={self.bootstrap}",
            f"security.protocol={self.security_protocol}",
        ]

    def as_properties(self) -> str:
        """Java client properties (kafka-console-consumer --consumer.config, Spring, ...)."""
        password = self.password if self.password is not None else "<unchanged>"
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{self.name}" password="{password}";'
        )
        return (
            "\n".join(
                [
                    *self._header(),
                    f"sasl.mechanism={self.sasl_mechanism}",
                    f"sasl.jaas.config={jaas}",
                    *self._java_truststore(),
                ]
            )
            + "\n"
        )

    def _java_truststore(self) -> list[str]:
        """The CA inline as a PEM truststore (java.util.Properties reads `\\n` as a newline)."""
        if not self.ssl_ca_pem:
            return []
        pem = self.ssl_ca_pem.strip().replace("\n", "\\n")
        return ["ssl.truststore.type=PEM", f"ssl.truststore.certificates={pem}"]

    def as_librdkafka(self) -> str:
        """librdkafka properties (kcat -F FILE, confluent-kafka-python, ...)."""
        password = self.password if self.password is not None else "<unchanged>"
        return (
            "\n".join(
                [
                    *self._header(),
                    f"sasl.mechanisms={self.sasl_mechanism}",
                    f"sasl.username={self.name}",
                    f"sasl.password={password}",
                    *([f"ssl.ca.location={self.ssl_ca_location}"] if self.ssl_ca_location else []),
                ]
            )
            + "\n"
        )

    def render(self, fmt: str) -> str:
        if fmt == "json":
            return self.as_json()
        if fmt == "librdkafka":
            return self.as_librdkafka()
        return self.as_properties()


@dataclass
class AccessEntry:
    """One principal as the broker knows it: its gemeenten and everything else it may do."""

    name: str
    has_credentials: bool = False
    gemeenten: list[str] = field(default_factory=list)
    # Gemeenten whose replay topic it may read (granted with the gemeente since replay topics).
    replay_gemeenten: list[str] = field(default_factory=list)
    group_prefixes: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)


# --- the operations ---------------------------------------------------------------------------
def check_name(name: str, settings: Settings) -> str:
    """A principal name: lowercase letters, digits, '-' or '_'; not one of our own principals."""
    if not _NAME.fullmatch(name):
        raise AccessError(
            f"invalid name {name!r}: use 2-63 lowercase letters, digits, '-' or '_' "
            "(it becomes the Kafka user and the consumer group prefix NAME.)"
        )
    if name in {settings.kafka_username, settings.kafka_admin_username, *_OWN_PRINCIPALS}:
        raise AccessError(f"{name!r} is one of koppelpunt's own principals")
    return name


def resolve_gemeenten(codes: Iterable[str], table: GemeenteTable, on: date) -> list[str]:
    """GM0363 / gm0363 / 0363 -> 'GM0363', checked against the gemeente table (active on `on`)."""
    result: list[str] = []
    for raw in codes:
        code4 = normalise_code(raw)
        gemeente = table.get(raw) if code4 else None
        if code4 is None or gemeente is None or code4 in table.geen_gemeente:
            raise AccessError(f"unknown gemeentecode {raw!r} (expected e.g. GM0363 or 0363)")
        if not gemeente.active_on(on):
            successor = table.resolve(code4, on)
            hint = f"; its signaleringen go to {cbs_code(successor)}" if successor else ""
            raise AccessError(f"gemeente {cbs_code(code4)} ({gemeente.naam}) has ended{hint}")
        code = cbs_code(code4)
        if code not in result:
            result.append(code)
    if not result:
        raise AccessError("name at least one gemeente (--gemeente GM0363)")
    return result


def admin_settings(settings: Settings) -> Settings:
    """The settings with the admin principal's credentials (when configured)."""
    if settings.kafka_admin_username is None:
        return settings
    return settings.model_copy(
        update={
            "kafka_username": settings.kafka_admin_username,
            "kafka_password": settings.kafka_admin_password,
        }
    )


class AccessAdmin:
    """An authenticated admin connection (the admin principal) for ACLs and SCRAM users."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self._session = AdminSession(admin_settings(settings), timeout)

    async def __aenter__(self) -> AccessAdmin:
        # Connect and log in now, so an unreachable broker or a refused login is said once.
        session = self._session
        try:
            await session.call(
                lambda: session.wait(
                    session.client.describe_cluster(request_timeout=session.timeout)
                ),
                "connecting to Kafka",
            )
        except KafkaException as exc:
            raise AccessError(f"connecting to Kafka failed: {_text(exc)}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None  # the AdminClient closes its connections when it is collected

    async def users(self, names: Sequence[str] | None = None) -> set[str]:
        """SCRAM users that exist (all of them with `names=None`)."""
        session = self._session

        def describe() -> set[str]:
            answer = session.client.describe_user_scram_credentials(
                None if names is None else list(names), request_timeout=session.timeout
            )
            if isinstance(answer, dict):
                found: set[str] = set()
                for user, future in answer.items():
                    try:
                        description = session.wait(future)
                    except KafkaException as exc:
                        if _code(exc) != RESOURCE_NOT_FOUND:
                            raise
                        continue
                    if description.scram_credential_infos:
                        found.add(user)
                return found
            described = session.wait(answer)
            return {u for u, d in described.items() if d.scram_credential_infos}

        try:
            return await session.call(describe, "describing SCRAM users")
        except KafkaException as exc:
            raise AccessError(f"describing SCRAM users failed: {_text(exc)}") from exc

    async def set_password(self, name: str, password: str) -> None:
        upsertion = UserScramCredentialUpsertion(
            name,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            password.encode(),
        )
        await self._alter(upsertion)

    async def delete_user(self, name: str) -> bool:
        """Delete the SCRAM credential; False when there was none.

        The deletion goes straight to the controller, which answers RESOURCE_NOT_FOUND for a
        user without a credential. Asking DescribeUserScramCredentials first would ask the
        broker's metadata image, which may not yet hold a user created a moment ago.
        """
        try:
            await self._alter(UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512))
        except AccessError as exc:
            if isinstance(exc.__cause__, KafkaException) and (
                _code(exc.__cause__) == RESOURCE_NOT_FOUND
            ):
                return False
            raise
        return True

    async def _alter(
        self, alteration: UserScramCredentialUpsertion | UserScramCredentialDeletion
    ) -> None:
        session = self._session

        def alter() -> None:
            futures = session.client.alter_user_scram_credentials(
                [alteration], request_timeout=session.timeout
            )
            for future in futures.values():
                session.wait(future)

        try:
            await session.call(alter, "changing a SCRAM user")
        except KafkaException as exc:
            raise AccessError(
                f"changing SCRAM user {alteration.user!r} failed: {_text(exc)}"
            ) from exc

    async def create_acls(self, bindings: Sequence[AclBinding]) -> None:
        if not bindings:
            return
        session = self._session

        def create() -> None:
            wanted = [b.confluent() for b in dict.fromkeys(bindings)]
            futures = session.client.create_acls(wanted, request_timeout=session.timeout)
            problems: list[str] = []
            for binding, future in futures.items():
                try:
                    session.wait(future)
                except KafkaException as exc:
                    problems.append(f"{binding.name}: {_text(exc)}")
            if problems:
                raise AccessError("the broker refused ACLs: " + "; ".join(problems))

        try:
            await session.call(create, "creating ACLs")
        except KafkaException as exc:
            raise AccessError(f"creating ACLs failed: {_text(exc)}") from exc

    async def delete_acls(self, filters: Sequence[AclFilter]) -> list[AclBinding]:
        """Delete what the filters match; return the deleted bindings."""
        if not filters:
            return []
        session = self._session

        def delete() -> list[AclBinding]:
            wanted = [f.confluent() for f in dict.fromkeys(filters)]
            futures = session.client.delete_acls(wanted, request_timeout=session.timeout)
            deleted: list[AclBinding] = []
            for future in futures.values():
                for binding in session.wait(future):
                    ours = AclBinding.from_confluent(binding)
                    if ours is not None:
                        deleted.append(ours)
            return deleted

        try:
            return await session.call(delete, "deleting ACLs")
        except KafkaException as exc:
            raise AccessError(f"deleting ACLs failed: {_text(exc)}") from exc

    async def describe_acls(self, acl_filter: AclFilter | None = None) -> list[AclBinding]:
        session = self._session
        wanted = (acl_filter or AclFilter()).confluent()

        def describe() -> list[AclBinding]:
            found = session.wait(
                session.client.describe_acls(wanted, request_timeout=session.timeout)
            )
            return [b for b in map(AclBinding.from_confluent, found) if b is not None]

        try:
            return await session.call(describe, "describing ACLs")
        except KafkaException as exc:
            raise AccessError(f"describing ACLs failed: {_text(exc)}") from exc


def _code(exc: KafkaException) -> int | None:
    error = kafka_error(exc)
    return None if error is None else error.code()


def _text(exc: KafkaException) -> str:
    error = kafka_error(exc)
    return str(exc) if error is None else f"{error.name()}: {error.str()}"


async def until_applied(
    check: Callable[[], Awaitable[bool]], what: str, seconds: float = APPLY_SECONDS
) -> None:
    """Poll `check` until it holds; AccessError after `seconds`.

    The change is committed by then, so the error says so: the operator checks later with
    `koppelpunt access list` rather than running the command again.
    """
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() >= deadline:
            raise AccessError(
                f"the controller accepted {what}, but the broker had not applied it after "
                f"{seconds:.0f} s; check with `koppelpunt access list`"
            )
        await asyncio.sleep(0.05)


async def _acls_present(admin: AccessAdmin, name: str, bindings: Iterable[AclBinding]) -> bool:
    return set(bindings) <= set(await admin.describe_acls(AclFilter(principal=name)))


async def _acls_absent(admin: AccessAdmin, name: str, bindings: Iterable[AclBinding]) -> bool:
    return not set(bindings) & set(await admin.describe_acls(AclFilter(principal=name)))


def _read_bindings(name: str, topics: Sequence[str]) -> list[AclBinding]:
    bindings = [
        AclBinding(RESOURCE_TOPIC, topic, PATTERN_LITERAL, name, op)
        for topic in topics
        for op in (OP_READ, OP_DESCRIBE)
    ]
    bindings += [
        AclBinding(RESOURCE_GROUP, f"{name}.", PATTERN_PREFIXED, name, op)
        for op in (OP_READ, OP_DESCRIBE)
    ]
    return bindings


async def grant(
    settings: Settings,
    name: str,
    gemeenten: Sequence[str],
    *,
    table: GemeenteTable,
    keep_password: bool = False,
    today: date | None = None,
) -> ConnectionConfig:
    """Create (or extend) NAME's access to the gemeenten's topics; return its connection config.

    A new user gets a random password. An existing user gets a new one too (the printed
    config is the only place it appears), unless `keep_password`: then its running
    consumers keep working and the config shows the password as unchanged. `table` is the
    gemeente table in use (store.gemeenten.gemeente_table_in_use).
    """
    check_name(name, settings)
    codes = resolve_gemeenten(gemeenten, table, today or date.today())
    topics = [topic_for(settings.topic_prefix, code) for code in codes]
    replay_topics = [replay_topic_for(settings.topic_prefix, code) for code in codes]
    password: str | None = secrets.token_urlsafe(24)
    mechanism = settings.kafka_sasl_mechanism or "SCRAM-SHA-512"
    bindings = _read_bindings(name, [*topics, *replay_topics])
    async with AccessAdmin(settings) as admin:
        if keep_password and name in await admin.users([name]):
            password = None
        if password is not None:
            await admin.set_password(name, password)
        await admin.create_acls(bindings)
        await until_applied(lambda: _acls_present(admin, name, bindings), f"the ACLs of {name!r}")
    if password is not None and settings.kafka_sasl_mechanism:
        vendor = settings.model_copy(
            update={
                "kafka_username": name,
                "kafka_password": password,
                "kafka_sasl_mechanism": mechanism,
            }
        )

        async def logs_in() -> bool:
            return await login_problem(vendor) is None

        await until_applied(logs_in, f"the new password of {name!r}")
    # An audit line for the operator's log; the password is never logged.
    log.info("access_granted", principal=name, gemeenten=codes, new_password=password is not None)
    return ConnectionConfig(
        name=name,
        bootstrap=settings.kafka_public_bootstrap or settings.kafka_bootstrap,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=mechanism,
        password=password,
        gemeenten=tuple(codes),
        topics=tuple(topics),
        replay_topics=tuple(replay_topics),
        ssl_ca_pem=_ca_pem(settings),
    )


def _ca_pem(settings: Settings) -> str | None:
    """The CA a vendor needs to trust the broker: the one the service trusts, on TLS only."""
    if settings.kafka_ssl_cafile is None or settings.kafka_security_protocol not in {
        "SSL",
        "SASL_SSL",
    }:
        return None
    try:
        return settings.kafka_ssl_cafile.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"KOPPELPUNT_KAFKA_SSL_CAFILE unreadable: {exc}") from exc


async def revoke(
    settings: Settings,
    name: str,
    gemeenten: Sequence[str] = (),
    *,
    table: GemeenteTable,
    today: date | None = None,
) -> list[AclBinding]:
    """Take NAME's access to some gemeenten, or with none named all of it (user included).

    Returns the ACL entries that were removed. A full revoke also deletes the SCRAM user, so
    the credentials no longer authenticate; the ACLs go first, so even a connection that is
    still open can read nothing more.
    """
    check_name(name, settings)
    codes: list[str] = []
    if gemeenten:
        # Ended gemeenten may still hold a grant: only the code itself is checked here.
        for raw in gemeenten:
            code4 = normalise_code(raw)
            if code4 is None or table.get(raw) is None:
                raise AccessError(f"unknown gemeentecode {raw!r}")
            codes.append(cbs_code(code4))
    filters = (
        [
            AclFilter(RESOURCE_TOPIC, topic, PATTERN_LITERAL, name)
            for code in codes
            for topic in (
                topic_for(settings.topic_prefix, code),
                replay_topic_for(settings.topic_prefix, code),
            )
        ]
        if codes
        else [AclFilter(principal=name)]
    )
    async with AccessAdmin(settings) as admin:
        removed = await admin.delete_acls(filters)
        await until_applied(
            lambda: _acls_absent(admin, name, removed), f"removing ACLs of {name!r}"
        )
        if codes:
            log.info("access_revoked", principal=name, gemeenten=codes, acls=len(removed))
            return removed
        user_deleted = await admin.delete_user(name)

        async def user_gone() -> bool:
            return name not in await admin.users([name])

        await until_applied(user_gone, f"deleting user {name!r}")
    log.info("access_revoked", principal=name, acls=len(removed), user_deleted=user_deleted)
    return removed


async def list_access(settings: Settings) -> list[AccessEntry]:
    """Every principal with ACLs or a SCRAM user, sorted by name."""
    head = settings.topic_prefix.rstrip(".") + "."
    async with AccessAdmin(settings) as admin:
        users = await admin.users()
        bindings = await admin.describe_acls()
    entries: dict[str, AccessEntry] = {u: AccessEntry(u, has_credentials=True) for u in users}
    for b in sorted(bindings, key=lambda b: (b.principal, b.resource_type, b.resource_name)):
        entry = entries.setdefault(b.principal, AccessEntry(b.principal))
        suffix = b.resource_name[len(head) :]
        replay = suffix.endswith(REPLAY_TOPIC_SUFFIX)
        code = suffix.removesuffix(REPLAY_TOPIC_SUFFIX)
        gemeente_topic = (
            b.resource_type == RESOURCE_TOPIC
            and b.pattern_type == PATTERN_LITERAL
            and b.resource_name.startswith(head)
            and re.fullmatch(r"gm\d{4}", code) is not None
        )
        group_prefix = b.resource_type == RESOURCE_GROUP and b.pattern_type == PATTERN_PREFIXED
        if (gemeente_topic or group_prefix) and b.operation in {OP_READ, OP_DESCRIBE}:
            if b.operation == OP_READ and gemeente_topic:
                (entry.replay_gemeenten if replay else entry.gemeenten).append(code.upper())
            elif b.operation == OP_READ:
                entry.group_prefixes.append(b.resource_name)
        else:
            entry.other.append(b.describe())
    return sorted(entries.values(), key=lambda e: e.name)
