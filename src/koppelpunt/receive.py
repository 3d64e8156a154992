"""Receive one inbound message: the adapter that wires the pure pipeline to storage.

    parse/validate ─▶ ONE session: (idempotency check) ─▶ lookup ─▶ decide ─▶
    bericht + beslissingen + signaleringen + outbox rows ─▶ commit ─▶ receipt ─▶ wake relay

(A remote BRP lookup is the exception: the session's read transaction ends before it.)

Nothing is acknowledged before it is stored: the receipt is only returned after the commit.
Refused messages are stored too (afwijzingen), with their raw bytes and every reason.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.derived import on_receipt
from koppelpunt.errors import ConflictError, InvalidMessageError
from koppelpunt.kafka.admin import topic_for
from koppelpunt.kafka.publisher import cloudevent_headers
from koppelpunt.model import Filtered, Forwarded, Invalid, Signalering, Soort, ValidationIssue
from koppelpunt.pipeline import run
from koppelpunt.pipeline.parse import parse_message
from koppelpunt.pipeline.render import render_signalering
from koppelpunt.runtime import Runtime
from koppelpunt.store import berichten, outbox, verwerkingenlog
from koppelpunt.store.berichten import BeslissingRow, StoredBericht
from koppelpunt.store.outbox import NewSignalering

log = structlog.get_logger(__name__)

CE_SOURCE = "urn:vva:koppelpunt-gemeenten"
CE_TYPE_PREFIX = "nl.vva.signalering."
DATASCHEMA = "urn:vva:signalering:1"


@dataclass(frozen=True, slots=True)
class Received:
    status_code: int  # 202 new, 200 identical resend
    receipt: dict[str, Any]


def issue_json(issue: ValidationIssue) -> dict[str, Any]:
    """One validation issue as JSON for problem+json `fouten` (Dutch camelCase)."""
    return {
        "reden": issue.reason,
        "regel": issue.line,
        "kolom": issue.column,
        "locatie": issue.path,
    }


# The topic per (prefix, gemeentecode), validated once: every signalering needs one, and there
# are 342 gemeenten. A ValueError (not a gemeentecode) is raised each time: it is not cached.
_topic_for = functools.lru_cache(maxsize=4096)(topic_for)


def to_outbox(runtime: Runtime, s: Signalering, bericht_pk: int | None) -> NewSignalering:
    """Render a signalering and its CloudEvents headers exactly as they will be published."""
    headers = cloudevent_headers(
        ce_id=s.signalering_id,
        ce_type=CE_TYPE_PREFIX + s.type.value,
        ce_source=CE_SOURCE,
        ce_time=s.aangemaakt,
        extra={"ce_dataschema": DATASCHEMA},
    )
    return NewSignalering(
        signalering_id=s.signalering_id,
        type=s.type.value,
        gemeentecode=s.gemeentecode,
        bsn=s.bsn,
        topic=_topic_for(runtime.settings.topic_prefix, s.gemeentecode),
        payload=render_signalering(s),
        headers=[(name, value.decode("utf-8")) for name, value in headers],
        created_at=s.aangemaakt,
        bericht_pk=bericht_pk,
    )


def beslissing_rows(verwerking: run.Verwerking, rules_version: str) -> list[BeslissingRow]:
    rows: list[BeslissingRow] = []
    for o in verwerking.outcomes:
        if o.parked:
            rows.append(
                BeslissingRow(o.index, "geparkeerd", None, None, None, rules_version, o.bsn)
            )
        elif isinstance(o.decision, Forwarded):
            rows.append(
                BeslissingRow(
                    o.index,
                    "doorgestuurd",
                    None,
                    None,
                    o.decision.gemeentecode,
                    rules_version,
                    o.bsn,
                )
            )
        elif isinstance(o.decision, Filtered):
            rows.append(
                BeslissingRow(
                    o.index,
                    "gefilterd",
                    o.decision.reden.value,
                    o.decision.details,
                    None,
                    rules_version,
                    o.bsn,
                )
            )
    for r in verwerking.afgewezen:
        rows.append(
            BeslissingRow(r.index, "afgewezen", "inhoud", r.reden, None, rules_version, None)
        )
    return rows


async def record_refusal(
    runtime: Runtime,
    *,
    sender: str | None,
    soort: Soort | None,
    status_code: int,
    reasons: list[dict[str, Any]],
    raw: bytes | None,
    content_type: str | None,
    bericht_id: str | None = None,
) -> None:
    """Keep a refused message with its raw bytes and reasons, for operators.

    Also used by the HTTP layer for refusals decided before parsing (413, 415): nothing
    received goes unrecorded.
    """
    async with runtime.sessions.begin() as session:
        await berichten.add_afwijzing(
            session,
            received_at=runtime.clock(),
            sender=sender,
            soort=soort.value if soort else None,
            bericht_id=bericht_id,
            status_code=status_code,
            reasons=reasons,
            raw=raw,
            content_type=content_type,
        )


async def _reject(
    runtime: Runtime,
    *,
    sender: str,
    soort: Soort,
    bericht_id: str | None,
    status_code: int,
    reasons: list[dict[str, Any]],
    raw: bytes | None,
    content_type: str | None,
) -> None:
    """Record a refusal of a parsed or parse-attempted message, and count it."""
    await record_refusal(
        runtime,
        sender=sender,
        soort=soort,
        status_code=status_code,
        reasons=reasons,
        raw=raw,
        content_type=content_type,
        bericht_id=bericht_id,
    )
    runtime.metrics.berichten.labels(
        soort.value, "invalid" if status_code == 400 else "conflict"
    ).inc()


def _same_or_conflict(existing: StoredBericht, sha256: str, sender: str) -> Received:
    if existing.sha256 == sha256 and existing.sender == sender:
        return Received(200, existing.receipt)
    raise ConflictError(
        f"berichtId {existing.bericht_id} is al ontvangen met een andere inhoud",
        berichtId=existing.bericht_id,
    )


async def receive(
    runtime: Runtime,
    body: bytes,
    soort: Soort,
    sender: str,
    content_type: str | None = None,
    trace_id: str | None = None,
) -> Received:
    """Process one message end to end (up to the outbox); raise for refusals."""
    received_at = runtime.clock()
    sha256 = hashlib.sha256(body).hexdigest()
    outcome = parse_message(body, soort, runtime.schemas)
    if isinstance(outcome, Invalid):
        fouten = [issue_json(i) for i in outcome.issues]
        await _reject(
            runtime,
            sender=sender,
            soort=soort,
            bericht_id=outcome.bericht_id,
            status_code=400,
            reasons=fouten,
            raw=body,
            content_type=content_type,
        )
        log.info(
            "bericht_rejected",
            soort=soort.value,
            berichtId=outcome.bericht_id,
            fouten=len(fouten),
            hostile=outcome.hostile,
        )
        raise InvalidMessageError(
            f"het bericht is ongeldig ({len(fouten)} fout(en)); er is niets van verwerkt",
            fouten=fouten,
        )
    bericht = outcome.bericht
    structlog.contextvars.bind_contextvars(berichtId=bericht.bericht_id)
    try:
        # One session, so one pooled connection, per message: idempotency check, lookup (when
        # the lookup reads the local register) and writes. The check comes first, so a resend
        # is answered before any lookup. The berichtId's unique index still decides a race
        # between two deliveries (IntegrityError below). On SQLite the reads take no lock
        # (the driver begins the transaction at the first INSERT); on PostgreSQL they run in
        # the same READ COMMITTED transaction, which sees every commit up to each statement.
        lookup = runtime.lookup
        async with runtime.sessions() as session:
            existing = await berichten.find_bericht(session, bericht.bericht_id)
            if existing is None:
                keys = run.lookups_needed(outcome, runtime.rules)
                lookup_started = runtime.clock()
                if lookup.shares_session:
                    found = await lookup.lookup(keys, session)
                else:
                    # A remote lookup (HTTP): no transaction stays open while it runs.
                    await session.commit()
                    found = await lookup.lookup(keys)
                now = runtime.clock()
                # A message without a W3C traceparent gets its own trace id (verwerkingenlog).
                trace_id = trace_id or verwerkingenlog.new_trace_id()
                verwerking = run.decide(outcome, runtime.rules, runtime.gemeenten, found, now)
                try:
                    receipt, signaleringen, inserted = await _store(
                        session,
                        runtime,
                        verwerking,
                        found,
                        soort=soort,
                        sender=sender,
                        sha256=sha256,
                        raw=body,
                        trace_id=trace_id,
                        received_at=received_at,
                        lookup_started=lookup_started,
                        now=now,
                    )
                    await session.commit()
                except IntegrityError:
                    # Lost a race with a concurrent identical berichtId: answer as a resend.
                    await session.rollback()
                    existing = await berichten.find_bericht(session, bericht.bericht_id)
                    if existing is None:
                        raise
        if existing is not None:
            return await _resend(runtime, existing, sha256, sender, soort, body, content_type)
        _count(runtime, verwerking, signaleringen, inserted, soort)
        if inserted:
            runtime.on_outbox()
        log.info(
            "bericht_accepted",
            soort=soort.value,
            records=receipt["aantalRecords"],
            signaleringen=len(inserted),
            afgewezen=len(verwerking.afgewezen),
        )
        return Received(202, receipt)
    finally:
        structlog.contextvars.unbind_contextvars("berichtId")


async def _store(
    session: AsyncSession,
    runtime: Runtime,
    verwerking: run.Verwerking,
    found: Mapping[run.LookupKey, run.LookupResult],
    *,
    soort: Soort,
    sender: str,
    sha256: str,
    raw: bytes,
    trace_id: str,
    received_at: datetime,
    lookup_started: datetime,
    now: datetime,
) -> tuple[dict[str, Any], tuple[Signalering, ...], list[str]]:
    """Bericht, beslissingen, pupil state, signaleringen, outbox rows and verwerkingenlog lines,
    in the caller's transaction; returns the receipt, the signaleringen and the ids inserted."""
    bericht_id = verwerking.bericht.bericht_id
    # The receipt is written by the INSERT itself, counting every signalering of the decision
    # as new; only when some were stored before (deterministic ids: a derived signalering
    # already sent) or derived ones were added is it corrected, in this transaction.
    expected = len({s.signalering_id for s in verwerking.signaleringen})
    receipt = run.receipt(verwerking, expected)
    pk = await berichten.add_bericht(
        session,
        bericht_id=bericht_id,
        soort=soort.value,
        sender=sender,
        sha256=sha256,
        raw=raw,
        received_at=now,
        receipt=receipt,
        trace_id=trace_id,
    )
    await berichten.add_beslissingen(
        session, pk, beslissing_rows(verwerking, runtime.rules.version)
    )
    derived = await on_receipt(session, runtime, verwerking, now, bericht_pk=pk)
    signaleringen = (*verwerking.signaleringen, *derived.signaleringen)
    inserted = await outbox.add_signaleringen(
        session, [to_outbox(runtime, s, pk) for s in signaleringen]
    )
    if len(inserted) != expected:
        receipt = run.receipt(verwerking, len(inserted))
        await berichten.set_receipt(session, pk, receipt)
    await verwerkingenlog.log_receive(
        session,
        runtime.settings,
        verwerking,
        found,
        trace_id=trace_id,
        bericht_id=bericht_id,
        sender=sender,
        received_at=received_at,
        lookup_started=lookup_started,
        decided_at=now,
    )
    return receipt, signaleringen, inserted


async def _resend(
    runtime: Runtime,
    existing: StoredBericht,
    sha256: str,
    sender: str,
    soort: Soort,
    body: bytes,
    content_type: str | None,
) -> Received:
    try:
        received = _same_or_conflict(existing, sha256, sender)
    except ConflictError as exc:
        await _reject(
            runtime,
            sender=sender,
            soort=soort,
            bericht_id=existing.bericht_id,
            status_code=409,
            reasons=[{"reden": exc.detail}],
            raw=body,
            content_type=content_type,
        )
        raise
    runtime.metrics.berichten.labels(soort.value, "duplicate").inc()
    log.info("bericht_resent", soort=soort.value)
    return received


def _count(
    runtime: Runtime,
    verwerking: run.Verwerking,
    signaleringen: Sequence[Signalering],
    inserted: list[str],
    soort: Soort,
) -> None:
    m = runtime.metrics
    m.berichten.labels(soort.value, "accepted").inc()
    # Counted per outcome first, then one labels().inc(n) each: labels() is slow per record.
    outcomes: dict[str, int] = {}
    for o in verwerking.outcomes:
        decision = o.decision
        if isinstance(decision, Forwarded):
            outcome = "doorgestuurd"
        elif isinstance(decision, Filtered):
            outcome = f"gefilterd:{decision.reden.value}"
        elif o.parked:
            outcome = "geparkeerd"
        else:
            continue
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    for outcome, n in outcomes.items():
        m.records.labels(soort.value, outcome).inc(n)
    if verwerking.afgewezen:
        m.records.labels(soort.value, "afgewezen").inc(len(verwerking.afgewezen))
    m.count_created(signaleringen, inserted)
