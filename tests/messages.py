"""Builders for inbound test messages, so each test states only what matters to it."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

# Elfproef-valid test BSNs (the 99999xxxx range is reserved for testing).
BSN = [
    "999990007", "999990019", "999990020", "999990032", "999990044", "999990056",
    "999990068", "999990081", "999990093", "999990111", "999990123", "999990135",
]  # fmt: skip
ONDERWIJSNUMMER = "100000007"


@dataclass(frozen=True)
class L:
    """A leerling in a prognose."""

    bsn: str | None = BSN[0]
    geboortedatum: str = "2010-05-13"
    onderwijssoort: str = "vmbo-tl"
    hoogste_diploma: str | None = None
    onderwijsnummer: str | None = None


@dataclass(frozen=True)
class A:
    """An aanmelding in an aanmeldstatus message."""

    aanmelding_id: str = "A-1"
    bsn: str | None = BSN[0]
    geboortedatum: str = "2010-05-13"
    brin: str = "30RT"
    crebo: str = "25180"
    niveau: int = 2
    leerweg: str = "BOL"
    status: str = "AANGEMELD"
    statusdatum: str = "2027-03-01"
    hoogste_diploma: str | None = None
    onderwijsnummer: str | None = None


def _id(bsn: str | None, onderwijsnummer: str | None) -> str:
    if bsn is not None:
        return f"<bsn>{bsn}</bsn>"
    return f"<onderwijsnummer>{onderwijsnummer}</onderwijsnummer>"


def prognose_xml(
    bericht_id: str,
    leerlingen: list[L],
    *,
    verzonden: str = "2027-01-15T10:00:00+01:00",
    brin: str = "25LX",
    vestiging: str | None = "01",
    schooljaar: str = "2026-2027",
) -> bytes:
    rows = []
    for leerling in leerlingen:
        diploma = (
            f"<hoogsteDiploma>{leerling.hoogste_diploma}</hoogsteDiploma>"
            if leerling.hoogste_diploma
            else ""
        )
        rows.append(
            "<leerling>"
            f"{_id(leerling.bsn, leerling.onderwijsnummer)}"
            f"<geboortedatum>{leerling.geboortedatum}</geboortedatum>"
            f"<onderwijssoort>{leerling.onderwijssoort}</onderwijssoort>{diploma}"
            "</leerling>"
        )
    vest = f"<vestiging>{vestiging}</vestiging>" if vestiging else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<prognoses xmlns="urn:vva:prognose:1">\n'
        f"<berichtId>{escape(bericht_id)}</berichtId>\n"
        f"<verzonden>{verzonden}</verzonden>\n"
        f"<school><brin>{brin}</brin>{vest}</school>\n"
        f"<schooljaar>{schooljaar}</schooljaar>\n" + "\n".join(rows) + "\n</prognoses>\n"
    ).encode()


def aanmeldstatus_xml(
    bericht_id: str, aanmeldingen: list[A], *, verzonden: str = "2027-03-02T09:00:00+01:00"
) -> bytes:
    rows = []
    for a in aanmeldingen:
        diploma = (
            f"<hoogsteDiploma>{a.hoogste_diploma}</hoogsteDiploma>" if a.hoogste_diploma else ""
        )
        rows.append(
            "<aanmelding>"
            f"<aanmeldingId>{escape(a.aanmelding_id)}</aanmeldingId>"
            f"{_id(a.bsn, a.onderwijsnummer)}"
            f"<geboortedatum>{a.geboortedatum}</geboortedatum>"
            f"<instelling><brin>{a.brin}</brin></instelling>"
            f"<opleiding><crebo>{a.crebo}</crebo><niveau>{a.niveau}</niveau>"
            f"<leerweg>{a.leerweg}</leerweg></opleiding>"
            f"<status>{a.status}</status><statusdatum>{a.statusdatum}</statusdatum>{diploma}"
            "</aanmelding>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<aanmeldstatussen xmlns="urn:vva:aanmeldstatus:1">\n'
        f"<berichtId>{escape(bericht_id)}</berichtId>\n"
        f"<verzonden>{verzonden}</verzonden>\n" + "\n".join(rows) + "\n</aanmeldstatussen>\n"
    ).encode()
