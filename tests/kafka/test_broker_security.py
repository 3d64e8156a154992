"""The local/test broker (dev/localkafka) runs with SASL/SCRAM and deny-by-default ACLs."""

from __future__ import annotations

import socket
import ssl
import stat
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from tests.kafka_fixtures import broker_module, free_port

pytestmark = pytest.mark.kafka


@pytest.fixture
def own_broker(kafka_broker: Any) -> Any:
    if kafka_broker is None:
        pytest.skip("KOPPELPUNT_KAFKA_BOOTSTRAP points at an external broker")
    return kafka_broker


class TestBrokerSecurity:
    def test_no_plaintext_client_listener_and_deny_by_default(self, own_broker: Any) -> None:
        """Only SASL listeners; StandardAuthorizer; no ACL means no access; one super user."""
        props = own_broker.properties()
        assert props["listeners"].startswith("SASL_SSL://127.0.0.1:")
        assert props["advertised.listeners"].startswith("SASL_SSL://127.0.0.1:")
        assert props["inter.broker.listener.name"] == "SASL_SSL"
        # The only plaintext-transport listener is the controller's (loopback, SASL/PLAIN).
        assert props["listener.security.protocol.map"] == (
            "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT"
        )
        assert all(
            v.startswith("SASL_")
            for v in (p.split(":")[1] for p in props["listener.security.protocol.map"].split(","))
        )
        assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert props["authorizer.class.name"] == (
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        )
        assert props["allow.everyone.if.no.acl.found"] == "false"
        assert props["super.users"] == f"User:{broker_module.ADMIN_USER}"

    def test_secrets_are_owner_only(self, own_broker: Any) -> None:
        """The credentials and the properties holding the admin password are mode 0600."""
        for path in (
            own_broker.credentials_file,
            own_broker.properties_file,
            own_broker.admin_client_file,
            own_broker.tls.key_file,
            own_broker.tls.ca_key_file,
        ):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


class TestBrokerTls:
    """The client listener is SASL_SSL with a certificate of the broker's own local CA."""

    def test_client_trusting_the_ca_logs_in(self, own_broker: Any) -> None:
        creds = own_broker.credentials()
        login = [(creds["service_username"], creds["service_password"])]
        assert own_broker.tls.client_context().check_hostname
        reason = broker_module.broker_usable(own_broker.bootstrap, login, 5, own_broker.tls.ca_file)
        assert reason is None

    def test_client_without_the_ca_fails(self, own_broker: Any) -> None:
        """The system's trust store does not know the local CA: the handshake fails."""
        creds = own_broker.credentials()
        login = [(creds["service_username"], creds["service_password"])]
        reason = broker_module.broker_usable(own_broker.bootstrap, login, 5, ca_file=None)
        assert reason is not None
        assert "certificate verify failed" in reason

    def test_wrong_host_name_fails(self, own_broker: Any) -> None:
        """The certificate names 127.0.0.1 and localhost only; the host name is checked."""
        context = own_broker.tls.client_context()
        with (
            socket.create_connection(("127.0.0.1", own_broker.port), timeout=5) as sock,
            pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
        ):
            context.wrap_socket(sock, server_hostname="broker.elders.example")

    async def test_plaintext_sasl_client_cannot_connect(self, own_broker: Any) -> None:
        """A SASL client without TLS gets nothing from the listener."""
        creds = own_broker.credentials()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=own_broker.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=creds["service_username"],
            sasl_plain_password=creds["service_password"],
            request_timeout_ms=3000,
        )
        with pytest.raises(KafkaConnectionError):
            await consumer.start()
        await consumer.stop()

    async def test_unauthenticated_client_cannot_connect(self, own_broker: Any) -> None:
        """A PLAINTEXT client gets no metadata from the SASL listener."""
        consumer = AIOKafkaConsumer(bootstrap_servers=own_broker.bootstrap, request_timeout_ms=3000)
        with pytest.raises(KafkaConnectionError):
            await consumer.start()
        await consumer.stop()


class TestReadinessProbe:
    """LocalBroker's readiness is "a client can log in and read metadata" (asked with
    confluent-kafka's AdminClient); a wrong password is a reason, not a success."""

    def test_running_broker_is_usable_for_admin_and_service(self, own_broker: Any) -> None:
        """Both principals log in with SCRAM-SHA-512 and the metadata lists the broker."""
        assert own_broker.not_usable_because() is None
        assert own_broker.is_running()

    def test_wrong_password_is_reported_not_usable(self, own_broker: Any) -> None:
        """The probe really authenticates: a wrong password is a reason, not a success."""
        creds = own_broker.credentials()
        reason = broker_module.broker_usable(
            own_broker.bootstrap,
            [(creds["service_username"], "not-the-password")],
            ca_file=own_broker.tls.ca_file,
        )
        assert reason is not None
        assert "authentication failed" in reason.lower()

    def test_unknown_user_is_reported_not_usable(self, own_broker: Any) -> None:
        """A principal the broker has no SCRAM credential for cannot be "ready"."""
        reason = broker_module.broker_usable(
            own_broker.bootstrap, [("nobody-here", "secret")], ca_file=own_broker.tls.ca_file
        )
        assert reason is not None
        assert "authentication failed" in reason.lower()

    def test_nothing_listening_is_not_usable(self) -> None:
        """A closed port gives a reason in bounded time."""
        reason = broker_module.broker_usable(
            f"127.0.0.1:{free_port()}", [("koppelpunt", "x")], timeout=2
        )
        assert reason is not None
