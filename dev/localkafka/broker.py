"""Run a real Kafka 4.x broker or cluster (KRaft, combined broker+controller nodes) without Docker.

Why: the delivery tests and `make run` need the real protocol (Kafka 4 dropped old protocol
versions, idempotence and ACLs behave as in production), and a fake would prove nothing. The
jars come from Maven Central (`make kafka-jars`, see kafka/pom.xml); Java 17 runs them. The
Makefile runs this with the venv's Python (`make kafka` creates the venv first).

    python -m dev.localkafka start [--dir var/kafka] [--port 9092] [--controller-port 9093]
                                   [--nodes 1]   # N > 1: a KRaft cluster (docs/development.md)
    python -m dev.localkafka status [--dir var/kafka]
    python -m dev.localkafka stop [--dir var/kafka]
    python -m dev.localkafka env [--dir var/kafka] [--admin]   # KOPPELPUNT_KAFKA_* exports
    python -m dev.localkafka docker-tls [--dir docker/kafka/tls]  # for docker/compose*.yaml

Importable: `from dev.localkafka import LocalBroker`;
`LocalBroker(data_dir, port=..., controller_port=...).start()`. Tests and the
benchmark pass `stop_with_parent=True`: a watchdog process (`localkafka watch`, started by
start()) stops the broker when the process that started it ends, however it ends (a pytest
killed by the kernel or at a CI time limit runs no teardown). `make kafka` leaves it running.

Security (as in production, so tests prove the ACLs): the only client listener is
SASL_PLAINTEXT with SCRAM-SHA-512 on loopback, the KRaft StandardAuthorizer runs with
`allow.everyone.if.no.acl.found=false`. There is no plaintext client listener at all. The
controller listener (loopback, broker-to-controller only) uses SASL/PLAIN with the admin
principal, because SCRAM credentials live in the metadata log the controller itself serves.
Two principals are created at format time (`--add-scram`) with random passwords kept in
`<dir>/credentials` (JSON, mode 0600, generated on the first start):
  - the admin (`koppelpunt-admin`, super user): broker internals and `koppelpunt access`;
  - the service (`koppelpunt`): WRITE/CREATE/DESCRIBE on topics with the prefix
    `vva.signalering.` and DESCRIBE on groups (for consumer lag), nothing else (ACLs added
    once after the first start).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from koppelpunt.config import Settings
from koppelpunt.kafka.admin import confluent_config
from koppelpunt.pki import CertificateAuthority, write_private

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIBS = REPO_ROOT / ".cache" / "kafka" / "libs"
NODE_ID = 1
ADMIN_USER = "koppelpunt-admin"
SERVICE_USER = "koppelpunt"
# Bumped when the service principal's ACLs change, so existing data dirs get the new set.
SERVICE_ACLS_VERSION = 2
SERVICE_TOPIC_PREFIX = "vva.signalering."
SCRAM_MECHANISM = "SCRAM-SHA-512"
# How long a started broker may refuse the admin's/service's SCRAM login before start()
# writes their credentials again (see LocalBroker._wait_ready).
_LOGIN_GRACE_SECONDS = 5.0


class BrokerError(RuntimeError):
    """The broker could not be started or stopped; the message says what to do."""


def _pem_property(pem: bytes) -> str:
    """PEM text as one properties value (java.util.Properties reads `\\n` as a newline)."""
    return pem.decode("ascii").strip().replace("\n", "\\n")


def _base_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    admin_password: str,
    tls: Mapping[str, str] | None = None,
    *,
    node_id: int = NODE_ID,
    voters: Mapping[int, int] | None = None,
) -> dict[str, str]:
    """Properties of a combined node on loopback, tuned for a fast start.

    `voters`: {node id: controller port} of every node of the quorum (default: this node
    alone). Replication follows the cluster's size: internal topics and the default get
    min(3, N) replicas and need min(2, N) in sync, so one node of three may be lost.
    `tls`: the broker's `ssl.*` properties (LocalTls.properties); without it the docker
    structure test reads the security properties only.
    """
    voters = dict(voters) if voters else {node_id: controller_port}
    replicas = str(min(3, len(voters)))
    in_sync = str(min(2, len(voters)))
    scram_login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN_USER}" password="{admin_password}";'
    )
    plain_login = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{ADMIN_USER}" password="{admin_password}" '
        f'user_{ADMIN_USER}="{admin_password}";'
    )
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        # Static voters (not `--standalone`): the voter endpoints are read from this file at
        # every start, so the same data dir survives a change of controller port.
        "controller.quorum.voters": ",".join(
            f"{i}@127.0.0.1:{p}" for i, p in sorted(voters.items())
        ),
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
        # Clients and the broker itself: SCRAM-SHA-512 (users live in the metadata log).
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram_login,
        # Broker -> controller: PLAIN with a static admin entry (SCRAM cannot bootstrap the
        # quorum that stores the SCRAM users).
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": plain_login,
        # Deny by default; the admin principal is the only super user.
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN_USER}",
        "log.dirs": str(data_dir / "logs"),
        # One node: every internal topic has one replica and needs one in-sync replica;
        # a cluster: three replicas (at most N), two in sync.
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": in_sync,
        "min.insync.replicas": in_sync,
        # Fewer internal partitions: the first consumer group / transaction is ready at once.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created deliberately (koppelpunt.kafka.admin.ensure_topics), never by typo.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "default.replication.factor": replicas,
        "num.network.threads": "2",
        "num.io.threads": "4",
        **(tls or {}),
    }


class LocalTls:
    """The broker's TLS material in `<data dir>/tls`: a local CA and a broker certificate.

    Created on the first start with koppelpunt.pki (the CA key and the broker key 0600);
    clients trust `ca.pem` (KOPPELPUNT_KAFKA_SSL_CAFILE). The broker certificate names
    `hosts` (127.0.0.1 and localhost), so clients check the host name as in production.
    """

    def __init__(self, directory: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> None:
        self.directory = directory
        self.hosts = tuple(hosts)
        self.ca_file = directory / "ca.pem"
        self.ca_key_file = directory / "ca.key"
        self.cert_file = directory / "broker.pem"
        self.key_file = directory / "broker.key"
        # Key and certificate in one file: a PEM keystore by location (the docker brokers).
        self.keystore_file = directory / "broker-keystore.pem"

    def ensure(self) -> None:
        if self.ca_file.exists() and self.cert_file.exists() and self.key_file.exists():
            return
        if self.ca_file.exists() and self.ca_key_file.exists():
            ca = CertificateAuthority.load(self.ca_file, self.ca_key_file)
        else:
            ca = CertificateAuthority.create("koppelpunt local Kafka CA")
            ca.write(self.ca_file, self.ca_key_file)
        ca.issue_server(self.hosts).write(self.cert_file, self.key_file)
        os.chmod(self.directory, 0o700)

    def write_keystore(self) -> None:
        """broker-keystore.pem (0600): the broker key, then its certificate."""
        write_private(self.keystore_file, self.key_file.read_bytes() + self.cert_file.read_bytes())

    def properties(self) -> dict[str, str]:
        """The broker's keystore (PEM inline: the key is unencrypted) and truststore (the CA,
        for the broker's own inter-broker connections)."""
        return {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": _pem_property(self.cert_file.read_bytes()),
            "ssl.keystore.key": _pem_property(self.key_file.read_bytes()),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
        }

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only the local CA, host name checked."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _log4j2_config(log_file: Path) -> str:
    """INFO to one file; the noisy per-request loggers stay at WARN."""
    return "\n".join(
        [
            "status = warn",
            "appender.file.type = File",
            "appender.file.name = FILE",
            f"appender.file.fileName = {log_file}",
            "appender.file.append = true",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = FILE",
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "",
        ]
    )


def _random_cluster_id() -> str:
    """A Kafka Uuid: 16 random bytes, URL-safe base64 without padding (as `random-uuid`)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # a leading dash reads as a CLI option
            return cid


def broker_usable(
    bootstrap: str,
    logins: Sequence[tuple[str, str]],
    timeout: float = 5.0,
    ca_file: Path | None = None,
    brokers: int = 1,
) -> str | None:
    """None when a client can use the cluster now, else why not (for the start-up log).

    "Usable" means what a client needs, not merely a listening socket: for every (username,
    password) in `logins` a SCRAM-SHA-512 login over TLS (trusting `ca_file`, host name
    checked; None: the system's trust store) succeeds and the cluster's description lists at
    least `brokers` live brokers. Asked with koppelpunt's own admin client (confluent-kafka,
    `koppelpunt.kafka.admin.confluent_config`); librdkafka reports a refused login or a
    failed handshake through its error callback at once, so a refusal is a reason within
    a fraction of a second, not a timeout.
    """
    for username, password in logins:
        reason = _usable_as(bootstrap, username, password, timeout, ca_file, brokers)
        if reason is not None:
            return f"{username}: {reason}"
    return None


def _usable_as(
    bootstrap: str,
    username: str,
    password: str,
    timeout: float,
    ca_file: Path | None,
    brokers: int,
) -> str | None:
    settings = Settings(
        kafka_bootstrap=bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=SCRAM_MECHANISM,
        kafka_username=username,
        kafka_password=password,
        kafka_ssl_cafile=ca_file,
        kafka_ssl_certfile=None,
        kafka_ssl_keyfile=None,
    )
    errors: list[KafkaError] = []
    config: dict[str, Any] = {
        **confluent_config(settings),
        "client.id": "koppelpunt-broker-check",
        "log_level": 0,  # its errors come through error_cb, not as stderr lines
        "error_cb": errors.append,
    }
    client = AdminClient(config)
    future = client.describe_cluster(request_timeout=timeout)
    deadline = time.monotonic() + timeout + 1
    while not future.done() and time.monotonic() < deadline:
        client.poll(0.05)  # serves error_cb
        # A refused login or TLS handshake: the first error says it (the rest is "brokers
        # down"); librdkafka would retry until the timeout.
        if errors and errors[0].code() != KafkaError._ALL_BROKERS_DOWN:
            return _error_text(errors[0])
    if not future.done():
        first = f": {_error_text(errors[0])}" if errors else ""
        return f"no answer within {timeout:.0f}s{first}"
    try:
        listed = len(future.result().nodes)
    except KafkaException as exc:
        return _error_text(exc.args[0]) if exc.args else str(exc)
    if listed < brokers:
        return f"metadata lists {listed} of {brokers} brokers"
    return None


def _error_text(error: object) -> str:
    text = error.str() if isinstance(error, KafkaError) else str(error)
    return text.split("/bootstrap: ", 1)[-1]


def _port_open(port: int, timeout: float) -> bool:
    """Something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# The SCRAM credential restore (restore_scram_credentials) is the one request this module
# encodes itself: Kafka's tools and clients cannot send it where it is needed. With every SCRAM
# login refused only the controller listener (SASL/PLAIN) is open, and 4.1.1's Java admin
# client refuses AlterUserScramCredentials on `--bootstrap-controller`
# (UnsupportedEndpointTypeException, so `kafka-configs --bootstrap-controller` fails), while
# librdkafka cannot use a controller listener at all (no Metadata there). The controller
# itself serves the request. Header v1 (v2 for the one flexible request).
_API_SASL_HANDSHAKE = 17
_API_VERSIONS = 18
_API_SASL_AUTHENTICATE = 36
_API_ALTER_USER_SCRAM_CREDENTIALS = 51
_SCRAM_SHA_512_TYPE = 2  # org.apache.kafka.clients.admin.ScramMechanism
_SCRAM_ITERATIONS = 8192
_NOT_CONTROLLER = 41
_CLIENT_ID = b"koppelpunt-broker-check"


class _ProbeFailed(Exception):
    """The controller answered, but not as needed; the message says why."""


class _KafkaWire:
    """A blocking, minimal Kafka protocol connection (for restore_scram_credentials only)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._correlation_id = 0x4B50

    def request(self, api_key: int, version: int, body: bytes, *, flexible: bool = False) -> bytes:
        """Send one request, return the response body after its correlation id."""
        self._correlation_id += 1
        header = (
            struct.pack(">hhih", api_key, version, self._correlation_id, len(_CLIENT_ID))
            + _CLIENT_ID
            + (b"\0" if flexible else b"")  # header v2: no tagged fields
        )
        payload = header + body
        self._sock.sendall(struct.pack(">i", len(payload)) + payload)
        size: int = struct.unpack(">i", _recv_exact(self._sock, 4))[0]
        if not 4 <= size <= 1 << 24:
            raise _ProbeFailed(f"not a Kafka response (size {size})")
        response = _recv_exact(self._sock, size)
        if struct.unpack(">i", response[:4])[0] != self._correlation_id:
            raise _ProbeFailed("correlation id mismatch")
        return response[4:]

    def api_versions(self) -> dict[int, tuple[int, int]]:
        """ApiVersions v0: {api_key: (min_version, max_version)}."""
        body = self.request(_API_VERSIONS, 0, b"")
        error_code, count = struct.unpack(">hi", body[:6])
        if error_code != 0 or count <= 0:
            raise _ProbeFailed(f"ApiVersions error {error_code}")
        ranges = {}
        for i in range(count):
            key, low, high = struct.unpack(">hhh", body[6 + 6 * i : 12 + 6 * i])
            ranges[key] = (low, high)
        return ranges


def _kafka_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


def _kafka_bytes(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def _pick_version(ranges: Mapping[int, tuple[int, int]], api_key: int, low: int, high: int) -> int:
    """The lowest version both the controller and this module speak."""
    broker_low, broker_high = ranges.get(api_key, (-1, -1))
    version = max(low, broker_low)
    if broker_high < 0 or version > min(high, broker_high):
        raise _ProbeFailed(f"no common version for API {api_key} ({broker_low}..{broker_high})")
    return version


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _compact_string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _uvarint(len(raw) + 1) + raw


def _compact_bytes(value: bytes) -> bytes:
    return _uvarint(len(value) + 1) + value


def _read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def restore_scram_credentials(
    host: str,
    controller_ports: Sequence[int],
    admin: tuple[str, str],
    users: Sequence[tuple[str, str]],
    timeout: float = 10.0,
) -> None:
    """Upsert SCRAM-SHA-512 credentials through a controller listener (admin, SASL/PLAIN).

    Why: Kafka 4.1 brokers were seen to come back from a restart without any SCRAM
    credential in their cache once a credential had been deleted (`koppelpunt access
    revoke`): every SCRAM login then fails, the admin's too, so the broker listener cannot
    be used to repair it. The controller listener authenticates the admin with PLAIN (a
    static JAAS entry), and writing the credentials again puts fresh records in the
    metadata log, which the brokers apply to their caches at once. Only the active
    controller takes the write: the others answer NOT_CONTROLLER and the next port is tried.
    """
    last: Exception = _ProbeFailed("no controller port")
    for port in controller_ports:
        try:
            _restore_at(host, port, admin, users, timeout)
            return
        except _NotController as exc:
            last = exc
    raise last


class _NotController(_ProbeFailed):
    """This controller is not the active one."""


def _restore_at(
    host: str,
    port: int,
    admin: tuple[str, str],
    users: Sequence[tuple[str, str]],
    timeout: float,
) -> None:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        wire = _KafkaWire(sock)
        ranges = wire.api_versions()
        body = wire.request(
            _API_SASL_HANDSHAKE,
            _pick_version(ranges, _API_SASL_HANDSHAKE, 1, 1),
            _kafka_string("PLAIN"),
        )
        if struct.unpack(">h", body[:2])[0] != 0:
            raise _ProbeFailed("PLAIN not enabled on the controller listener")
        token = b"\0" + admin[0].encode() + b"\0" + admin[1].encode()
        response = wire.request(
            _API_SASL_AUTHENTICATE,
            _pick_version(ranges, _API_SASL_AUTHENTICATE, 0, 1),
            _kafka_bytes(token),
        )
        if struct.unpack(">h", response[:2])[0] != 0:
            raise _ProbeFailed("the controller refused the admin's PLAIN login")
        _pick_version(ranges, _API_ALTER_USER_SCRAM_CREDENTIALS, 0, 0)
        upsertions = b""
        for name, password in users:
            salt = secrets.token_bytes(32)
            salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _SCRAM_ITERATIONS)
            upsertions += (
                _compact_string(name)
                + struct.pack(">bi", _SCRAM_SHA_512_TYPE, _SCRAM_ITERATIONS)
                + _compact_bytes(salt)
                + _compact_bytes(salted)
                + b"\0"  # no tagged fields
            )
        # v0 is a flexible version: compact arrays and strings, tagged fields everywhere,
        # and request header v2 (the v1 header plus an empty tagged-field section).
        request = _uvarint(1) + _uvarint(len(users) + 1) + upsertions + b"\0"
        response = wire.request(_API_ALTER_USER_SCRAM_CREDENTIALS, 0, request, flexible=True)
        pos = 1 + 4  # response header v1 tagged fields (empty), throttle_time_ms
        count, pos = _read_uvarint(response, pos)
        for _ in range(count - 1):
            length, pos = _read_uvarint(response, pos)
            user = response[pos : pos + length - 1].decode()
            pos += length - 1
            (error_code,) = struct.unpack(">h", response[pos : pos + 2])
            pos += 2
            length, pos = _read_uvarint(response, pos)
            message = response[pos : pos + length - 1].decode() if length else ""
            pos += max(length - 1, 0)
            _, pos = _read_uvarint(response, pos)  # tagged fields
            if error_code == _NOT_CONTROLLER:
                raise _NotController(f"{host}:{port} is not the active controller")
            if error_code:
                raise _ProbeFailed(f"restoring {user!r} failed: error {error_code} {message}")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return bytes(buf)


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie still answers kill(pid, 0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_kafka_process(pid: int) -> bool:
    """Guards against pid reuse: only signal a pid that still runs kafka.Kafka."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"kafka.Kafka" in cmdline.read_bytes()
    except OSError:
        return _pid_alive(pid)  # no /proc (macOS): trust the pid file


class _Watchdog:
    """A `python -m dev.localkafka watch` process holding the read end of a pipe whose write
    end only we hold.

    When this process ends, however it ends, the kernel closes the write end and the watchdog
    reads end-of-file: the lifeline. A pipe and not a poll of our pid (no pid reuse) and not
    PR_SET_PDEATHSIG (that fires when the *thread* that started the broker ends, and the tests
    restart it from asyncio's worker threads).
    """

    def __init__(self, proc: subprocess.Popen[bytes], lifeline: int) -> None:
        self._proc = proc
        self._lifeline = lifeline

    @classmethod
    def start(cls, broker_pid: int, log_file: Path) -> _Watchdog:
        read_end, write_end = os.pipe()  # both not inheritable (PEP 446): no other child has them
        try:
            with log_file.open("ab") as log:
                proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    [
                        sys.executable,
                        "-m",
                        "dev.localkafka",
                        "watch",
                        "--pid",
                        str(broker_pid),
                        "--lifeline-fd",
                        str(read_end),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(read_end,),
                    start_new_session=True,  # a Ctrl-C in our terminal does not reach it
                    cwd=REPO_ROOT,  # `-m dev.localkafka` imports from the repository root
                )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(proc, write_end)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def end(self) -> None:
        """Close the lifeline (the broker is stopped already) and reap the watchdog."""
        with contextlib.suppress(OSError):
            os.close(self._lifeline)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def watch(broker_pid: int, lifeline_fd: int, grace: float = 30.0, poll: float = 1.0) -> int:
    """Stop the broker's process group when the lifeline closes; return when the broker is gone.

    SIGTERM first (a clean shutdown keeps the data directory usable), SIGKILL after `grace`.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def broker_alive() -> bool:
        return _pid_alive(broker_pid) and _is_kafka_process(broker_pid)

    while broker_alive():
        readable, _, _ = select.select([lifeline_fd], [], [], poll)
        if readable and os.read(lifeline_fd, 1) == b"":
            break
    if not broker_alive():
        return 0  # stopped by someone else (stop() closes the lifeline once the broker is gone)
    print(f"watchdog: the process that started broker {broker_pid} ended; stopping the broker")
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(broker_pid, sig)
        deadline = time.monotonic() + wait
        while broker_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not broker_alive():
            return 0
    return 1


class _Node:
    """One node of the cluster: its directory (data, config, pid file, log), its two ports,
    its process and its watchdog. A single-node broker keeps everything in the data dir
    itself (the layout `make kafka` has always had); node `i` of a cluster lives in
    `<data dir>/node-<i>/`."""

    def __init__(self, node_id: int, directory: Path, port: int, controller_port: int) -> None:
        self.node_id = node_id
        self.directory = directory
        self.port = port
        self.controller_port = controller_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: _Watchdog | None = None

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "broker.log"

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.directory / "log4j2.properties"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    def pid(self) -> int | None:
        """The pid of this node's process if it is still alive, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if self.proc is not None and self.proc.pid == pid:
            return pid if self.proc.poll() is None else None
        return pid if _pid_alive(pid) and _is_kafka_process(pid) else None

    def signal(self, sig: signal.Signals) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)

    def wait_gone(self, timeout: float) -> bool:
        """True when the process ended within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.pid() is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def forget(self) -> None:
        """After the process ended: no pid file, no watchdog (its lifeline closed, reaped)."""
        self.pid_file.unlink(missing_ok=True)
        self.proc = None
        if self.watchdog is not None:
            self.watchdog.end()
            self.watchdog = None

    def stop(self, timeout: float) -> bool:
        """SIGTERM the process group (clean shutdown), SIGKILL after `timeout`; False when
        the node was not running."""
        running = self.pid() is not None
        if running:
            self.signal(signal.SIGTERM)
            if not self.wait_gone(timeout):
                self.signal(signal.SIGKILL)
                self.wait_gone(60)
        self.forget()
        return running


class LocalBroker:
    """A local KRaft cluster of `nodes` combined broker+controller nodes (default one), owned
    through pid files under `data_dir` (logs, config and data too).

    Ports: `ports`/`controller_ports` name each node's client and controller port; without
    them node `i` (1-based) gets `port + 2*(i-1)` and `controller_port + 2*(i-1)` (9092/9093,
    9094/9095, 9096/9097 by default). Tests pass free ports explicitly.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 9092,
        controller_port: int = 9093,
        libs_dir: Path = DEFAULT_LIBS,
        heap: str = "512m",
        extra_properties: Mapping[str, str] | None = None,
        *,
        nodes: int = 1,
        ports: Sequence[int] | None = None,
        controller_ports: Sequence[int] | None = None,
        stop_with_parent: bool = False,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster has at least one node")
        ports = list(ports) if ports is not None else [port + 2 * i for i in range(nodes)]
        controller_ports = (
            list(controller_ports)
            if controller_ports is not None
            else [controller_port + 2 * i for i in range(nodes)]
        )
        if len(ports) != nodes or len(controller_ports) != nodes:
            raise ValueError(f"{nodes} nodes need {nodes} ports and {nodes} controller ports")
        self.data_dir = Path(data_dir).resolve()
        self.libs_dir = Path(libs_dir).resolve()
        self.heap = heap
        # Overrides and additions (e.g. a SASL_SCRAM listener, an authorizer) win over the
        # defaults; a value of "" removes a default.
        self.extra_properties = dict(extra_properties or {})
        self.tls = LocalTls(self.data_dir / "tls")
        self.stop_with_parent = stop_with_parent
        self._nodes = {
            i: _Node(
                i,
                self.data_dir if nodes == 1 else self.data_dir / f"node-{i}",
                ports[i - 1],
                controller_ports[i - 1],
            )
            for i in range(1, nodes + 1)
        }
        self.port = ports[0]
        self.controller_port = controller_ports[0]

    # --- layout ---------------------------------------------------------------------------
    @property
    def nodes(self) -> int:
        return len(self._nodes)

    @property
    def node_ids(self) -> list[int]:
        return list(self._nodes)

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self._nodes.values()]

    @property
    def controller_ports(self) -> list[int]:
        return [n.controller_port for n in self._nodes.values()]

    @property
    def bootstrap(self) -> str:
        """All nodes' client addresses, comma-separated (one address for one node)."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _node(self, node_id: int) -> _Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise ValueError(f"no node {node_id} (nodes: {self.node_ids})") from None

    # Node 1's files (the single node's: data dir itself).
    @property
    def pid_file(self) -> Path:
        return self._nodes[1].pid_file

    @property
    def log_file(self) -> Path:
        return self._nodes[1].log_file

    @property
    def properties_file(self) -> Path:
        return self._nodes[1].properties_file

    @property
    def log4j_file(self) -> Path:
        return self._nodes[1].log4j_file

    def node_log_file(self, node_id: int) -> Path:
        return self._node(node_id).log_file

    # Shared by all nodes.
    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials"

    @property
    def cluster_file(self) -> Path:
        """A cluster's node count and ports (absent for one node), read by the CLI."""
        return self.data_dir / "cluster.json"

    @property
    def admin_client_file(self) -> Path:
        """Java client properties of the admin (for the broker's own CLI tools)."""
        return self.data_dir / "admin-client.properties"

    @property
    def controller_client_file(self) -> Path:
        """Java client properties of the admin on the controller listener (SASL/PLAIN)."""
        return self.data_dir / "controller-client.properties"

    @property
    def tools_log4j_file(self) -> Path:
        return self.data_dir / "tools-log4j2.properties"

    def credentials(self) -> dict[str, str]:
        """Passwords of the admin and service principals; generated once, kept 0600."""
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.credentials_file.read_text())
            if isinstance(data, dict) and {"admin_password", "service_password"} <= set(data):
                return {str(k): str(v) for k, v in data.items()}
        if any((n.logs_dir / "meta.properties").exists() for n in self._nodes.values()):
            raise BrokerError(
                f"{self.data_dir} holds a broker formatted without SCRAM users (or its "
                f"credentials file is gone): remove that directory (make clean) and start again"
            )
        data = {
            "admin_username": ADMIN_USER,
            "admin_password": secrets.token_hex(24),
            "service_username": SERVICE_USER,
            "service_password": secrets.token_hex(24),
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_private(self.credentials_file, (json.dumps(data, indent=2) + "\n").encode())
        return data

    def client_env(self, *, admin: bool = False) -> dict[str, str]:
        """KOPPELPUNT_* settings for the service (and with `admin`, for `koppelpunt access`)."""
        creds = self.credentials()
        env = {
            "KOPPELPUNT_KAFKA_BOOTSTRAP": self.bootstrap,
            "KOPPELPUNT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KOPPELPUNT_KAFKA_SSL_CAFILE": str(self.tls.ca_file),
            "KOPPELPUNT_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
            "KOPPELPUNT_KAFKA_USERNAME": creds["service_username"],
            "KOPPELPUNT_KAFKA_PASSWORD": creds["service_password"],
        }
        if admin:
            env["KOPPELPUNT_KAFKA_ADMIN_USERNAME"] = creds["admin_username"]
            env["KOPPELPUNT_KAFKA_ADMIN_PASSWORD"] = creds["admin_password"]
        return env

    def properties(self, node_id: int = 1) -> dict[str, str]:
        """The server.properties of one node (node 1: the single node's)."""
        node = self._node(node_id)
        props = _base_properties(
            node.directory,
            node.port,
            node.controller_port,
            self.credentials()["admin_password"],
            self.tls.properties(),
            node_id=node_id,
            voters={n.node_id: n.controller_port for n in self._nodes.values()},
        )
        for key, value in self.extra_properties.items():
            if value == "":
                props.pop(key, None)
            else:
                props[key] = value
        return props

    # --- state ----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Node 1's pid if it is alive, else None (a cluster: see node_pid/running_nodes)."""
        return self._nodes[1].pid()

    def node_pid(self, node_id: int) -> int | None:
        return self._node(node_id).pid()

    def node_pids(self) -> dict[int, int]:
        """{node id: pid} of the nodes that run now."""
        return {i: pid for i, n in self._nodes.items() if (pid := n.pid()) is not None}

    def watchdog_pid(self, node_id: int = 1) -> int | None:
        watchdog = self._node(node_id).watchdog
        return watchdog.pid if watchdog is not None else None

    def answers(self, timeout: float = 2.0, node_id: int = 1) -> bool:
        """Something listens on the node's client port. A TCP connect is enough for both
        uses: before a start (the port is taken: by another broker, or by anything else,
        and either way ours cannot bind it) and as the cheap gate before the login probe."""
        return _port_open(self._node(node_id).port, timeout)

    def not_usable_because(self, timeout: float = 5.0, node_id: int | None = None) -> str | None:
        """None when clients can log in (admin and service) and the metadata lists every
        broker whose process runs (all of them once the cluster is up; fewer while a test
        keeps some down and restarts one), else why not. Asked of `node_id`, or of the first
        running node."""
        if node_id is None:
            running = self.node_pids()
            node_id = min(running) if running else 1
        creds = self.credentials()
        logins = [
            (creds["admin_username"], creds["admin_password"]),
            (creds["service_username"], creds["service_password"]),
        ]
        return broker_usable(
            f"127.0.0.1:{self._node(node_id).port}",
            logins,
            timeout,
            self.tls.ca_file,
            brokers=max(1, len(self.node_pids())),
        )

    def is_running(self) -> bool:
        """Every node's process is alive and the cluster is usable by clients."""
        return len(self.node_pids()) == self.nodes and self.not_usable_because() is None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        """Start the nodes that do not run (in parallel) and wait until the cluster is usable;
        only waits when all run already."""
        self._check_layout()
        down = [n for n in self._nodes.values() if n.pid() is None]
        for node in down:
            if self.answers(timeout=1, node_id=node.node_id):
                raise BrokerError(
                    f"port {node.port} is in use, but not by our broker (no live pid in "
                    f"{node.pid_file}); stop what listens there or choose another --port"
                )
        java = self._java() if down else ""
        if down:
            self._prepare(java)
            self._launch(java, down)
        try:
            self._wait_ready(timeout, down)
            self._grant_service()
        except BrokerError:
            for node in down:
                node.stop(timeout=10)
            raise

    def start_node(self, node_id: int, timeout: float = 120) -> None:
        """(Re)start one node; return when the cluster lists all its brokers again and the
        logins work through that node."""
        node = self._node(node_id)
        if node.pid() is not None:
            self._wait_ready(timeout, [node])
            return
        if self.answers(timeout=1, node_id=node_id):
            raise BrokerError(f"port {node.port} is in use, but not by node {node_id}")
        java = self._java()
        self._prepare(java)
        self._launch(java, [node])
        try:
            self._wait_ready(timeout, [node])
        except BrokerError:
            node.stop(timeout=10)
            raise

    def stop_node(self, node_id: int, timeout: float = 30) -> bool:
        """Stop one node cleanly (SIGTERM; SIGKILL after `timeout`)."""
        return self._node(node_id).stop(timeout)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node's JVM; return when it is gone."""
        node = self._node(node_id)
        node.signal(signal.SIGKILL)
        node.wait_gone(60)
        node.forget()

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM every node (a clean shutdown; in parallel), SIGKILL after `timeout`.

        Returns False when no node was running.
        """
        running = [n for n in self._nodes.values() if n.pid() is not None]
        for node in running:
            node.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in running:
            if not node.wait_gone(max(0.0, deadline - time.monotonic())):
                node.signal(signal.SIGKILL)
                node.wait_gone(60)
        for node in self._nodes.values():
            node.forget()
        return bool(running)

    def controller_leader(self, timeout: float = 60) -> int:
        """The node id of the active KRaft controller, as the quorum reports it (the jar's
        MetadataQuorumCommand `describe --status` on the controller listeners)."""
        controllers = ",".join(
            f"127.0.0.1:{n.controller_port}" for n in self._nodes.values() if n.pid() is not None
        )
        if not controllers:
            raise BrokerError("no node is running")
        output = self._tool(
            "org.apache.kafka.tools.MetadataQuorumCommand",
            "--bootstrap-controller",
            controllers,
            "--command-config",
            str(self.controller_client_file),
            "describe",
            "--status",
            timeout=timeout,
        )
        match = re.search(r"^LeaderId:\s*(-?\d+)", output, re.MULTILINE)
        if match is None or int(match.group(1)) < 0:
            raise BrokerError(f"the quorum names no leader:\n{output}")
        return int(match.group(1))

    # --- helpers --------------------------------------------------------------------------
    def _check_layout(self) -> None:
        """A data dir holds one layout: a single node, or a cluster of one size."""
        recorded = _recorded_layout(self.data_dir)
        single = (self.data_dir / "logs" / "meta.properties").exists()
        if (recorded is not None and recorded["nodes"] != self.nodes) or (
            single and self.nodes > 1
        ):
            have = recorded["nodes"] if recorded is not None else 1
            raise BrokerError(
                f"{self.data_dir} holds a {have}-node broker, not {self.nodes} nodes: "
                "use another directory or remove it"
            )

    def _prepare(self, java: str) -> None:
        """Files shared by the nodes (credentials, TLS, tool configs) and each node's
        properties; the storage of nodes never formatted is formatted (in parallel)."""
        self._check_libs()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        creds = self.credentials()  # before logs/ exists: a fresh dir gets new credentials
        self.tls.ensure()
        if self.nodes > 1:
            self.cluster_file.write_text(
                json.dumps(
                    {
                        "nodes": self.nodes,
                        "ports": self.ports,
                        "controller_ports": self.controller_ports,
                    }
                )
                + "\n"
            )
        login = f'username="{creds["admin_username"]}" password="{creds["admin_password"]}";'
        admin_client = (
            "security.protocol=SASL_SSL\n"
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={self.tls.ca_file}\n"
            f"sasl.mechanism={SCRAM_MECHANISM}\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f"{login}\n"
        )
        controller_client = (
            "security.protocol=SASL_PLAINTEXT\n"
            "sasl.mechanism=PLAIN\n"
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f"{login}\n"
        )
        write_private(self.admin_client_file, admin_client.encode())
        write_private(self.controller_client_file, controller_client.encode())
        self.tools_log4j_file.write_text(_log4j2_config(self.data_dir / "tools.log"))
        for node in self._nodes.values():
            node.logs_dir.mkdir(parents=True, exist_ok=True)
            # The properties hold the admin password (JAAS): owner-only, like the credentials.
            write_private(
                node.properties_file,
                "".join(
                    f"{k}={v}\n" for k, v in sorted(self.properties(node.node_id).items())
                ).encode(),
            )
            node.log4j_file.write_text(_log4j2_config(node.log_file))
        self._format(java, creds)

    def _launch(self, java: str, nodes: Sequence[_Node]) -> None:
        """Start the nodes' JVMs without waiting (a quorum needs a majority up at once)."""
        for node in nodes:
            cmd = [
                java,
                f"-Xms{self.heap}",
                f"-Xmx{self.heap}",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={node.log4j_file}",
                "-cp",
                str(self.libs_dir / "*"),
                "kafka.Kafka",
                str(node.properties_file),
            ]
            with node.log_file.open("ab") as log:
                # Own session/process group: stop() signals the group, and a Ctrl-C in the
                # terminal that ran `make kafka` does not take the broker down.
                node.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=node.directory,
                    start_new_session=True,
                )
            node.pid_file.write_text(f"{node.proc.pid}\n")
            if self.stop_with_parent:
                node.watchdog = _Watchdog.start(node.proc.pid, node.log_file)

    def _wait_ready(self, timeout: float, started: Sequence[_Node]) -> None:
        """Wait until clients can use the cluster: SCRAM login as admin and service, and the
        metadata lists all its brokers.

        Asked through the first node just started (or the first running node). Not just
        ApiVersions: a broker may answer that while no client can log in. Kafka 4.1.1 comes
        back from a restart with an empty SCRAM credential cache once any credential was ever
        deleted (`koppelpunt access revoke`; reproduced, see docs/development.md): every
        SCRAM login fails with SaslAuthenticationFailed, for good. When the admin's or the
        service's login is refused for a few seconds after the broker answers, their
        credentials are written again through the controller listener
        (restore_scram_credentials), once; vendors' credentials need `access grant` again.
        """
        deadline = time.monotonic() + timeout
        reason = "no answer yet"
        refused_since: float | None = None
        restored = False
        expected = {n.node_id: n.pid() for n in started}
        probe = started[0].node_id if started else None
        while time.monotonic() < deadline:
            node_id = probe if probe is not None else min(self.node_pids() or {1: 0})
            if self.answers(timeout=1, node_id=node_id):
                reason = self.not_usable_because(timeout=5, node_id=node_id) or ""
                if not reason:
                    return
                if "authentication failed" not in reason.lower():
                    refused_since = None
                elif refused_since is None:
                    refused_since = time.monotonic()
                elif not restored and time.monotonic() - refused_since > _LOGIN_GRACE_SECONDS:
                    restored = True
                    self._restore_credentials(reason)
            for node_id, pid in expected.items():
                if self._nodes[node_id].pid() != pid:
                    raise BrokerError(
                        f"node {node_id} exited during start-up; {self._excerpt(node_id)}"
                    )
            time.sleep(0.2)
        raise BrokerError(
            f"kafka not usable after {timeout:.0f}s ({reason}); {self._excerpt(probe or 1)}"
        )

    def _restore_credentials(self, reason: str) -> None:
        creds = self.credentials()
        admin = (creds["admin_username"], creds["admin_password"])
        service = (creds["service_username"], creds["service_password"])
        print(
            f"warning: kafka in {self.data_dir} refuses SCRAM logins after its start ({reason}); "
            "writing the admin and service credentials again via the controller listener",
            file=sys.stderr,
        )
        try:
            restore_scram_credentials(
                "127.0.0.1",
                [n.controller_port for n in self._nodes.values() if n.pid() is not None],
                admin,
                [admin, service],
            )
        except (_ProbeFailed, OSError, struct.error, ConnectionError, IndexError) as exc:
            print(f"warning: restoring the SCRAM credentials failed: {exc}", file=sys.stderr)

    def _excerpt(self, node_id: int = 1, lines: int = 15) -> str:
        """The node log's ERROR lines (the cause) and its last lines (the context)."""
        log_file = self._node(node_id).log_file
        try:
            text = log_file.read_text(errors="replace").splitlines()
        except OSError:
            return f"no log at {log_file}"
        errors = [line for line in text if " ERROR " in line or " FATAL " in line][:5]
        return f"see {log_file}:\n" + "\n".join([*errors, "...", *text[-lines:]])

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        candidate = Path(java_home) / "bin" / "java" if java_home else None
        if candidate is not None and candidate.exists():
            return str(candidate)
        found = shutil.which("java")
        if found is None:
            raise BrokerError("java not found: install Java 17+ or set JAVA_HOME")
        return found

    def _tool(self, main_class: str, *args: str, timeout: float = 60) -> str:
        """Run one of the jars' command-line tools; its output, or BrokerError."""
        cmd = [
            self._java(),
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",  # a short-lived tool: C1 only starts faster
            f"-Dlog4j2.configurationFile={self.tools_log4j_file}",
            "-cp",
            str(self.libs_dir / "*"),
            main_class,
            *args,
        ]
        try:
            result = subprocess.run(  # noqa: S603 - fixed argv, no shell
                cmd,
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"{main_class} gave no answer within {timeout:.0f}s") from exc
        if result.returncode != 0:
            raise BrokerError(f"{main_class} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def _check_libs(self) -> None:
        jars = [p.name for p in self.libs_dir.glob("*.jar")] if self.libs_dir.is_dir() else []
        if not any(j.startswith("kafka_2.13-") for j in jars):
            raise BrokerError(f"no Kafka jars in {self.libs_dir}: run `make kafka-jars` first")
        # SLF4J 1.7 only finds log4j-slf4j-impl; the slf4j2 binding leaves the broker silent
        # (even its fatal start-up errors), which makes every failure a guessing game.
        if any(j.startswith("slf4j-api-1.") for j in jars) and not any(
            j.startswith("log4j-slf4j-impl-") for j in jars
        ):
            print(
                f"warning: {self.libs_dir} has slf4j-api 1.x without log4j-slf4j-impl: the "
                "broker will log nothing. Use artifact log4j-slf4j-impl in kafka/pom.xml and "
                "rerun `make kafka-jars`.",
                file=sys.stderr,
            )

    def _cluster_id(self) -> str:
        """The id the storage already has (every node of a cluster has the same one; 4.x
        refuses `--ignore-formatted` with another one), or a new one."""
        for node in self._nodes.values():
            with contextlib.suppress(OSError):
                for line in (node.logs_dir / "meta.properties").read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1].strip()
        return _random_cluster_id()

    def _grant_service(self) -> None:
        """Once per data dir: what the service principal may do, and nothing more.

        Its topics (prefix): WRITE and CREATE to publish (the publisher creates a gemeente's
        topic before its first signalering) and DESCRIBE; never READ, so the service's
        credentials cannot read the signaleringen back. Groups: DESCRIBE only, to see the
        vendors' committed offsets for the consumer lag; it cannot join or reset a group.
        Done as the admin with koppelpunt's admin client (confluent-kafka `create_acls`,
        idempotent); a stamp file named after this set of ACLs skips it on later starts, and a
        changed set is applied to an existing data dir.
        """
        stamp = self.data_dir / f"service-acls-{SERVICE_ACLS_VERSION}.done"
        if stamp.exists():
            return
        principal = f"User:{SERVICE_USER}"
        bindings = [
            AclBinding(
                ResourceType.TOPIC,
                SERVICE_TOPIC_PREFIX,
                ResourcePatternType.PREFIXED,
                principal,
                "*",
                operation,
                AclPermissionType.ALLOW,
            )
            for operation in (AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE)
        ]
        bindings.append(
            AclBinding(
                ResourceType.GROUP,
                "*",
                ResourcePatternType.LITERAL,
                principal,
                "*",
                AclOperation.DESCRIBE,
                AclPermissionType.ALLOW,
            )
        )
        creds = self.credentials()
        settings = Settings(
            kafka_bootstrap=self.bootstrap,
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism=SCRAM_MECHANISM,
            kafka_username=creds["admin_username"],
            kafka_password=creds["admin_password"],
            kafka_ssl_cafile=self.tls.ca_file,
            kafka_ssl_certfile=None,
            kafka_ssl_keyfile=None,
        )
        client = AdminClient({**confluent_config(settings), "log_level": 0})
        try:
            for future in client.create_acls(bindings, request_timeout=30).values():
                future.result(timeout=35)
        except (KafkaException, concurrent.futures.TimeoutError) as exc:
            raise BrokerError(f"granting the service ACLs failed: {exc}") from exc
        stamp.write_text("")

    def _format(self, java: str, creds: Mapping[str, str]) -> None:
        """Format the storage of every node not formatted yet, in parallel, all with one
        cluster id; a formatted node (meta.properties, written last) keeps its data.

        The SCRAM users are part of the bootstrap metadata, so the brokers can authenticate
        themselves (inter-broker) from their very first start.
        """
        todo = [n for n in self._nodes.values() if not (n.logs_dir / "meta.properties").exists()]
        cluster_id = self._cluster_id()
        procs = []
        for node in todo:
            cmd = [
                java,
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={self.tools_log4j_file}",
                "-cp",
                str(self.libs_dir / "*"),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(node.properties_file),
                "--ignore-formatted",
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={creds['admin_username']},"
                f"password={creds['admin_password']}]",
                "--add-scram",
                f"{SCRAM_MECHANISM}=[name={creds['service_username']},"
                f"password={creds['service_password']}]",
            ]
            procs.append(
                (
                    node,
                    subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    ),
                )
            )
        failures = []
        for node, proc in procs:
            output, _ = proc.communicate()
            if proc.returncode != 0:
                failures.append(f"formatting {node.logs_dir} failed:\n{output}")
        if failures:
            raise BrokerError("\n".join(failures))


def _recorded_layout(data_dir: Path) -> dict[str, Any] | None:
    """The node count and ports of the cluster started in data_dir (None: one node)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((data_dir / "cluster.json").read_text())
        if isinstance(data, dict) and isinstance(data.get("nodes"), int):
            return data
    return None


def _recorded_port(data_dir: Path, default: int) -> int:
    """The port of the broker that was started in data_dir, so `status`/`stop` need no flags."""
    props = data_dir / "server.properties"
    with contextlib.suppress(OSError, ValueError):
        for line in props.read_text().splitlines():
            if line.startswith("advertised.listeners="):
                return int(line.rsplit(":", 1)[1].split(",")[0])
    return default


def broker_from_args(args: argparse.Namespace) -> LocalBroker:
    """The LocalBroker the CLI means: the layout recorded in --dir unless flags say more."""
    data_dir = args.dir.resolve()
    recorded = _recorded_layout(data_dir)
    nodes = args.nodes or (recorded["nodes"] if recorded is not None else 1)
    ports: list[int] | None = None
    controller_ports: list[int] | None = None
    if recorded is not None and recorded["nodes"] == nodes and args.port is None:
        ports = [int(p) for p in recorded["ports"]]
        controller_ports = [int(p) for p in recorded["controller_ports"]]
    port = args.port if args.port is not None else _recorded_port(data_dir, 9092)
    return LocalBroker(
        data_dir,
        port,
        args.controller_port,
        args.libs,
        args.heap,
        nodes=nodes,
        ports=ports,
        controller_ports=controller_ports,
    )


DEFAULT_DIR = REPO_ROOT / "var" / "kafka"
DOCKER_TLS_DIR = REPO_ROOT / "docker" / "kafka" / "tls"
# Every name a client or another broker reaches a docker broker by: the single broker, the
# cluster's three, and the host's published ports.
DOCKER_TLS_HOSTS = ("kafka", "kafka-1", "kafka-2", "kafka-3", "localhost", "127.0.0.1")


def docker_tls(directory: Path) -> int:
    """`docker-tls`: the CA and broker certificate docker/compose*.yaml mount (development)."""
    tls = LocalTls(directory.resolve(), DOCKER_TLS_HOSTS)
    tls.directory.mkdir(parents=True, exist_ok=True)
    tls.ensure()
    tls.write_keystore()
    # The brokers run as the image's user (uid 1000): it must reach the keystore.
    os.chmod(tls.directory, 0o755)  # noqa: S103 - the keys inside stay 0600
    print(
        f"docker Kafka TLS in {tls.directory}: ca.pem (clients trust it), "
        f"broker-keystore.pem (key + certificate for {', '.join(DOCKER_TLS_HOSTS)})"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local Kafka broker or cluster (KRaft).")
    parser.add_argument(
        "command", choices=["start", "stop", "status", "env", "docker-tls", "watch"]
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument(
        "--nodes", type=int, default=None, help="start: nodes (default: as recorded, else 1)"
    )
    parser.add_argument("--port", type=int, default=None, help="broker port (default 9092)")
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--libs", type=Path, default=DEFAULT_LIBS)
    parser.add_argument("--heap", default="512m")
    parser.add_argument("--timeout", type=float, default=None, help="default 60 s (cluster 180)")
    parser.add_argument(
        "--admin", action="store_true", help="env: also the admin principal (koppelpunt access)"
    )
    # watch: started by LocalBroker(stop_with_parent=True), not by hand (see _Watchdog)
    parser.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lifeline-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "watch":
        if args.pid is None or args.lifeline_fd is None:
            parser.error("watch needs --pid and --lifeline-fd")
        return watch(args.pid, args.lifeline_fd)

    if args.command == "docker-tls":
        return docker_tls(args.dir if args.dir != DEFAULT_DIR else DOCKER_TLS_DIR)

    broker = broker_from_args(args)
    data_dir = broker.data_dir
    timeout = args.timeout if args.timeout is not None else (60 if broker.nodes == 1 else 180)
    what = "kafka" if broker.nodes == 1 else f"kafka ({broker.nodes} nodes)"

    def pids() -> str:
        running = broker.node_pids()
        if broker.nodes == 1:
            return f"pid {running.get(1)}"
        return "pids " + ", ".join(f"{i}:{p}" for i, p in sorted(running.items()))

    if args.command == "start":
        already = len(broker.node_pids()) == broker.nodes
        started = time.monotonic()
        try:
            broker.start(timeout=timeout)
        except BrokerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        how = "already running" if already else f"started in {time.monotonic() - started:.1f}s"
        print(f"{what} {how}: bootstrap {broker.bootstrap} ({pids()}, dir {data_dir})")
        return 0
    if args.command == "env":
        # For `eval "$(python -m dev.localkafka env)"`: the service's KOPPELPUNT_KAFKA_* settings.
        if not broker.credentials_file.exists():
            print(f"no credentials in {data_dir}: start the broker first", file=sys.stderr)
            return 1
        for key, value in broker.client_env(admin=args.admin).items():
            print(f"export {key}={value}")
        return 0
    if args.command == "stop":
        if broker.stop(timeout=args.timeout or 60):
            print(f"{what} stopped ({data_dir})")
        else:
            print(f"{what} was not running ({data_dir})")
        return 0
    running = broker.node_pids()
    if not running:
        print(f"{what} not running ({data_dir})")
        return 3  # LSB: program is not running
    first = min(running)
    if not broker.answers(node_id=first):
        print(f"{what} process up ({pids()}) but {broker.bootstrap} does not answer (starting?)")
        return 1
    reason = broker.not_usable_because()
    if reason:
        print(f"{what} ({pids()}) answers on {broker.bootstrap} but is not usable: {reason}")
        return 1
    if len(running) < broker.nodes:
        down = sorted(set(broker.node_ids) - set(running))
        print(f"{what}: nodes {down} are down ({pids()}, dir {data_dir})")
        return 1
    print(f"{what} running: bootstrap {broker.bootstrap} ({pids()}, dir {data_dir})")
    return 0
