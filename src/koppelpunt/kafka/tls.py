"""The TLS context of every Kafka client koppelpunt creates (publisher, relay, admin).

One place, so the service and the admin commands trust the same CA and always check the
broker's host name (ssl.create_default_context does; nothing here turns it off).
"""

from __future__ import annotations

import ssl

from koppelpunt.config import Settings
from koppelpunt.errors import ConfigurationError


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verify the broker against KOPPELPUNT_KAFKA_SSL_CAFILE (else the system's trust store),
    host name checked; present the client certificate when one is configured (mutual TLS)."""
    cafile = settings.kafka_ssl_cafile
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if settings.kafka_ssl_certfile is not None:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            )
        elif settings.kafka_ssl_keyfile is not None:
            raise ConfigurationError(
                "KOPPELPUNT_KAFKA_SSL_KEYFILE is set without KOPPELPUNT_KAFKA_SSL_CERTFILE"
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"Kafka TLS files unusable: {type(exc).__name__}: {exc}") from exc
    return context
