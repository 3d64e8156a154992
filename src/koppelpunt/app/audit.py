"""Operator actions in the verwerkingenlog: one `beheer.<action>` line per action, with who.

Every operator action (replay, offsets reset, outbox retry, purge, parked retry, access
grant/revoke, peildatum run, rules dry-run, inzage) goes through `log_action`, from the CLI,
the JSON endpoints and the /beheer page alike. The actor is the operator's name: `cli:<login>`
(or `--actor`) from the CLI, the key's or session's operator name over HTTP, and
`SYSTEM_ACTOR` for what the service does on its own (daily purge, automatic parked retry,
scheduled peildatum checks). Details hold counts and parameters, never a BSN or a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppelpunt.runtime import Runtime
from koppelpunt.store import verwerkingenlog

# The actor of what the service does by itself.
SYSTEM_ACTOR = "koppelpunt"

# Action names (the line's name is "beheer." + action).
REPLAY = "replay"
OFFSETS_RESET = "offsets_reset"
OUTBOX_RETRY = "outbox_retry"
PURGE = "purge"
PARKED_RETRY = "parked_retry"
ACCESS_GRANT = "access_grant"
ACCESS_REVOKE = "access_revoke"
PEILDATUM = "peildatum"
RULES_DRY_RUN = "rules_dry_run"
INZAGE = "inzage"
ACCESS_SYNC = "access_sync"
RMC_IMPORT = "rmc_import"
RAPPORTAGE = "rapportage"


async def log_action(
    target: Runtime | async_sessionmaker[AsyncSession],
    actor: str,
    action: str,
    details: Mapping[str, Any],
    *,
    status_code: str = verwerkingenlog.STATUS_OK,
) -> str:
    """Append one operator-action line in its own transaction; returns its trace id."""
    sessions = target.sessions if isinstance(target, Runtime) else target
    async with sessions.begin() as session:
        return await verwerkingenlog.log_operator_action(
            session, actor, action, details, status_code=status_code
        )


def parked_retry_details(result: Any, *, limit: int) -> dict[str, Any]:
    """Counts of a parked retry (koppelpunt.app.parked.RetryResult)."""
    return {
        "besloten": result.decided,
        "geparkeerd": result.still_parked,
        "signaleringen": result.signaleringen,
        "limit": limit,
    }


def peildatum_details(result: Any) -> dict[str, Any]:
    """Counts of a peildatum run (koppelpunt.app.derived.PeildatumResult), no BSNs."""
    return {
        "peildatum": result.peildatum.isoformat(),
        "checks": [f"{t} ({j})" for t, j in result.checks],
        "nieuw": len(result.new),
        "alVerzonden": result.already,
        "onbeschikbaar": result.unavailable,
        "dryRun": result.dry_run,
    }
