"""Request-scoped access to the application's runtime and the authenticated sender."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from koppelpunt.api.auth import Kind, Role, Sender, SenderRegistry
from koppelpunt.api.tls import client_certificate
from koppelpunt.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    return cast(Runtime, request.state.runtime)


def authenticate(
    request: Request,
    authorization: str | None,
    *,
    kind: Kind = Kind.BEARER,
    role: Role | None = None,
) -> Sender:
    """Authenticate this request's client certificate (its OIN; 403 when it names no sender)
    or bearer key: 401 when missing or unknown, 429 while the client's address or the key has
    too many recent failures (counted in /metrics)."""
    senders = cast(SenderRegistry, request.state.senders)
    return senders.authenticate(
        authorization,
        client=request.client.host if request.client else None,
        kind=kind,
        role=role,
        metrics=runtime_of(request).metrics,
        certificate=client_certificate(request.scope),
    )


def sender_of(request: Request) -> Sender:
    """Authenticate the request's bearer key (401 problem when missing or unknown, 429 when
    throttled)."""
    return authenticate(request, request.headers.get("authorization"))
