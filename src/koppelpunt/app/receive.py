"""Receive one inbound message: the adapter that wires the pure pipeline to storage.

    parse/validate ─▶ ONE session: (idempotency check) ─▶ lookup ─▶ decide ─▶ lock ─▶
    pupil state read and derived ─▶ bericht with its final receipt + beslissingen + pupil
    state + signaleringen + outbox rows ─▶ commit ─▶ receipt ─▶ wake relay

(A remote BRP lookup is the exception: the session's read transaction ends before it.)

There is one path: `_store_group` stores a group of messages in one transaction. Small
messages take it together: messages parsed while a transaction runs wait for the next one,
which does each step once for all of them (group commit, group_commit.py; docs/scaling.md).
A message larger than GROUP_MAX_RECORDS, or any message with the group commit off, is a
group of one (`_receive_one`).

Nothing is acknowledged before it is stored: the receipt is only returned after the commit.
Refused messages are stored too (afwijzingen), with their raw bytes and every reason.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from koppelpunt.app.derived import derive_group, write_derived
from koppelpunt.app.group_commit import DEFERRED, Deferred, GroupCommit
from koppelpunt.errors import ConflictError, InvalidMessageError, ServiceUnavailableError
from koppelpunt.masking import mask_json
from koppelpunt.model import (
    AanmeldstatusRecord,
    Filtered,
    Forwarded,
    Invalid,
    Parsed,
    Signalering,
    Soort,
    ValidationIssue,
)
from koppelpunt.off_loop import records_in, run_pure
from koppelpunt.origin import Origin
from koppelpunt.pipeline import run
from koppelpunt.pipeline.envelope import (
    BeslissingRow,
    NewSignalering,
    beslissing_rows,
    to_outbox,
)
from koppelpunt.pipeline.parse import parse_message
from koppelpunt.runtime import Runtime
from koppelpunt.store import berichten, leerlingen, outbox, verwerkingenlog
from koppelpunt.store.berichten import NewBericht, StoredBericht
from koppelpunt.store.db import begin_write

log = structlog.get_logger(__name__)


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
    received goes unrecorded. The reasons are stored masked (koppelpunt.masking).
    """
    async with runtime.sessions.begin() as session:
        await berichten.add_afwijzing(
            session,
            received_at=runtime.clock(),
            sender=sender,
            soort=soort.value if soort else None,
            bericht_id=bericht_id,
            status_code=status_code,
            reasons=mask_json(reasons),
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


# Messages up to this many records go through the group commit; a larger one already shares
# its fixed cost (statements, commit) over many records and keeps a transaction of its own.
GROUP_MAX_RECORDS = 100


@dataclass(frozen=True, slots=True)
class _Pending:
    """A parsed, valid message on its way to the database."""

    parsed: Parsed
    soort: Soort
    sender: str
    sha256: str
    body: bytes
    trace_id: str | None
    received_at: datetime
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class _Stored:
    """A message stored by this delivery: its receipt and what it caused."""

    receipt: dict[str, Any]
    verwerking: run.Verwerking
    signaleringen: tuple[Signalering, ...]
    inserted: list[str]


async def receive(
    runtime: Runtime,
    body: bytes,
    soort: Soort,
    sender: str,
    content_type: str | None = None,
    trace_id: str | None = None,
    origin: Origin | None = None,
) -> Received:
    """Process one message end to end (up to the outbox); raise for refusals. `origin` (the
    sender's OIN and the transaction id) is stored with the message and its log lines."""
    received_at = runtime.clock()
    sha256 = hashlib.sha256(body).hexdigest()
    # A large body is parsed in a thread, so the loop keeps answering meanwhile (off_loop.py).
    outcome = await run_pure(records_in(body), parse_message, body, soort, runtime.schemas)
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
    pending = _Pending(outcome, soort, sender, sha256, body, trace_id, received_at, origin)
    structlog.contextvars.bind_contextvars(berichtId=outcome.bericht.bericht_id)
    try:
        size = len(outcome.bericht.records) + len(outcome.afgewezen)
        group_size = runtime.settings.receive_group_size
        if group_size > 1 and size <= GROUP_MAX_RECORDS:
            stored = await _group_commit(runtime, group_size).submit(pending)
        else:
            stored = await _receive_one(runtime, pending)
            if isinstance(stored, _Stored) and stored.inserted:
                runtime.on_outbox()
        if isinstance(stored, StoredBericht):
            return await _resend(runtime, stored, sha256, sender, soort, body, content_type)
        _count(runtime, stored.verwerking, stored.signaleringen, stored.inserted, soort)
        log.info(
            "bericht_accepted",
            soort=soort.value,
            records=stored.receipt["aantalRecords"],
            signaleringen=len(stored.inserted),
            afgewezen=len(stored.verwerking.afgewezen),
        )
        return Received(202, stored.receipt)
    finally:
        structlog.contextvars.unbind_contextvars("berichtId")


def _group_commit(runtime: Runtime, size: int) -> GroupCommit[_Pending, _Stored | StoredBericht]:
    group = runtime.group_commit
    if group is None:
        group = runtime.group_commit = GroupCommit(functools.partial(_receive_group, runtime), size)
    return group


async def _receive_one(runtime: Runtime, pending: _Pending) -> _Stored | StoredBericht:
    """One message in a transaction of its own: a group of one (_store_group); the stored
    message if it was received before."""
    (result,) = await _store_group(runtime, [pending])
    # A group of one is never deferred (its first message always takes its claims) and
    # _store_group raises rather than returning an exception.
    assert isinstance(result, _Stored | StoredBericht)
    return result


async def _lookup(
    runtime: Runtime, session: AsyncSession, keys: list[run.LookupKey]
) -> Mapping[run.LookupKey, run.LookupResult]:
    lookup = runtime.lookup
    if lookup.shares_session:
        return await lookup.lookup(keys, session)
    # A remote lookup (HTTP): no transaction stays open while it runs.
    await session.commit()
    return await lookup.lookup(keys)


async def _receive_group(
    runtime: Runtime, group: list[_Pending]
) -> list[_Stored | StoredBericht | BaseException | Deferred]:
    """The group commit's work: the messages in one transaction; if that fails (a berichtId
    stored meanwhile by another process, the database down), each in a transaction of its own,
    so one message's fault is only its own."""
    results: list[_Stored | StoredBericht | BaseException | Deferred]
    try:
        results = await _store_group(runtime, group)
        stored = sum(isinstance(r, _Stored) for r in results)
        if stored:
            runtime.metrics.group_commit_size.observe(stored)
    except Exception as exc:
        # Only the exception's type: a database error's text can hold statement parameters.
        log.warning(
            "group_commit_retried_one_by_one", berichten=len(group), error=type(exc).__name__
        )
        results = []
        for pending in group:
            structlog.contextvars.bind_contextvars(berichtId=pending.parsed.bericht.bericht_id)
            try:
                results.append(await _receive_one(runtime, pending))
            except Exception as fault:
                results.append(fault)
            finally:
                structlog.contextvars.unbind_contextvars("berichtId")
    if any(isinstance(r, _Stored) and r.inserted for r in results):
        runtime.on_outbox()
    return results


class _Claims:
    """The pupils (BSNs) and aanmeldingen of the messages taken into a group so far.

    A group only takes messages about different pupils and aanmeldingen: then each message
    is derived on its pupils' state exactly as stored, as it would be on its own. A message
    about a pupil or aanmelding already in the group waits for the next group, so that it
    sees what the earlier one stored.
    """

    def __init__(self) -> None:
        self._bsns: set[str] = set()
        self._aanmeldingen: set[tuple[str, str]] = set()

    def take(self, parsed: Parsed) -> bool:
        """Claim the message's pupils and aanmeldingen, unless one is claimed already."""
        bsns: set[str] = set()
        aanmeldingen: set[tuple[str, str]] = set()
        for r in parsed.bericht.records:
            if r.leerling.bsn is not None:
                bsns.add(r.leerling.bsn)
            if isinstance(r, AanmeldstatusRecord):
                aanmeldingen.add((r.instelling_brin, r.aanmelding_id))
        if not bsns.isdisjoint(self._bsns) or not aanmeldingen.isdisjoint(self._aanmeldingen):
            return False
        self._bsns |= bsns
        self._aanmeldingen |= aanmeldingen
        return True


async def _store_group(
    runtime: Runtime, group: list[_Pending]
) -> list[_Stored | StoredBericht | BaseException | Deferred]:
    """Store the group's new messages in one transaction: a result per message, or DEFERRED
    for the ones that wait for the next group (see _Claims). A message received alone is a
    group of one (_receive_one).

    One session, so one pooled connection, per group: idempotency check, lookup (when the
    lookup reads the local register) and writes. The check comes first, so a resend is
    answered before any lookup. The berichtId's unique index still decides a race between
    two deliveries (IntegrityError). On SQLite the check and the lookup take no lock (the write
    transaction begins after them, _write); on PostgreSQL they run in the same READ COMMITTED
    transaction, which sees every commit up to each statement.
    """
    results: list[_Stored | StoredBericht | BaseException | Deferred] = [DEFERRED] * len(group)
    async with runtime.sessions() as session:
        existing = await berichten.find_berichten(
            session, [p.parsed.bericht.bericht_id for p in group]
        )
        fresh: list[int] = []
        seen: set[str] = set()
        claims = _Claims()
        for n, pending in enumerate(group):
            bericht_id = pending.parsed.bericht.bericht_id
            if bericht_id in existing:
                results[n] = existing[bericht_id]
            elif bericht_id in seen or not claims.take(pending.parsed):
                # This one waits for the next group, and so does every one after it: the
                # order of arrival is kept. (The same berichtId twice: the next group finds
                # the first one stored and answers this one as its resend.)
                break
            else:
                seen.add(bericht_id)
                fresh.append(n)
        if not fresh:
            return results
        keys: dict[run.LookupKey, None] = {}
        for n in fresh:
            keys.update(dict.fromkeys(run.lookups_needed(group[n].parsed, runtime.rules)))
        lookup_started = runtime.clock()
        found = await _lookup(runtime, session, list(keys))
        now = runtime.clock()
        try:
            stored = await _store(
                session, runtime, [group[n] for n in fresh], found, lookup_started, now
            )
            await session.commit()
        except IntegrityError:
            if len(group) > 1:
                raise  # _receive_group retries each message as a group of one
            # Lost a race with a concurrent identical berichtId: answer as a resend.
            await session.rollback()
            bericht_id = group[0].parsed.bericht.bericht_id
            existing_one = await berichten.find_bericht(session, bericht_id)
            if existing_one is None:
                raise
            return [existing_one]
    for n, item in zip(fresh, stored, strict=True):
        results[n] = item
    return results


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The rows of one message or a group that do not depend on the pupils' stored state,
    made before the transaction takes any lock (SQLite: the write lock, PostgreSQL: the pupils'):
    a concurrent writer waits only for the part that needs the stored state."""

    decided: list[tuple[_Pending, run.Verwerking]]
    expected: list[int]  # per message: its distinct signalering ids
    new_berichten: list[NewBericht]
    beslissingen: list[list[BeslissingRow]]
    # the decision's signaleringen rendered (bericht_pk None), by id() of the Signalering
    rendered: dict[int, NewSignalering]
    log_rows: list[tuple[Any, ...]]


def _prepare(
    runtime: Runtime,
    messages: list[_Pending],
    found: Mapping[run.LookupKey, run.LookupResult],
    lookup_started: datetime,
    now: datetime,
) -> _Prepared:
    """Decide the messages and make their rows: pure (no session), so a large message's
    share runs in a thread (off_loop.py)."""
    rules_version = runtime.rules.version
    decided = [
        (p, run.decide(p.parsed, runtime.rules, runtime.gemeenten, found, now)) for p in messages
    ]
    # The receipt counting every signalering of the decision as new: _write makes another one
    # only when some were stored before (deterministic ids) or derived ones are added.
    expected = [len({s.signalering_id for s in v.signaleringen}) for _, v in decided]
    receipts = [run.receipt(v, n) for (_, v), n in zip(decided, expected, strict=True)]
    # A message without a W3C traceparent gets its own trace id (verwerkingenlog).
    trace_ids = [p.trace_id or verwerkingenlog.new_trace_id() for p, _ in decided]
    new_berichten = [
        NewBericht(
            bericht_id=v.bericht.bericht_id,
            soort=p.soort.value,
            sender=p.sender,
            sha256=p.sha256,
            raw=p.body,
            received_at=now,
            receipt=receipt,
            trace_id=trace_id,
            origin=p.origin,
        )
        for (p, v), receipt, trace_id in zip(decided, receipts, trace_ids, strict=True)
    ]
    lines: list[verwerkingenlog.LogLine] = []
    for (pending, verwerking), trace_id in zip(decided, trace_ids, strict=True):
        lines += verwerkingenlog.receive_lines(
            verwerking,
            found,
            trace_id=trace_id,
            bericht_id=verwerking.bericht.bericht_id,
            sender=pending.sender,
            origin=pending.origin,
            received_at=pending.received_at,
            lookup_started=lookup_started,
            decided_at=now,
        )
    prefix = runtime.settings.topic_prefix
    return _Prepared(
        decided=decided,
        expected=expected,
        new_berichten=new_berichten,
        beslissingen=[beslissing_rows(v, rules_version) for _, v in decided],
        rendered={id(s): to_outbox(prefix, s, None) for _, v in decided for s in v.signaleringen},
        log_rows=verwerkingenlog.line_rows(
            verwerkingenlog.LogCipher.from_settings(runtime.settings), lines
        ),
    )


async def _store(
    session: AsyncSession,
    runtime: Runtime,
    messages: list[_Pending],
    found: Mapping[run.LookupKey, run.LookupResult],
    lookup_started: datetime,
    now: datetime,
) -> list[_Stored]:
    """Decide the messages and store their berichten, beslissingen, pupil state,
    signaleringen, outbox rows and verwerkingenlog lines (one message or a group), in the
    caller's transaction, in arrival order.

    Writes what storing the messages one after the other would (a message is derived on the
    state the ones before it left; a signalering id two messages derive is stored for the
    first), with one statement per table for the whole group.

    The decisions, the rendering, the encryption and the verwerkingenlog rows do not depend
    on the stored state: they are made before any lock is taken (_prepare), so a concurrent
    message waits only for the part that needs that state (_write). For a large message or
    group that pure part runs in a thread (off_loop.py). The caller commits.
    """
    records = sum(len(p.parsed.bericht.records) for p in messages)
    prepared = await run_pure(records, _prepare, runtime, messages, found, lookup_started, now)
    return await _write(session, runtime, prepared, now)


async def _write(
    session: AsyncSession, runtime: Runtime, prepared: _Prepared, now: datetime
) -> list[_Stored]:
    """_store's writes (the caller commits).

    Each receipt is written once, by its message's INSERT, with its final count: the pupils'
    state is read and derived, and the signalering ids stored before are looked up, before
    the messages are stored. That needs no message pk; the rows that refer to a message (its
    beslissingen, pupil state, signaleringen) come after it. What is read stays as read until
    the commit: on SQLite the transaction holds the write lock from its first statement (the
    verwerkingenlog rows' INSERT, or db.begin_write without any); on PostgreSQL every writer
    of a pupil's state or signaleringen (whose ids contain the BSN) holds that pupil's lock
    (derive_group: leerlingen.lock_pupils).
    """
    decided = prepared.decided
    if prepared.log_rows:
        # The transaction's first statement is a write: on SQLite it takes the write lock
        # (the driver begins the transaction there), before anything is read for the writes.
        await verwerkingenlog.insert_line_rows(session, prepared.log_rows)
    else:
        await begin_write(session)
    # From here on the group's pupils are locked until the commit (PostgreSQL).
    derived = await derive_group(session, runtime, [v for _, v in decided], now)
    signaleringen = [
        (*v.signaleringen, *d.signaleringen)
        for (_, v), d in zip(decided, derived.results, strict=True)
    ]
    stored_before = await leerlingen.existing_signalering_ids(
        session, [s.signalering_id for made in signaleringen for s in made]
    )
    rendered = prepared.rendered
    prefix = runtime.settings.topic_prefix
    # The ids each message stores: its own, in order, unless stored before or by an earlier
    # message of the group (what add_signaleringen's ON CONFLICT DO NOTHING would skip).
    taken = set(stored_before)
    inserted: list[list[str]] = []
    new: list[tuple[int, Signalering]] = []
    new_berichten = list(prepared.new_berichten)
    for n, ((_, verwerking), made) in enumerate(zip(decided, signaleringen, strict=True)):
        mine: list[str] = []
        for s in made:
            if s.signalering_id not in taken:
                taken.add(s.signalering_id)
                mine.append(s.signalering_id)
                new.append((n, s))
        inserted.append(mine)
        if len(mine) != prepared.expected[n]:
            receipt = run.receipt(verwerking, len(mine))
            new_berichten[n] = replace(new_berichten[n], receipt=receipt)
    pks = await berichten.add_berichten(session, new_berichten)
    await berichten.add_beslissingen_of(session, list(zip(pks, prepared.beslissingen, strict=True)))
    await write_derived(session, derived, pks, now)
    new_signaleringen: list[NewSignalering] = []
    for n, s in new:
        item = rendered.get(id(s))
        # Derived signaleringen depend on the stored state: rendered only now.
        new_signaleringen.append(
            to_outbox(prefix, s, pks[n]) if item is None else replace(item, bericht_pk=pks[n])
        )
    added = await outbox.add_signaleringen(session, new_signaleringen)
    if len(added) != len(new_signaleringen):
        # A writer that held no lock stored one of these ids meanwhile: the receipts would
        # count it. Rolled back; the group is retried message by message (_receive_group).
        raise ReceiptRaceError(
            "het bericht kon niet worden opgeslagen door een gelijktijdige verwerking; "
            "er is niets van bewaard, stuur het opnieuw"
        )
    return [
        _Stored(bericht.receipt, verwerking, made, mine)
        for bericht, (_, verwerking), made, mine in zip(
            new_berichten, decided, signaleringen, inserted, strict=True
        )
    ]


class ReceiptRaceError(ServiceUnavailableError):
    """A signalering id counted as new by a receipt was stored by another transaction before
    this one's INSERT: that writer held neither SQLite's write lock nor the pupil's lock (a
    fault). Nothing of the transaction is kept and the sender is asked to retry (503), which
    then counts it as stored before."""


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
