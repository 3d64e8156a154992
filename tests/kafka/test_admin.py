"""Topic administration against the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError, ServiceUnavailableError
from koppelpunt.kafka.admin import client_kwargs, ensure_topics, list_topics, topic_for
from tests.kafka_fixtures import free_port

pytestmark = pytest.mark.kafka


def _prefix() -> str:
    return f"vva.signalering.t{uuid.uuid4().hex[:10]}"


class TestTopicFor:
    def test_lowercases_the_gemeentecode(self) -> None:
        """GM0363 under the prefix becomes the lowercase topic name."""
        assert topic_for("vva.signalering", "GM0363") == "vva.signalering.gm0363"

    def test_accepts_lowercase_code_and_trailing_dot(self) -> None:
        """A lowercase code and a prefix ending in a dot give the same topic."""
        assert topic_for("vva.signalering.", "gm0014") == "vva.signalering.gm0014"

    @pytest.mark.parametrize("code", ["0363", "GM363", "GM03631", "XX0363", "GM0363 x", ""])
    def test_rejects_anything_but_a_gemeentecode(self, code: str) -> None:
        """Only GM plus four digits names a topic."""
        with pytest.raises(ValueError, match="gemeentecode"):
            topic_for("vva.signalering", code)


class TestClientKwargs:
    def test_plaintext_has_no_sasl(self) -> None:
        """Without a mechanism no SASL arguments are passed to aiokafka."""
        kwargs = client_kwargs(
            Settings(
                kafka_bootstrap="h:1",
                kafka_security_protocol="PLAINTEXT",
                kafka_sasl_mechanism=None,
            )
        )
        assert kwargs == {"bootstrap_servers": "h:1", "security_protocol": "PLAINTEXT"}

    def test_scram_credentials_are_passed(self) -> None:
        """SCRAM uses aiokafka's sasl_plain_* fields; SASL_SSL gets a verifying TLS context."""
        kwargs = client_kwargs(
            Settings(
                kafka_bootstrap="h:1",
                kafka_security_protocol="SASL_SSL",
                kafka_sasl_mechanism="SCRAM-SHA-512",
                kafka_username="koppelpunt",
                kafka_password="geheim",
            )
        )
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
        assert kwargs["sasl_plain_username"] == "koppelpunt"
        assert kwargs["sasl_plain_password"] == "geheim"
        assert kwargs["ssl_context"] is not None


class TestEnsureTopics:
    async def test_creates_missing_topics_once(self, kafka_settings: Settings) -> None:
        """The first call creates the topics, the second creates nothing (idempotent)."""
        prefix = _prefix()
        topics = [topic_for(prefix, "GM0363"), topic_for(prefix, "GM0014")]
        assert sorted(await ensure_topics(kafka_settings, topics, partitions=2)) == sorted(topics)
        assert await ensure_topics(kafka_settings, topics, partitions=2) == []
        assert await list_topics(kafka_settings, prefix) == sorted(topics)

    async def test_concurrent_creators_do_not_fail(self, kafka_settings: Settings) -> None:
        """Two racing callers both succeed; together they created each topic exactly once."""
        prefix = _prefix()
        topics = [topic_for(prefix, f"GM{n:04d}") for n in range(1, 6)]
        first, second = await asyncio.gather(
            ensure_topics(kafka_settings, topics, partitions=1),
            ensure_topics(kafka_settings, topics, partitions=1),
        )
        assert sorted(first + second) == sorted(topics)

    async def test_large_lists_are_created_in_batches(self, kafka_settings: Settings) -> None:
        """More topics than one CreateTopics request holds are all created."""
        prefix = _prefix()
        topics = [topic_for(prefix, f"GM{n:04d}") for n in range(1, 131)]
        created = await ensure_topics(kafka_settings, topics, partitions=1)
        assert sorted(created) == sorted(topics)
        assert await list_topics(kafka_settings, prefix) == sorted(topics)

    async def test_invalid_topic_name_is_a_configuration_error(
        self, kafka_settings: Settings
    ) -> None:
        """A name Kafka refuses is reported with the broker's reason, not swallowed."""
        with pytest.raises(ConfigurationError, match="invalid"):
            await ensure_topics(kafka_settings, ["vva.signalering.bad topic!"])

    async def test_unreachable_broker_is_service_unavailable(self) -> None:
        """No broker: a ServiceUnavailableError within the timeout, not a hang."""
        settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
        with pytest.raises(ServiceUnavailableError):
            await ensure_topics(settings, ["vva.signalering.gm0363"], timeout=3)


class TestListTopics:
    async def test_lists_only_topics_under_the_prefix(self, kafka_settings: Settings) -> None:
        """Topics of another prefix (even one that starts alike) are not listed."""
        prefix = _prefix()
        mine = topic_for(prefix, "GM0363")
        lookalike = prefix + "en.gm0363"
        await ensure_topics(kafka_settings, [mine, lookalike], partitions=1)
        assert await list_topics(kafka_settings, prefix) == [mine]


class TestUnavailableReasons:
    async def test_plaintext_client_against_a_sasl_listener_is_named(
        self, kafka_settings: Settings
    ) -> None:
        """Without the Kafka environment (PLAINTEXT, no credentials) against the SASL broker,
        the error names the protocol mismatch and what to set, not "unreachable"."""
        plain = kafka_settings.model_copy(
            update={
                "kafka_security_protocol": "PLAINTEXT",
                "kafka_sasl_mechanism": None,
                "kafka_username": None,
                "kafka_password": None,
                "kafka_admin_username": None,
                "kafka_admin_password": None,
            }
        )
        with pytest.raises(ServiceUnavailableError) as raised:
            await list_topics(plain, _prefix(), timeout=5)
        assert "accepts connections but not this plaintext client" in raised.value.detail
        assert "KOPPELPUNT_KAFKA_SECURITY_PROTOCOL" in raised.value.detail

    async def test_nothing_listening_is_unreachable(self, kafka_settings: Settings) -> None:
        """A port where nothing listens is still reported as unreachable."""
        nowhere = kafka_settings.model_copy(
            update={
                "kafka_bootstrap": f"127.0.0.1:{free_port()}",
                "kafka_security_protocol": "PLAINTEXT",
                "kafka_sasl_mechanism": None,
            }
        )
        with pytest.raises(ServiceUnavailableError, match="is unreachable"):
            await list_topics(nowhere, _prefix(), timeout=3)
