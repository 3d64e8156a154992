"""Small helpers the repositories share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def dialect_name(session: AsyncSession) -> str:
    """'sqlite' or 'postgresql': the few statements that differ branch on this."""
    return session.get_bind().dialect.name


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Slices of at most `size`, to stay under the bind-parameter limits of both backends."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
