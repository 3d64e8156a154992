"""Signed /beheer session cookies and CSRF tokens, by itsdangerous (Pallets).

One key (KOPPELPUNT_BEHEER_SECRET_KEY) signs two kinds of value. itsdangerous derives a
separate key for each from its salt, so a cookie is never a valid form token or the reverse:
- the session cookie: the session's random id (store/beheer_sessions.py), signed with a
  timestamp. A cookie that was changed, made without the key or is older than the session's
  term is refused before the database is asked. One that passes must still be a live session
  in the database: the signature proves that we issued the cookie, not that the session is
  still open, so logout and removing an operator end it at once.
- the forms' CSRF token (a synchronizer token): the session's digest (the SHA-256 of its id,
  as the database keeps it, never the id), signed with a timestamp, valid FORM_TOKEN_SECONDS.
  A token of another session, a changed one and an older one are refused.

HMAC-SHA256 with itsdangerous's HMAC key derivation. Timestamps come from the runtime's clock
(TimestampSigner.get_timestamp is the documented place to change that), so the database's
expiry and the signatures' expiry agree, also in tests that move the clock. itsdangerous
refuses a signature from the future; a replica whose clock runs a little ahead of this one
must not make its fresh cookies fail here, so checking reads the clock CLOCK_SKEW_SECONDS
ahead and allows that much more age: the expiry stays exact, and a timestamp up to
CLOCK_SKEW_SECONDS in the future passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

SESSION_SALT = "koppelpunt.beheer.session"
CSRF_SALT = "koppelpunt.beheer.csrf"
# How long a page's form stays usable: an hour, as Flask-WTF's default. Reloading the page
# gives a new token; the session itself lasts KOPPELPUNT_BEHEER_SESSION_MINUTES.
FORM_TOKEN_SECONDS = 3600
# How far apart the replicas' clocks may be (NTP keeps them well within this).
CLOCK_SKEW_SECONDS = 60
# Longer than any value signed here (about 120 characters); anything longer is not checked.
MAX_SIGNED_CHARS = 512


class ClockSigner(TimestampSigner):
    """A TimestampSigner whose timestamps come from `clock` (the runtime's), read `ahead`
    seconds in advance."""

    def __init__(
        self, *args: Any, clock: Callable[[], datetime], ahead: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.ahead = ahead

    def get_timestamp(self) -> int:
        return int(self.clock().timestamp()) + self.ahead


class BeheerSigning:
    """Signs and checks the /beheer cookie and form tokens with one key."""

    def __init__(self, secret_key: str, clock: Callable[[], datetime]) -> None:
        def serializer(salt: str, ahead: int) -> URLSafeTimedSerializer:
            return URLSafeTimedSerializer(
                secret_key,
                salt=salt,
                signer=ClockSigner,
                signer_kwargs={
                    "clock": clock,
                    "ahead": ahead,
                    "digest_method": hashlib.sha256,
                    "key_derivation": "hmac",
                },
            )

        self._session = serializer(SESSION_SALT, 0)
        self._session_check = serializer(SESSION_SALT, CLOCK_SKEW_SECONDS)
        self._csrf = serializer(CSRF_SALT, 0)
        self._csrf_check = serializer(CSRF_SALT, CLOCK_SKEW_SECONDS)

    def cookie(self, session_id: str) -> str:
        """The cookie value for a new session."""
        return self._session.dumps(session_id)

    def session_id(self, cookie: str, max_age_seconds: int) -> str | None:
        """The session id in a cookie we signed at most `max_age_seconds` ago, else None."""
        return _loads(self._session_check, cookie, max_age_seconds)

    def form_token(self, session_digest: str) -> str:
        """A CSRF token for the session with this digest."""
        return self._csrf.dumps(session_digest)

    def form_token_valid(self, token: str, session_digest: str) -> bool:
        """The token was signed by us for this session at most FORM_TOKEN_SECONDS ago. A plain
        comparison suffices: the value compared is authenticated by the signature already."""
        return _loads(self._csrf_check, token, FORM_TOKEN_SECONDS) == session_digest


def _loads(serializer: URLSafeTimedSerializer, text: str, max_age: int) -> str | None:
    """The value signed in `text` at most `max_age` seconds ago (by the clock read
    CLOCK_SKEW_SECONDS ahead: the same allowance is added to the age), else None."""
    if not text or len(text) > MAX_SIGNED_CHARS:
        return None
    try:
        value = serializer.loads(text, max_age=max_age + CLOCK_SKEW_SECONDS)
    except BadSignature:  # also a changed payload, an expired or a future timestamp
        return None
    return value if isinstance(value, str) else None
