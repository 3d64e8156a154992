"""koppelpunt.kafka.tls: the one TLS context of the service's Kafka clients.

Checked against a real TLS server (Python's ssl, a test PKI made here): the broker's CA from
KOPPELPUNT_KAFKA_SSL_CAFILE is trusted, the host name is checked, and the client certificate
is presented when configured (mutual TLS). Over the real broker: tests/kafka/test_broker_security.py
and every Kafka test (the session's broker is SASL_SSL).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError
from koppelpunt.kafka.admin import client_kwargs
from koppelpunt.kafka.tls import kafka_ssl_context
from koppelpunt.pki import CertificateAuthority


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kafka-tls")
    ca = CertificateAuthority.create("test Kafka CA")
    ca.write(root / "ca.pem", root / "ca.key")
    ca.issue_server(("127.0.0.1", "localhost")).write(root / "server.pem", root / "server.key")
    ca.issue_client("koppelpunt", oin=None).write(root / "client.pem", root / "client.key")
    other = CertificateAuthority.create("another CA")
    other.write(root / "other-ca.pem", root / "other-ca.key")
    return {p.stem if p.suffix == ".pem" else p.name: p for p in root.iterdir()}


def tls_server(pki: dict[str, Path], *, require_client_cert: bool) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"], pki["server.key"])
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki["ca"])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
        thread.join(timeout=5)


@pytest.fixture
def server(pki: dict[str, Path]) -> Iterator[int]:
    yield from tls_server(pki, require_client_cert=False)


@pytest.fixture
def mtls_server(pki: dict[str, Path]) -> Iterator[int]:
    yield from tls_server(pki, require_client_cert=True)


def handshake(context: ssl.SSLContext, port: int, host: str = "127.0.0.1") -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        return tls.recv(2)


def settings(**kwargs: object) -> Settings:
    return Settings(kafka_security_protocol="SASL_SSL", **kwargs)  # type: ignore[arg-type]


def test_trusts_the_configured_ca(pki: dict[str, Path], server: int) -> None:
    assert handshake(kafka_ssl_context(settings(kafka_ssl_cafile=pki["ca"])), server) == b"ok"


def test_refuses_a_broker_of_another_ca(pki: dict[str, Path], server: int) -> None:
    context = kafka_ssl_context(settings(kafka_ssl_cafile=pki["other-ca"]))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(context, server)


def test_checks_the_host_name(pki: dict[str, Path], server: int) -> None:
    context = kafka_ssl_context(settings(kafka_ssl_cafile=pki["ca"]))
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(context, server, host="kafka.elders.example")


def test_presents_the_client_certificate(pki: dict[str, Path], mtls_server: int) -> None:
    mutual = settings(
        kafka_ssl_cafile=pki["ca"],
        kafka_ssl_certfile=pki["client"],
        kafka_ssl_keyfile=pki["client.key"],
    )
    assert handshake(kafka_ssl_context(mutual), mtls_server) == b"ok"
    # Without the client certificate the server ends the handshake.
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(kafka_ssl_context(settings(kafka_ssl_cafile=pki["ca"])), mtls_server)


def test_client_kwargs_use_it(pki: dict[str, Path]) -> None:
    kwargs = client_kwargs(settings(kafka_ssl_cafile=pki["ca"]))
    context = kwargs["ssl_context"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert {c["subject"] for c in context.get_ca_certs()} == {
        c["subject"] for c in kafka_ssl_context(settings(kafka_ssl_cafile=pki["ca"])).get_ca_certs()
    }
    assert len(context.get_ca_certs()) == 1


def test_unusable_files_are_a_configuration_error(pki: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Kafka TLS"):
        kafka_ssl_context(settings(kafka_ssl_cafile=tmp_path / "absent.pem"))
    with pytest.raises(ConfigurationError, match="without KOPPELPUNT_KAFKA_SSL_CERTFILE"):
        kafka_ssl_context(settings(kafka_ssl_keyfile=pki["client.key"]))
