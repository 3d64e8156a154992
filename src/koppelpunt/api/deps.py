"""Request-scoped access to the application's runtime and the authenticated sender."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from koppelpunt.api.auth import Sender, SenderRegistry
from koppelpunt.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    return cast(Runtime, request.state.runtime)


def sender_of(request: Request) -> Sender:
    """Authenticate the request's bearer key (401 problem when missing or unknown)."""
    senders = cast(SenderRegistry, request.state.senders)
    return senders.authenticate(request.headers.get("authorization"))
