"""Frozen values passed between the pipeline stages.

Plain frozen dataclasses (not pydantic models): they are built once per record on the hot path
and never need validation of their own, because the XSD and the normaliser already did that.
Field names are English snake_case; the domain's own nouns stay Dutch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Soort(StrEnum):
    """The two kinds of inbound message."""

    PROGNOSE = "prognose"
    AANMELDSTATUS = "aanmeldstatus"


class Status(StrEnum):
    """The five legal statuses of an aanmelding (names are our choice, see domain.md)."""

    AANGEMELD = "AANGEMELD"
    ONDERWIJSOVEREENKOMST_AANGEBODEN = "ONDERWIJSOVEREENKOMST_AANGEBODEN"
    GEEN_INSCHRIJVING = "GEEN_INSCHRIJVING"
    INGETROKKEN = "INGETROKKEN"
    INGESCHREVEN = "INGESCHREVEN"


class SignaleringType(StrEnum):
    """What a gemeente is told. See docs/signaleringen.md for when and what each carries."""

    PROGNOSE = "PROGNOSE"
    AANMELDSTATUS = "AANMELDSTATUS"
    NIET_AANGEMELD = "NIET_AANGEMELD"
    GEEN_PLAATSING = "GEEN_PLAATSING"
    NIET_INGESCHREVEN = "NIET_INGESCHREVEN"
    VERHUISD = "VERHUISD"
    OVERDRACHT = "OVERDRACHT"


class FilterReden(StrEnum):
    """Why a valid record did not become a signalering (keys of the receipt's `gefilterd`)."""

    LEEFTIJD = "leeftijd"
    STARTKWALIFICATIE = "startkwalificatie"
    GEEN_BSN = "geenBsn"
    GEEN_WOONGEMEENTE = "geenWoongemeente"


# --- inbound records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leerling:
    """A pupil as identified by the sender: a BSN, or else a DUO onderwijsnummer."""

    bsn: str | None
    onderwijsnummer: str | None
    geboortedatum: date


@dataclass(frozen=True, slots=True)
class School:
    brin: str
    vestiging: str | None = None


@dataclass(frozen=True, slots=True)
class Opleiding:
    crebo: str
    niveau: int
    leerweg: str  # BOL | BBL


@dataclass(frozen=True, slots=True)
class PrognoseRecord:
    """One `<leerling>` of a prognose message; `index` is its 0-based position."""

    index: int
    leerling: Leerling
    onderwijssoort: str
    hoogste_diploma: str | None


@dataclass(frozen=True, slots=True)
class PrognoseBericht:
    bericht_id: str
    verzonden: datetime
    school: School
    schooljaar: str
    records: tuple[PrognoseRecord, ...]

    @property
    def soort(self) -> Soort:
        return Soort.PROGNOSE


@dataclass(frozen=True, slots=True)
class AanmeldstatusRecord:
    """One `<aanmelding>` of an aanmeldstatus message; `index` is its 0-based position."""

    index: int
    aanmelding_id: str
    leerling: Leerling
    instelling_brin: str
    opleiding: Opleiding
    status: Status
    statusdatum: date
    hoogste_diploma: str | None
    latende_school_brin: str | None


@dataclass(frozen=True, slots=True)
class AanmeldstatusBericht:
    bericht_id: str
    verzonden: datetime
    records: tuple[AanmeldstatusRecord, ...]

    @property
    def soort(self) -> Soort:
        return Soort.AANMELDSTATUS


Bericht = PrognoseBericht | AanmeldstatusBericht
Record = PrognoseRecord | AanmeldstatusRecord


# --- outcomes of parsing ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem with a message as a whole: where (line, column, XPath-like path) and why."""

    reason: str
    line: int | None = None
    column: int | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class RecordRejection:
    """A record refused on content (e.g. BSN fails the elfproef); the others are processed."""

    index: int
    reden: str
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A schema-valid message, normalised; records rejected on content are listed apart."""

    bericht: Bericht
    afgewezen: tuple[RecordRejection, ...] = ()


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message refused as a whole (not well-formed, hostile, or XSD-invalid)."""

    issues: tuple[ValidationIssue, ...]
    bericht_id: str | None = None
    hostile: bool = False


ParseOutcome = Parsed | Invalid


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forwarded:
    """The record passes every filter and goes to this gemeente (CBS code, e.g. GM0363)."""

    gemeentecode: str


@dataclass(frozen=True, slots=True)
class Filtered:
    """The record stops here; `reden` is the first filter it failed, `details` says why."""

    reden: FilterReden
    details: str


Decision = Forwarded | Filtered


# --- signaleringen ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrognoseDetails:
    school: School
    schooljaar: str
    onderwijssoort: str


@dataclass(frozen=True, slots=True)
class AanmeldingDetails:
    aanmelding_id: str
    instelling_brin: str
    opleiding: Opleiding
    status: Status
    statusdatum: date


@dataclass(frozen=True, slots=True)
class Signalering:
    """What one gemeente receives on its topic.

    `signalering_id` is deterministic from the source (see pipeline/signalering.py), so a
    re-derived signalering has the same id and a consumer can de-duplicate on it.
    """

    signalering_id: str
    type: SignaleringType
    gemeentecode: str
    aangemaakt: datetime
    bsn: str
    geboortedatum: date
    prognose: PrognoseDetails | None = None
    aanmeldingen: tuple[AanmeldingDetails, ...] = ()
    peildatum: date | None = None
    bron_bericht_id: str | None = None
    schooljaar: str | None = field(default=None)
