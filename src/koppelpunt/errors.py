"""One exception root; each subclass carries its HTTP status and a stable problem code.

Expected outcomes (a record filtered, a record rejected on content) are values, not exceptions
(see model.py). Exceptions are for refusing a request or for faults. The API renders every
KoppelpuntError as RFC 9457 problem+json (api/problems.py).
"""

from __future__ import annotations

from typing import Any


class KoppelpuntError(Exception):
    status: int = 500
    code: str = "internal"
    title: str = "Interne fout"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ConfigurationError(KoppelpuntError, ValueError):
    """A settings value, rules file or senders file is wrong: refuse to start."""

    code = "configuration"
    title = "Ongeldige configuratie"


class AuthenticationError(KoppelpuntError):
    status = 401
    code = "unauthenticated"
    title = "Niet geauthenticeerd"


class TooManyRequestsError(KoppelpuntError):
    """Too many failed authentications from this address or with this key: retry later."""

    status = 429
    code = "too-many-requests"
    title = "Te veel pogingen"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class ForbiddenError(KoppelpuntError):
    status = 403
    code = "forbidden"
    title = "Geen toegang"


class NotFoundError(KoppelpuntError, LookupError):
    status = 404
    code = "not-found"
    title = "Niet gevonden"


class InvalidMessageError(KoppelpuntError, ValueError):
    """Not well-formed, hostile or XSD-invalid: nothing of the message is processed."""

    status = 400
    code = "invalid-message"
    title = "Ongeldig bericht"


class ConflictError(KoppelpuntError):
    """Same berichtId, different bytes."""

    status = 409
    code = "bericht-conflict"
    title = "berichtId al gebruikt"


class PayloadTooLargeError(KoppelpuntError):
    status = 413
    code = "payload-too-large"
    title = "Bericht te groot"


class UnsupportedMediaTypeError(KoppelpuntError):
    status = 415
    code = "unsupported-media-type"
    title = "Verkeerd content-type"


class ServiceUnavailableError(KoppelpuntError):
    """A dependency (the database) is down: ask the sender to retry, never pretend success."""

    status = 503
    code = "unavailable"
    title = "Tijdelijk niet beschikbaar"


class LookupUnavailableError(KoppelpuntError):
    """The woongemeente lookup (BRP) cannot answer now: records are parked, not filtered."""

    status = 503
    code = "lookup-unavailable"
    title = "BRP niet bereikbaar"
