"""The envelope of a signalering: its outbox row, CloudEvents headers and topic name.

Pure: what a signalering looks like on Kafka is decided here, once, for the receive path,
the derived signaleringen (peildatum), the parked retries and the published contract
(contract/asyncapi.py). The outbox relay only sends what these functions rendered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from koppelpunt.model import Filtered, Forwarded, Signalering
from koppelpunt.pipeline import run
from koppelpunt.pipeline.render import render_signalering

CE_SOURCE = "urn:vva:koppelpunt-gemeenten"
CE_TYPE_PREFIX = "nl.vva.signalering."
DATASCHEMA = "urn:vva:signalering:1"
_EXTRA_ATTRIBUTES = MappingProxyType({"ce_dataschema": DATASCHEMA})

_GEMEENTECODE = re.compile(r"GM[0-9]{4}")  # ASCII digits: \d also takes "٣"


@dataclass(frozen=True, slots=True)
class NewSignalering:
    """A rendered signalering to store and publish; `payload` is the XML sent to the gemeente."""

    signalering_id: str
    type: str
    gemeentecode: str
    bsn: str
    topic: str
    payload: bytes
    headers: list[tuple[str, str]]
    created_at: datetime
    bericht_pk: int | None


@dataclass(frozen=True, slots=True)
class BeslissingRow:
    """The decision on one record: uitkomst doorgestuurd | gefilterd | afgewezen | geparkeerd."""

    record_index: int
    uitkomst: str
    reden: str | None
    details: str | None
    gemeentecode: str | None
    rules_version: str
    bsn: str | None


# --- topic names -----------------------------------------------------------------------------


def topic_for(prefix: str, gemeentecode: str) -> str:
    """`vva.signalering` + `GM0363` -> `vva.signalering.gm0363` (lowercase, validated).

    Raises ValueError for anything but a CBS gemeentecode: a wrong code here is a bug
    upstream, and publishing it would create a topic no gemeente reads.
    """
    code = gemeentecode.strip().upper()
    if not _GEMEENTECODE.fullmatch(code):
        raise ValueError(f"not a gemeentecode (GM + 4 digits): {gemeentecode!r}")
    return f"{prefix.rstrip('.')}.{code.lower()}".lower()


# The topic per (prefix, gemeentecode), validated once: every signalering needs one, and there
# are 342 gemeenten. A ValueError (not a gemeentecode) is raised each time: it is not cached.
_topic_for = functools.lru_cache(maxsize=4096)(topic_for)


# --- CloudEvents -----------------------------------------------------------------------------

NO_EXTRA: Mapping[str, str] = MappingProxyType({})
# CloudEvents attribute names: lowercase letters and digits only (spec, "Attribute Naming").
_CE_NAME = re.compile(r"[a-z0-9]{1,20}")
_CE_RESERVED = frozenset({"specversion", "id", "type", "source", "time", "datacontenttype"})


@functools.lru_cache(maxsize=256)
def _ce_header_name(given: str) -> str:
    """`dataschema` or `ce_dataschema` -> `ce_dataschema`, validated once per name (hot path:
    every signalering is rendered with the same few extra attributes)."""
    name = given.removeprefix("ce_")
    if not _CE_NAME.fullmatch(name) or name in _CE_RESERVED:
        raise ValueError(f"invalid or reserved CloudEvents attribute name: {given!r}")
    return f"ce_{name}"


def cloudevent_attributes(
    *,
    ce_id: str,
    ce_type: str,
    ce_source: str,
    ce_time: datetime,
    content_type: str = "application/xml",
    extra: Mapping[str, str] = NO_EXTRA,
) -> list[tuple[str, str]]:
    """The CloudEvents headers as text: what the outbox stores (JSON) for the relay."""
    if ce_time.tzinfo is None:
        raise ValueError("ce_time must be timezone-aware (RFC 3339 needs an offset)")
    return [
        ("ce_specversion", "1.0"),
        ("ce_id", ce_id),
        ("ce_source", ce_source),
        ("ce_type", ce_type),
        ("ce_time", _rfc3339(ce_time)),
        *((_ce_header_name(given), value) for given, value in extra.items()),
        ("content-type", content_type),
    ]


@functools.lru_cache(maxsize=64)
def _rfc3339(moment: datetime) -> str:
    """UTC, milliseconds, `Z`; cached: every signalering of a message has the same time."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- outbox rows and decisions ---------------------------------------------------------------


def to_outbox(topic_prefix: str, s: Signalering, bericht_pk: int | None) -> NewSignalering:
    """Render a signalering and its CloudEvents headers exactly as they will be published."""
    headers = cloudevent_attributes(
        ce_id=s.signalering_id,
        ce_type=CE_TYPE_PREFIX + s.type.value,
        ce_source=CE_SOURCE,
        ce_time=s.aangemaakt,
        extra=_EXTRA_ATTRIBUTES,
    )
    return NewSignalering(
        signalering_id=s.signalering_id,
        type=s.type.value,
        gemeentecode=s.gemeentecode,
        bsn=s.bsn,
        topic=_topic_for(topic_prefix, s.gemeentecode),
        payload=render_signalering(s),
        headers=headers,
        created_at=s.aangemaakt,
        bericht_pk=bericht_pk,
    )


def render_all(
    topic_prefix: str, signaleringen: Sequence[Signalering], bericht_pk: int | None
) -> list[NewSignalering]:
    """to_outbox for each: pure, so many at once can go to a thread (off_loop.run_pure)."""
    return [to_outbox(topic_prefix, s, bericht_pk) for s in signaleringen]


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
