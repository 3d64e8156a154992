"""AVG art. 15 inzage: everything stored about one person, and every disclosure of it.

Collects, for one BSN: the decisions on the records that carried it (with the message they came
in; records parked because the woongemeente lookup was down are listed apart as well), the
signaleringen made about the person and whether and when each was published to which gemeente
(the disclosures), the pupil state (prognoses per schooljaar, aanmeldingen with their full
status history, the gemeente last signalled), the local woonregister rows, and the
verwerkingenlog lines (found through the blind index). Each inzage is itself logged, with who
asked.

Disclosures come from two places. A stored signalering that was published is one. The
verwerkingenlog adds what the signaleringen table cannot show: every re-publication by a
replay (`publiceren` lines with a replayId: topic, time, operator), and publications of
signaleringen that retention has since purged. Log lines keep a keyed reference of the
signalering id, not the id (store/verwerkingenlog.py); it is matched here against the person's
stored signaleringen under every configured key. Once a signalering is purged only its type,
gemeente, topic and time remain.

Not searched: the raw bytes of refused messages (afwijzingen) and of records refused on content
(a BSN failing the elfproef is not a BSN of anyone); see docs/beheer.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppelpunt.config import Settings
from koppelpunt.errors import KoppelpuntError
from koppelpunt.pipeline.checks import is_valid_bsn
from koppelpunt.store import inzage as queries
from koppelpunt.store import verwerkingenlog
from koppelpunt.store.parked import GEPARKEERD
from koppelpunt.store.verwerkingenlog import LogCipher, StoredLine


class InvalidBsnError(KoppelpuntError, ValueError):
    """The BSN of an inzage request is not 9 digits passing the elfproef."""

    status = 400
    code = "invalid-bsn"
    title = "Ongeldig BSN"


@dataclass(frozen=True, slots=True)
class Beslissing:
    bericht_id: str
    soort: str
    afzender: str
    ontvangen_op: datetime
    record_index: int
    uitkomst: str
    reden: str | None
    gemeentecode: str | None


@dataclass(frozen=True, slots=True)
class Verstrekking:
    """A signalering about the person and, once published, its disclosure to a gemeente."""

    signalering_id: str
    type: str
    gemeentecode: str
    topic: str
    aangemaakt: datetime
    gepubliceerd_op: datetime | None


@dataclass(frozen=True, slots=True)
class GelogdeVerstrekking:
    """A disclosure known from the verwerkingenlog: a replay's re-publication, or the
    publication of a signalering that has since been purged (then `signalering_id` is None)."""

    type: str | None
    gemeentecode: str | None
    topic: str | None
    verstrekt_op: datetime
    signalering_id: str | None
    replay_id: str | None
    actor: str | None


@dataclass(frozen=True, slots=True)
class Woonadres:
    gemeentecode: str
    geldig_vanaf: date | None
    bijgewerkt_op: datetime


@dataclass(frozen=True, slots=True)
class Prognose:
    """A prognose (VO → MBO) about the person, one per schooljaar."""

    schooljaar: str
    geboortedatum: date
    hoogste_diploma: str | None
    brin: str
    vestiging: str | None
    onderwijssoort: str
    verzonden: datetime
    bericht_id: str | None


@dataclass(frozen=True, slots=True)
class AanmeldStatus:
    status: str
    statusdatum: date
    buiten_flow: bool
    ontvangen_op: datetime
    bericht_id: str | None


@dataclass(frozen=True, slots=True)
class Aanmelding:
    """An aanmelding at an MBO instelling with its whole status history (receipt order)."""

    instelling_brin: str
    aanmelding_id: str
    geboortedatum: date
    hoogste_diploma: str | None
    crebo: str
    niveau: int
    leerweg: str
    status: str
    statusdatum: date
    buiten_flow: bool
    bijgewerkt_op: datetime
    statussen: list[AanmeldStatus]


@dataclass(frozen=True, slots=True)
class LeerlingGemeente:
    """The gemeente that received the latest signalering about the person (to notice moves)."""

    gemeentecode: str
    peildatum: date
    bijgewerkt_op: datetime


@dataclass(frozen=True, slots=True)
class Inzage:
    bsn: str
    opgevraagd_op: datetime
    opgevraagd_door: str
    beslissingen: list[Beslissing]
    signaleringen: list[Verstrekking]
    woonregister: list[Woonadres]
    verwerkingen: list[StoredLine]
    prognoses: list[Prognose]
    aanmeldingen: list[Aanmelding]
    leerling_gemeente: LeerlingGemeente | None
    # Disclosures only the verwerkingenlog shows (replays, purged signaleringen), and the
    # signalering id behind each log line's signaleringRef that is still stored.
    gelogde_verstrekkingen: list[GelogdeVerstrekking] = field(default_factory=list)
    signalering_ids: dict[str, str] = field(default_factory=dict)

    @property
    def geparkeerd(self) -> list[Beslissing]:
        """Records waiting for the woongemeente lookup (retried; see `koppelpunt parked`)."""
        return [b for b in self.beslissingen if b.uitkomst == GEPARKEERD]

    @property
    def verstrekkingen(self) -> list[Verstrekking]:
        """Publications: the stored signaleringen Kafka acknowledged for a gemeente topic
        (with gelogde_verstrekkingen: every disclosure)."""
        return [s for s in self.signaleringen if s.gepubliceerd_op is not None]

    def signalering_id_of(self, line: StoredLine) -> str | None:
        """The stored signalering a log line is about, if any (see the module docstring)."""
        ref = line.attributes.get("signaleringRef")
        return self.signalering_ids.get(ref) if isinstance(ref, str) else None


def check_bsn(bsn: str) -> str:
    bsn = bsn.strip()
    if not is_valid_bsn(bsn):
        raise InvalidBsnError("a BSN has 9 digits and passes the elfproef")
    return bsn


async def _collect(session: AsyncSession, cipher: LogCipher, bsn: str) -> dict[str, Any]:
    besl = await queries.beslissingen_of(session, bsn)
    sigs = await queries.signaleringen_of(session, bsn)
    woon = await queries.woonregister_of(session, bsn)
    return {
        **await _pupil_state(session, bsn),
        "beslissingen": [
            Beslissing(
                r.bericht_id,
                r.soort,
                r.sender,
                r.received_at,
                r.record_index,
                r.uitkomst,
                r.reden,
                r.gemeentecode,
            )
            for r in besl
        ],
        "signaleringen": [
            Verstrekking(
                r.signalering_id, r.type, r.gemeentecode, r.topic, r.created_at, r.published_at
            )
            for r in sigs
        ],
        "woonregister": [
            Woonadres(
                r.gemeentecode,
                None if r.geldig_vanaf == date(1, 1, 1) else r.geldig_vanaf,
                r.updated_at,
            )
            for r in woon
        ],
        "verwerkingen": await verwerkingenlog.find_by_bsn(session, cipher, bsn),
    }


def _logged_disclosures(
    cipher: LogCipher, signaleringen: list[Verstrekking], lines: list[StoredLine]
) -> tuple[list[GelogdeVerstrekking], dict[str, str]]:
    """The disclosures only the log shows, and signaleringRef -> stored signalering id."""
    ids = {
        ref: s.signalering_id
        for s in signaleringen
        for ref in cipher.signalering_refs(s.signalering_id)
    }
    found: list[GelogdeVerstrekking] = []
    for line in lines:
        if (
            line.name != verwerkingenlog.OP_PUBLICEREN
            or line.status_code != verwerkingenlog.STATUS_OK
        ):
            continue
        attributes = line.attributes
        ref = attributes.get("signaleringRef")
        signalering_id = ids.get(ref) if isinstance(ref, str) else None
        replay_id = attributes.get("replayId")
        if replay_id is None and signalering_id is not None:
            continue  # a publication the stored signalering already shows
        found.append(
            GelogdeVerstrekking(
                type=attributes.get("type"),
                gemeentecode=line.gemeentecode,
                topic=attributes.get("topic"),
                verstrekt_op=line.end_time,
                signalering_id=signalering_id,
                replay_id=replay_id,
                actor=line.actor,
            )
        )
    return found, ids


async def _pupil_state(session: AsyncSession, bsn: str) -> dict[str, Any]:
    """Issue 3's state about the person: prognoses, aanmeldingen with history, last gemeente."""
    prognoses = await queries.prognoses_of(session, bsn)
    rows = await queries.aanmeldingen_of(session, bsn)
    history: dict[tuple[str, str], list[AanmeldStatus]] = {
        (r.instelling_brin, r.aanmelding_id): [] for r in rows
    }
    if history:
        statussen = await queries.status_history_of(session, bsn)
        for h in statussen:
            history[(h.instelling_brin, h.aanmelding_id)].append(
                AanmeldStatus(h.status, h.statusdatum, h.buiten_flow, h.received_at, h.bericht_id)
            )
    gemeente = await queries.leerling_gemeente_of(session, bsn)
    return {
        "prognoses": [
            Prognose(
                p.schooljaar,
                p.geboortedatum,
                p.hoogste_diploma,
                p.brin,
                p.vestiging,
                p.onderwijssoort,
                p.verzonden,
                p.bericht_id,
            )
            for p in prognoses
        ],
        "aanmeldingen": [
            Aanmelding(
                r.instelling_brin,
                r.aanmelding_id,
                r.geboortedatum,
                r.hoogste_diploma,
                r.crebo,
                r.niveau,
                r.leerweg,
                r.status,
                r.statusdatum,
                r.buiten_flow,
                r.updated_at,
                history[(r.instelling_brin, r.aanmelding_id)],
            )
            for r in rows
        ],
        "leerling_gemeente": (
            LeerlingGemeente(gemeente.gemeentecode, gemeente.peildatum, gemeente.updated_at)
            if gemeente is not None
            else None
        ),
    }


async def run_inzage(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, bsn: str, actor: str
) -> Inzage:
    """Collect everything about `bsn` and log the inzage (who, when), in one transaction."""
    bsn = check_bsn(bsn)
    cipher = LogCipher.from_settings(settings)
    async with sessions.begin() as session:
        found = await _collect(session, cipher, bsn)
        found["gelogde_verstrekkingen"], found["signalering_ids"] = _logged_disclosures(
            cipher, found["signaleringen"], found["verwerkingen"]
        )
        await verwerkingenlog.log_operator_action(
            session,
            actor,
            "inzage",
            {
                "beslissingen": len(found["beslissingen"]),
                "signaleringen": len(found["signaleringen"]),
                "prognoses": len(found["prognoses"]),
                "aanmeldingen": len(found["aanmeldingen"]),
                "verwerkingen": len(found["verwerkingen"]),
            },
            settings=settings,
            bsn=bsn,
        )
    return Inzage(
        bsn=bsn,
        opgevraagd_op=datetime.now().astimezone(),
        opgevraagd_door=actor,
        **found,
    )


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_json(inzage: Inzage) -> dict[str, Any]:
    """The inzage as JSON (Dutch camelCase), as the CLI's --json and the endpoint return it."""
    return {
        "bsn": inzage.bsn,
        "opgevraagdOp": _iso(inzage.opgevraagd_op),
        "opgevraagdDoor": inzage.opgevraagd_door,
        "beslissingen": [
            {
                "berichtId": b.bericht_id,
                "soort": b.soort,
                "afzender": b.afzender,
                "ontvangenOp": _iso(b.ontvangen_op),
                "recordIndex": b.record_index,
                "uitkomst": b.uitkomst,
                "reden": b.reden,
                "gemeentecode": b.gemeentecode,
            }
            for b in inzage.beslissingen
        ],
        "signaleringen": [_verstrekking(s) for s in inzage.signaleringen],
        "verstrekkingen": [
            {
                "gemeentecode": v.gemeentecode,
                "type": v.type,
                "signaleringId": v.signalering_id,
                "topic": v.topic,
                "verstrektOp": _iso(v.verstrekt_op),
                "replayId": v.replay_id,
                "door": v.actor,
            }
            for v in _all_disclosures(inzage)
        ],
        "geparkeerd": [
            {
                "berichtId": b.bericht_id,
                "soort": b.soort,
                "ontvangenOp": _iso(b.ontvangen_op),
                "recordIndex": b.record_index,
            }
            for b in inzage.geparkeerd
        ],
        "prognoses": [
            {
                "schooljaar": p.schooljaar,
                "geboortedatum": _iso(p.geboortedatum),
                "hoogsteDiploma": p.hoogste_diploma,
                "brin": p.brin,
                "vestiging": p.vestiging,
                "onderwijssoort": p.onderwijssoort,
                "verzonden": _iso(p.verzonden),
                "berichtId": p.bericht_id,
            }
            for p in inzage.prognoses
        ],
        "aanmeldingen": [
            {
                "instellingBrin": a.instelling_brin,
                "aanmeldingId": a.aanmelding_id,
                "geboortedatum": _iso(a.geboortedatum),
                "hoogsteDiploma": a.hoogste_diploma,
                "crebo": a.crebo,
                "niveau": a.niveau,
                "leerweg": a.leerweg,
                "status": a.status,
                "statusdatum": _iso(a.statusdatum),
                "buitenFlow": a.buiten_flow,
                "bijgewerktOp": _iso(a.bijgewerkt_op),
                "statussen": [
                    {
                        "status": h.status,
                        "statusdatum": _iso(h.statusdatum),
                        "buitenFlow": h.buiten_flow,
                        "ontvangenOp": _iso(h.ontvangen_op),
                        "berichtId": h.bericht_id,
                    }
                    for h in a.statussen
                ],
            }
            for a in inzage.aanmeldingen
        ],
        "leerlingGemeente": (
            {
                "gemeentecode": inzage.leerling_gemeente.gemeentecode,
                "peildatum": _iso(inzage.leerling_gemeente.peildatum),
                "bijgewerktOp": _iso(inzage.leerling_gemeente.bijgewerkt_op),
            }
            if inzage.leerling_gemeente is not None
            else None
        ),
        "woonregister": [
            {
                "gemeentecode": w.gemeentecode,
                "geldigVanaf": _iso(w.geldig_vanaf),
                "bijgewerktOp": _iso(w.bijgewerkt_op),
            }
            for w in inzage.woonregister
        ],
        "verwerkingen": [
            {
                "traceId": v.trace_id,
                "operationId": v.operation_id,
                "parentOperationId": v.parent_operation_id,
                "naam": v.name,
                "status": v.status_code,
                "start": _iso(v.start_time),
                "eind": _iso(v.end_time),
                "verwerkingsactiviteit": v.verwerkingsactiviteit,
                "actor": v.actor,
                "gemeentecode": v.gemeentecode,
                "attributen": v.attributes,
                "signaleringId": inzage.signalering_id_of(v),
            }
            for v in inzage.verwerkingen
        ],
    }


def _all_disclosures(inzage: Inzage) -> list[GelogdeVerstrekking]:
    """Every disclosure, oldest first: stored publications and those only the log shows."""
    stored = [
        GelogdeVerstrekking(
            type=s.type,
            gemeentecode=s.gemeentecode,
            topic=s.topic,
            verstrekt_op=s.gepubliceerd_op,
            signalering_id=s.signalering_id,
            replay_id=None,
            actor=None,
        )
        for s in inzage.signaleringen
        if s.gepubliceerd_op is not None
    ]
    return sorted([*stored, *inzage.gelogde_verstrekkingen], key=lambda v: v.verstrekt_op)


def _verstrekking(s: Verstrekking) -> dict[str, Any]:
    return {
        "signaleringId": s.signalering_id,
        "type": s.type,
        "gemeentecode": s.gemeentecode,
        "topic": s.topic,
        "aangemaakt": _iso(s.aangemaakt),
        "gepubliceerdOp": _iso(s.gepubliceerd_op),
    }


def to_text(inzage: Inzage) -> str:
    """The inzage as plain text for an operator to read or attach to the answer."""
    out = [
        f"Inzage (AVG art. 15) voor BSN {inzage.bsn}",
        f"opgevraagd op {_iso(inzage.opgevraagd_op)} door {inzage.opgevraagd_door}",
        "",
    ]
    disclosures = _all_disclosures(inzage)
    out.append(f"Verstrekkingen aan gemeenten ({len(disclosures)}):")
    out += [
        f"  {_iso(v.verstrekt_op)}  {v.gemeentecode or '-'}  {v.type or '-'}  "
        f"({v.signalering_id or 'signalering verwijderd (bewaartermijn)'})"
        + (
            f"  replay {v.replay_id} naar {v.topic}" + (f" door {v.actor}" if v.actor else "")
            if v.replay_id
            else ""
        )
        for v in disclosures
    ] or ["  geen"]
    out += ["", f"Signaleringen ({len(inzage.signaleringen)}):"]
    out += [
        f"  {_iso(s.aangemaakt)}  {s.gemeentecode}  {s.type}  "
        + (
            f"gepubliceerd {_iso(s.gepubliceerd_op)}"
            if s.gepubliceerd_op
            else "nog niet gepubliceerd"
        )
        for s in inzage.signaleringen
    ] or ["  geen"]
    out += ["", f"Beslissingen over ontvangen records ({len(inzage.beslissingen)}):"]
    out += [
        f"  {_iso(b.ontvangen_op)}  {b.soort} {b.bericht_id} van {b.afzender} record "
        f"{b.record_index}: {b.uitkomst}"
        + (f" ({b.reden})" if b.reden else "")
        + (f" → {b.gemeentecode}" if b.gemeentecode else "")
        for b in inzage.beslissingen
    ] or ["  geen"]
    out += ["", f"Geparkeerde records, wachten op de woongemeente ({len(inzage.geparkeerd)}):"]
    out += [
        f"  {_iso(b.ontvangen_op)}  {b.soort} {b.bericht_id} record {b.record_index}"
        for b in inzage.geparkeerd
    ] or ["  geen"]
    out += ["", f"Prognoses ({len(inzage.prognoses)}):"]
    out += [
        f"  {p.schooljaar}  {p.onderwijssoort}  BRIN {p.brin}"
        + (f" vestiging {p.vestiging}" if p.vestiging else "")
        + f"  verzonden {_iso(p.verzonden)}"
        + (f"  ({p.bericht_id})" if p.bericht_id else "")
        for p in inzage.prognoses
    ] or ["  geen"]
    out += ["", f"Aanmeldingen ({len(inzage.aanmeldingen)}):"]
    for a in inzage.aanmeldingen:
        out.append(
            f"  {a.instelling_brin} {a.aanmelding_id}  crebo {a.crebo} niveau {a.niveau} "
            f"{a.leerweg}: {a.status} per {_iso(a.statusdatum)}"
            + ("  (buiten de flow)" if a.buiten_flow else "")
        )
        out += [
            f"    {_iso(h.statusdatum)}  {h.status}  ontvangen {_iso(h.ontvangen_op)}"
            + ("  (buiten de flow)" if h.buiten_flow else "")
            for h in a.statussen
        ]
    if not inzage.aanmeldingen:
        out.append("  geen")
    g = inzage.leerling_gemeente
    out += [
        "",
        "Laatst gesignaleerde gemeente:",
        f"  {g.gemeentecode} (peildatum {_iso(g.peildatum)})" if g else "  geen",
    ]
    out += ["", f"Woonregister ({len(inzage.woonregister)}):"]
    out += [
        f"  {w.gemeentecode} geldig vanaf {_iso(w.geldig_vanaf) or 'onbekend'}"
        for w in inzage.woonregister
    ] or ["  geen"]
    out += ["", f"Verwerkingenlog ({len(inzage.verwerkingen)}):"]
    out += [
        f"  {_iso(v.end_time)}  {v.name}  {v.status_code}  {v.verwerkingsactiviteit}  "
        f"trace {v.trace_id}" + (f"  door {v.actor}" if v.actor else "")
        for v in inzage.verwerkingen
    ] or ["  geen"]
    return "\n".join(out) + "\n"
