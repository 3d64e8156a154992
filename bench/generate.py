"""Synthetic, seeded inbound data with a realistic shape (domain.md "Volumes and rhythm").

- pupils 15–25 years old on the peildatum, BSNs that pass the elfproef (test range 9xxxxxxxx is
  too small for a nation, so any valid 9-digit BSN is used: they exist only in this benchmark);
- onderwijssoorten and hoogste diploma's in plausible proportions (most without a
  startkwalificatie, some havo/vwo/mbo-2+ which the filter drops);
- woongemeenten over every active CBS gemeente, weighted by size (a Zipf-like weight in the
  order of the RvIG table, with the four big cities on top: the table has no population, so
  this is an approximation), ~1% RNI (1999) and ~1% not in the register;
- multi-step status sequences per aanmelding (AANGEMELD → … → INGESCHREVEN, or ending in
  GEEN_INSCHRIJVING / INGETROKKEN), several aanmeldingen for some pupils;
- ~1% of the messages sent twice (identical resend → 200) and ~0.5% invalid (XSD) → 400.

Everything is a pure function of the seed, so two runs send the same bytes.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEMEENTEN_FILE = ROOT / "data" / "rvig-tabel33-gemeenten.csv"
BIG_CITIES = ("0363", "0599", "0518", "0344")  # Amsterdam, Rotterdam, Den Haag, Utrecht

ONDERWIJSSOORTEN = (
    ("vmbo-bb", 14), ("vmbo-kb", 16), ("vmbo-gl", 6), ("vmbo-tl", 34), ("havo", 12),
    ("vwo", 4), ("pro", 5), ("vso", 5), ("vavo", 4),
)  # fmt: skip
# hoogste diploma on the record: mostly absent (unknown = none) or below startkwalificatie.
DIPLOMAS = (
    (None, 60), ("vmbo-tl", 10), ("vmbo-kb", 8), ("vmbo-bb", 6), ("vmbo-gl", 3),
    ("mbo-1", 4), ("pro", 1), ("havo", 4), ("vwo", 1), ("mbo-2", 2), ("mbo-3", 1),
)  # fmt: skip
SEQUENCES = (
    (("AANGEMELD", "ONDERWIJSOVEREENKOMST_AANGEBODEN", "INGESCHREVEN"), 55),
    (("AANGEMELD", "INGESCHREVEN"), 10),
    (("AANGEMELD", "ONDERWIJSOVEREENKOMST_AANGEBODEN", "INGETROKKEN"), 8),
    (("AANGEMELD", "GEEN_INSCHRIJVING"), 10),
    (("AANGEMELD", "INGETROKKEN"), 7),
    (("AANGEMELD",), 10),
)
BRINS = tuple(f"{n:02d}{a}{b}" for n in range(10, 40) for a in "ABCDEFGH" for b in "KLMN")[:400]


def active_gemeenten(path: Path = GEMEENTEN_FILE) -> list[str]:
    """The 4-digit codes of the gemeenten that exist today (no successor, no end date)."""
    with path.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    return [r[0] for r in rows if r[0] not in ("0000", "1999") and not r[2] and not r[4]]


def gemeente_weights(codes: list[str]) -> list[float]:
    """Zipf-like weights (big cities first): a few large gemeenten, a long tail of small ones."""
    order = [c for c in BIG_CITIES if c in codes] + [c for c in codes if c not in BIG_CITIES]
    rank = {code: i + 1 for i, code in enumerate(order)}
    return [1.0 / rank[c] ** 0.8 for c in codes]


def bsn_from(n: int) -> str | None:
    """The 9-digit BSN with the 8-digit prefix n and its elfproef digit (None if impossible)."""
    digits = f"{n:08d}"
    total = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True))
    last = total % 11  # need total - last ≡ 0 (mod 11)
    if last > 9:
        return None
    return digits + str(last)


def _weighted(rng: random.Random, table: tuple[tuple[object, int], ...]) -> object:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


@dataclass(frozen=True, slots=True)
class Pupil:
    bsn: str
    geboortedatum: date
    onderwijssoort: str
    diploma: str | None
    gemeentecode: str | None  # None: not in the register


def pupils(n: int, seed: int = 1) -> list[Pupil]:
    """n distinct pupils aged 15–25 on 1 March 2027."""
    rng = random.Random(seed)
    codes = active_gemeenten()
    weights = gemeente_weights(codes)
    chosen = rng.choices(codes, weights=weights, k=n)
    result: list[Pupil] = []
    prefix = 10_000_000 + seed * 7919
    i = 0
    while len(result) < n:
        bsn = bsn_from(prefix + i)
        i += 1
        if bsn is None:
            continue
        # ages: mostly 15–17, a tail up to 25 (vavo, late switchers)
        age = min(25, 15 + int(rng.expovariate(0.7)))
        born = date(2027 - age, 3, 1) - timedelta(days=rng.randrange(365))
        r = rng.random()
        gemeente = "1999" if r < 0.01 else None if r < 0.02 else chosen[len(result)]
        result.append(
            Pupil(
                bsn,
                born,
                str(_weighted(rng, ONDERWIJSSOORTEN)),
                _weighted(rng, DIPLOMAS),  # type: ignore[arg-type]
                gemeente,
            )
        )
    return result


def register_rows(people: list[Pupil]) -> list[tuple[str, str, date | None]]:
    """The woongemeente register rows (the pupils without a gemeente are left out)."""
    return [(p.bsn, p.gemeentecode, None) for p in people if p.gemeentecode is not None]


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    path: str  # /v1/prognoses or /v1/aanmeldstatussen
    body: bytes
    records: int
    resend: bool = False
    invalid: bool = False


def _diploma(p: Pupil) -> str:
    return f"<hoogsteDiploma>{p.diploma}</hoogsteDiploma>" if p.diploma else ""


def prognose_body(bericht_id: str, people: list[Pupil], brin: str) -> bytes:
    rows = "".join(
        f"<leerling><bsn>{p.bsn}</bsn><geboortedatum>{p.geboortedatum.isoformat()}"
        f"</geboortedatum><onderwijssoort>{p.onderwijssoort}</onderwijssoort>{_diploma(p)}"
        "</leerling>\n"
        for p in people
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<prognoses xmlns="urn:vva:prognose:1">\n'
        f"<berichtId>{bericht_id}</berichtId>\n<verzonden>2027-01-15T10:00:00+01:00</verzonden>\n"
        f"<school><brin>{brin}</brin><vestiging>01</vestiging></school>\n"
        f"<schooljaar>2026-2027</schooljaar>\n{rows}</prognoses>\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class Status:
    aanmelding_id: str
    pupil: Pupil
    brin: str
    crebo: str
    niveau: int
    status: str
    statusdatum: date


def aanmeldstatus_body(bericht_id: str, statuses: list[Status]) -> bytes:
    rows = "".join(
        f"<aanmelding><aanmeldingId>{s.aanmelding_id}</aanmeldingId><bsn>{s.pupil.bsn}</bsn>"
        f"<geboortedatum>{s.pupil.geboortedatum.isoformat()}</geboortedatum>"
        f"<instelling><brin>{s.brin}</brin></instelling>"
        f"<opleiding><crebo>{s.crebo}</crebo><niveau>{s.niveau}</niveau>"
        "<leerweg>BOL</leerweg></opleiding>"
        f"<status>{s.status}</status><statusdatum>{s.statusdatum.isoformat()}</statusdatum>"
        f"{_diploma(s.pupil)}</aanmelding>\n"
        for s in statuses
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<aanmeldstatussen xmlns="urn:vva:aanmeldstatus:1">\n'
        f"<berichtId>{bericht_id}</berichtId>\n<verzonden>2027-03-02T09:00:00+01:00</verzonden>\n"
        f"{rows}</aanmeldstatussen>\n"
    ).encode()


def statuses(people: list[Pupil], total: int, seed: int = 2, id_prefix: str = "A") -> list[Status]:
    """About `total` status records: aanmeldingen with multi-step sequences, in time order."""
    rng = random.Random(seed)
    events: list[tuple[date, int, Status]] = []
    n = 0
    k = 0
    while n < total:
        pupil = people[rng.randrange(len(people))]
        sequence = _weighted(rng, SEQUENCES)
        assert isinstance(sequence, tuple)
        day = date(2027, 1, 15) + timedelta(days=int(rng.triangular(0, 120, 60)))
        aanmelding = f"{id_prefix}{k:08d}"
        brin, crebo, niveau = rng.choice(BRINS), f"{25000 + rng.randrange(900)}", rng.randint(1, 4)
        k += 1
        for status in sequence:
            events.append((day, n, Status(aanmelding, pupil, brin, crebo, niveau, status, day)))
            n += 1
            day += timedelta(days=rng.randint(7, 90))
    events.sort(key=lambda e: (e[0], e[1]))
    return [s for _, _, s in events[:total]]


def status_messages(statuses: list[Status], per_message: int, prefix: str) -> list[Message]:
    """The statuses in aanmeldstatus messages of `per_message` records, berichtIds prefix-N."""
    return [
        Message(
            "/v1/aanmeldstatussen",
            aanmeldstatus_body(f"{prefix}-{i}", statuses[i : i + per_message]),
            per_message,
        )
        for i in range(0, len(statuses), per_message)
    ]


def _invalid(body: bytes) -> bytes:
    # an XSD-invalid message: a status value that is not in the enumeration
    return body.replace(b"<status>AANGEMELD</status>", b"<status>ONBEKEND</status>", 1).replace(
        b"<onderwijssoort>", b"<onderwijssoort>x", 1
    )


def messages(
    prognoses: list[Pupil],
    status_records: list[Status],
    *,
    batch: int,
    seed: int = 3,
    prefix: str = "bench",
    resend_rate: float = 0.01,
    invalid_rate: float = 0.005,
) -> Iterator[Message]:
    """Prognoses first (October–January), then the statuses in time order, `batch` per message,
    with ~1% identical resends (right after the original) and ~0.5% invalid messages, evenly
    spread (every 1/rate-th message, from the 4th on) so a scaled-down run has some too."""
    rng = random.Random(seed)
    every_invalid = max(1, round(1 / invalid_rate)) if invalid_rate else 0
    every_resend = max(1, round(1 / resend_rate)) if resend_rate else 0
    count = 0

    def finish(m: Message) -> Iterator[Message]:
        nonlocal count
        count += 1
        if every_invalid and count % every_invalid == 3:
            yield Message(m.path, _invalid(m.body), m.records, invalid=True)
            return
        yield m
        if every_resend and count % every_resend == 7:
            yield Message(m.path, m.body, m.records, resend=True)

    for i in range(0, len(prognoses), batch):
        chunk = prognoses[i : i + batch]
        body = prognose_body(f"{prefix}-p-{i}", chunk, rng.choice(BRINS))
        yield from finish(Message("/v1/prognoses", body, len(chunk)))
    for i in range(0, len(status_records), batch):
        statuses = status_records[i : i + batch]
        yield from finish(
            Message(
                "/v1/aanmeldstatussen",
                aanmeldstatus_body(f"{prefix}-s-{i}", statuses),
                len(statuses),
            )
        )
