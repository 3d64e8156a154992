# aiokafka has no type information: its protocol base classes are Any to mypy.
# mypy: disallow-subclassing-any=False
"""Who may read which gemeente's signaleringen: SCRAM users and ACLs on the broker itself.

`koppelpunt access grant/revoke/list` (cli/access.py) are thin wrappers around this module.
There is no authorisation layer of our own: the broker authenticates every vendor with
SCRAM-SHA-512 and its StandardAuthorizer (deny by default) enforces the ACLs created here,
through Kafka's Admin API (AlterUserScramCredentials, CreateAcls, DeleteAcls, DescribeAcls).

aiokafka ships the ACL request structures but no admin methods for them, and nothing for
SCRAM users; the few requests are built here on aiokafka's protocol classes and sent over
its (authenticated) admin connection.

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
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError, ServiceUnavailableError
from koppelpunt.kafka.admin import (
    REPLAY_TOPIC_SUFFIX,
    client_kwargs,
    login_problem,
    replay_topic_for,
    topic_for,
)
from koppelpunt.pipeline.gemeenten import GemeenteTable, cbs_code, normalise_code

# Kafka's enums (org.apache.kafka.common.resource / acl), as on the wire.
RESOURCE_ANY, RESOURCE_TOPIC, RESOURCE_GROUP = 1, 2, 3
PATTERN_ANY, PATTERN_LITERAL, PATTERN_PREFIXED = 1, 3, 4
OP_ANY, OP_READ, OP_WRITE, OP_CREATE, OP_DESCRIBE = 1, 3, 4, 5, 8
PERMISSION_ANY, PERMISSION_ALLOW = 1, 3
SCRAM_SHA_512 = 2
SCRAM_ITERATIONS = 8192  # Kafka accepts 4096..16384
APPLY_SECONDS = 15.0  # how long grant/revoke wait for the broker to apply a committed change
_RESOURCE_NOT_FOUND = 91  # DescribeUserScramCredentials / AlterUserScramCredentials

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


# --- the requests aiokafka lacks (flexible versions: compact types, tagged fields) -------------
class _DescribeUserScramCredentialsResponse_v0(Response):
    API_KEY = 50
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", CompactString("utf-8")),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                (
                    "credential_infos",
                    CompactArray(
                        ("mechanism", Int8), ("iterations", Int32), ("tags", TaggedFields)
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _DescribeUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 50
    API_VERSION = 0
    RESPONSE_TYPE = _DescribeUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("users", CompactArray(("name", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _DescribeUserScramCredentials(Request[_DescribeUserScramCredentialsRequest_v0]):
    API_KEY = 50

    def __init__(self, users: Sequence[str] | None) -> None:
        self._users: list[tuple[str, dict[int, bytes]]] | None = (
            None if users is None else [(u, {}) for u in users]
        )

    def build(
        self, request_struct_class: type[_DescribeUserScramCredentialsRequest_v0]
    ) -> _DescribeUserScramCredentialsRequest_v0:
        return request_struct_class(self._users, {})


class _AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterUserScramCredentials(Request[_AlterUserScramCredentialsRequest_v0]):
    API_KEY = 51

    def __init__(
        self,
        deletions: Sequence[str] = (),
        upsertions: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._deletions: list[tuple[Any, ...]] = [(name, SCRAM_SHA_512, {}) for name in deletions]
        self._upsertions: list[tuple[Any, ...]] = []
        for name, password in upsertions:
            # The client salts and hashes (RFC 5802 Hi()); the password never leaves us.
            salt = os.urandom(32)
            salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)
            self._upsertions.append((name, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted, {}))

    def build(
        self, request_struct_class: type[_AlterUserScramCredentialsRequest_v0]
    ) -> _AlterUserScramCredentialsRequest_v0:
        return request_struct_class(self._deletions, self._upsertions, {})


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


class _CreateAcls(Request[CreateAclsRequest_v1]):
    API_KEY = 30

    def __init__(self, bindings: Sequence[AclBinding]) -> None:
        self._creations = [
            (
                b.resource_type,
                b.resource_name,
                b.pattern_type,
                f"User:{b.principal}",
                "*",
                b.operation,
                PERMISSION_ALLOW,
            )
            for b in bindings
        ]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


@dataclass(frozen=True)
class AclFilter:
    """DescribeAcls/DeleteAcls filter; None matches any name/principal."""

    resource_type: int = RESOURCE_ANY
    resource_name: str | None = None
    pattern_type: int = PATTERN_ANY
    principal: str | None = None
    operation: int = OP_ANY

    def wire(self) -> tuple[Any, ...]:
        principal = None if self.principal is None else f"User:{self.principal}"
        return (
            self.resource_type,
            self.resource_name,
            self.pattern_type,
            principal,
            None,
            self.operation,
            PERMISSION_ANY,
        )


class _DeleteAcls(Request[DeleteAclsRequest_v1]):
    API_KEY = 31

    def __init__(self, filters: Sequence[AclFilter]) -> None:
        self._filters = [f.wire() for f in filters]

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(self._filters)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):
    API_KEY = 29

    def __init__(self, acl_filter: AclFilter) -> None:
        self._filter = acl_filter

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> DescribeAclsRequest_v1:
        return request_struct_class(*self._filter.wire())


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
    """An authenticated admin connection that speaks the ACL and SCRAM requests."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._admin = AIOKafkaAdminClient(
            **client_kwargs(admin_settings(settings)), request_timeout_ms=int(timeout * 1000)
        )

    async def __aenter__(self) -> AccessAdmin:
        try:
            async with asyncio.timeout(self._timeout):
                await self._admin.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._admin.close()
            raise ServiceUnavailableError(
                f"Kafka at {self._settings.kafka_bootstrap} is unreachable: {exc!r}"
            ) from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    async def _send(self, request: Request[Any]) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                node = self._admin._client.get_random_node()
                return await self._admin._client.send(node, request)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise ServiceUnavailableError(f"Kafka admin request failed: {exc!r}") from exc

    async def users(self, names: Sequence[str] | None = None) -> set[str]:
        """SCRAM users that exist (all of them with `names=None`)."""
        response = await self._send(_DescribeUserScramCredentials(names))
        if response.error_code:
            raise AccessError(f"describing SCRAM users failed: {response.error_message}")
        found: set[str] = set()
        for user, code, message, infos, _tags in response.results:
            if code == 0 and infos:
                found.add(user)
            elif code != _RESOURCE_NOT_FOUND:
                raise AccessError(f"describing SCRAM user {user!r} failed: {message}")
        return found

    async def set_password(self, name: str, password: str) -> None:
        await self._alter(_AlterUserScramCredentials(upsertions=[(name, password)]))

    async def delete_user(self, name: str) -> bool:
        """Delete the SCRAM credential; False when there was none.

        The deletion goes straight to the controller, which answers RESOURCE_NOT_FOUND for a
        user without a credential. Asking DescribeUserScramCredentials first would ask the
        broker's metadata image, which may not yet hold a user created a moment ago.
        """
        response = await self._send(_AlterUserScramCredentials(deletions=[name]))
        deleted = True
        for user, code, message, _tags in response.results:
            if code == _RESOURCE_NOT_FOUND:
                deleted = False
            elif code:
                raise AccessError(f"changing SCRAM user {user!r} failed: error {code} {message}")
        return deleted

    async def _alter(self, request: _AlterUserScramCredentials) -> None:
        response = await self._send(request)
        for user, code, message, _tags in response.results:
            if code:
                raise AccessError(f"changing SCRAM user {user!r} failed: error {code} {message}")

    async def create_acls(self, bindings: Sequence[AclBinding]) -> None:
        if not bindings:
            return
        response = await self._send(_CreateAcls(bindings))
        problems = [f"error {c} {m or ''}" for c, m in response.creation_responses if c]
        if problems:
            raise AccessError("the broker refused ACLs: " + "; ".join(problems))

    async def delete_acls(self, filters: Sequence[AclFilter]) -> list[AclBinding]:
        """Delete what the filters match; return the deleted bindings."""
        if not filters:
            return []
        response = await self._send(_DeleteAcls(filters))
        deleted: list[AclBinding] = []
        for code, message, matching in response.filter_responses:
            if code:
                raise AccessError(f"deleting ACLs failed: error {code} {message}")
            for _c, _m, rtype, rname, ptype, principal, _host, op, _perm in matching:
                deleted.append(AclBinding(rtype, rname, ptype, principal.split(":", 1)[1], op))
        return deleted

    async def describe_acls(self, acl_filter: AclFilter | None = None) -> list[AclBinding]:
        response = await self._send(_DescribeAcls(acl_filter or AclFilter()))
        if response.error_code:
            raise AccessError(f"describing ACLs failed: {response.error_message}")
        found: list[AclBinding] = []
        for rtype, rname, ptype, acls in response.resources:
            for principal, _host, op, permission in acls:
                if permission == PERMISSION_ALLOW and principal.startswith("User:"):
                    found.append(AclBinding(rtype, rname, ptype, principal.split(":", 1)[1], op))
        return found


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
