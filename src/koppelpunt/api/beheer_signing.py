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
expiry and the signatures' expiry agree, also in tests that move the clock.
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
# Longer than any value signed here (about 120 characters); anything longer is not checked.
MAX_SIGNED_CHARS = 512


class ClockSigner(TimestampSigner):
    """A TimestampSigner whose timestamps come from `clock` (the runtime's)."""

    def __init__(self, *args: Any, clock: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock().timestamp())


class BeheerSigning:
    """Signs and checks the /beheer cookie and form tokens with one key."""

    def __init__(self, secret_key: str, clock: Callable[[], datetime]) -> None:
        signer_kwargs = {
            "clock": clock,
            "digest_method": hashlib.sha256,
            "key_derivation": "hmac",
        }
        self._session = URLSafeTimedSerializer(
            secret_key, salt=SESSION_SALT, signer=ClockSigner, signer_kwargs=signer_kwargs
        )
        self._csrf = URLSafeTimedSerializer(
            secret_key, salt=CSRF_SALT, signer=ClockSigner, signer_kwargs=signer_kwargs
        )

    def cookie(self, session_id: str) -> str:
        """The cookie value for a new session."""
        return self._session.dumps(session_id)

    def session_id(self, cookie: str, max_age_seconds: int) -> str | None:
        """The session id in a cookie we signed at most `max_age_seconds` ago, else None."""
        return _loads(self._session, cookie, max_age_seconds)

    def form_token(self, session_digest: str) -> str:
        """A CSRF token for the session with this digest."""
        return self._csrf.dumps(session_digest)

    def form_token_valid(self, token: str, session_digest: str) -> bool:
        """The token was signed by us for this session at most FORM_TOKEN_SECONDS ago. A plain
        comparison suffices: the value compared is authenticated by the signature already."""
        return _loads(self._csrf, token, FORM_TOKEN_SECONDS) == session_digest


def _loads(serializer: URLSafeTimedSerializer, text: str, max_age: int) -> str | None:
    if not text or len(text) > MAX_SIGNED_CHARS:
        return None
    try:
        value = serializer.loads(text, max_age=max_age)
    except BadSignature:  # also a changed payload, an expired or a future timestamp
        return None
    return value if isinstance(value, str) else None
