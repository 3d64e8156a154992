"""The AsyncAPI 3 contract for vendors, generated from the code and the XSD so it cannot drift.

    python -m koppelpunt.contract.asyncapi > asyncapi.yaml     (tests check the committed file)

Everything a vendor relies on comes from the source of truth: the topic name and the
CloudEvents constants from `pipeline.envelope`, the headers from
`kafka.publisher.cloudevent_headers`, the signalering types from `model.SignaleringType`, the
payload schema from `schemas/signalering.xsd` (with `common.xsd` inlined, so it is one
self-contained XSD), and the examples from `schemas/examples/signaleringen/`. The version is
the XSD's namespace major (`urn:vva:signalering:1` -> 1.x.0); see docs/leveranciers.md for the
policy.
"""

from __future__ import annotations

import copy
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from koppelpunt.config import PROJECT_ROOT
from koppelpunt.kafka.publisher import cloudevent_headers
from koppelpunt.model import SignaleringType
from koppelpunt.pipeline.envelope import CE_SOURCE, CE_TYPE_PREFIX, DATASCHEMA, topic_for
from koppelpunt.pipeline.parse import hardened_parser

ASYNCAPI_VERSION = "3.0.0"
# Raise for every additive change of the contract within one XSD major version.
CONTRACT_MINOR = 0
XS = "http://www.w3.org/2001/XMLSchema"
KAFKA_BINDING_VERSION = "0.5.0"

# What each type tells the gemeente (docs/signaleringen.md has the full rules). Generation
# fails for a SignaleringType without a meaning here: a new type cannot ship undocumented.
MEANINGS: dict[SignaleringType, str] = {
    SignaleringType.PROGNOSE: (
        "Doorgestuurde prognose van de VO-school: de leerling gaat naar verwachting naar het "
        "mbo (voor het dossier). Een latere prognose voor dezelfde leerling en hetzelfde "
        "schooljaar vervangt de eerdere."
    ),
    SignaleringType.AANMELDSTATUS: (
        "Doorgestuurde aanmeldstatus van een mbo-instelling (AANGEMELD, "
        "ONDERWIJSOVEREENKOMST_AANGEBODEN, GEEN_INSCHRIJVING, INGETROKKEN, INGESCHREVEN), "
        "voor het dossier."
    ),
    SignaleringType.NIET_AANGEMELD: (
        "Er is een prognose, maar op de aanmelddatum (1 april, art. 8.0.1 WEB) geen aanmelding "
        "bij het mbo: actie voor leerplicht/RMC."
    ),
    SignaleringType.GEEN_PLAATSING: (
        "Een aanmelding liep op niets uit (GEEN_INSCHRIJVING of INGETROKKEN) en er staat geen "
        "andere aanmelding open."
    ),
    SignaleringType.NIET_INGESCHREVEN: (
        "Geen inschrijving (INGESCHREVEN) op de teldatum van DUO (1 oktober) na de start van "
        "het schooljaar."
    ),
    SignaleringType.VERHUISD: (
        "De leerling is naar een andere gemeente verhuisd; aan de oude gemeente, zonder details."
    ),
    SignaleringType.OVERDRACHT: (
        "De leerling is in deze gemeente komen wonen; overdracht van het dossier aan de "
        "nieuwe gemeente."
    ),
}


def namespace_major(namespace: str) -> int:
    """`urn:vva:signalering:1` -> 1 (the namespace ends in the major version)."""
    match = re.fullmatch(r"urn:vva:signalering:(\d+)", namespace)
    if match is None:
        raise ValueError(f"signalering namespace without a major version: {namespace!r}")
    return int(match.group(1))


def inlined_xsd(schemas_dir: Path) -> tuple[str, str]:
    """signalering.xsd with its xs:include(s) replaced by their content: (namespace, text)."""
    parser = hardened_parser()
    root = etree.parse(str(schemas_dir / "signalering.xsd"), parser).getroot()
    for include in root.findall(f"{{{XS}}}include"):
        included = etree.parse(str(schemas_dir / include.get("schemaLocation", "")), parser)
        position = root.index(include)
        root.remove(include)
        children = [
            copy.deepcopy(c)
            for c in included.getroot()
            if isinstance(c.tag, str) and c.tag != f"{{{XS}}}annotation"
        ]
        for offset, child in enumerate(children):
            root.insert(position + offset, child)
    etree.indent(root, space="  ")
    text = etree.tostring(root, encoding="unicode")
    return str(root.get("targetNamespace")), text + "\n"


def _example(path: Path, prefix: str) -> dict[str, Any]:
    """One published signalering: its CloudEvents headers as envelope.to_outbox sets them."""
    doc = etree.parse(str(path), hardened_parser())
    ns = {"s": doc.getroot().nsmap[None]}

    def text(xpath: str) -> str:
        return str(doc.xpath(f"string({xpath})", namespaces=ns))

    signalering_type = text("/s:signalering/s:type")
    headers = cloudevent_headers(
        ce_id=text("/s:signalering/s:signaleringId"),
        ce_type=CE_TYPE_PREFIX + signalering_type,
        ce_source=CE_SOURCE,
        ce_time=datetime.fromisoformat(text("/s:signalering/s:aangemaakt")),
        extra={"ce_dataschema": DATASCHEMA},
    )
    gemeentecode = text("/s:signalering/s:gemeentecode")
    return {
        "name": path.stem.replace(".", "-"),
        "summary": (
            f"{signalering_type} voor {gemeentecode} op topic "
            f"{topic_for(prefix, gemeentecode)}; key = BSN "
            f"{text('/s:signalering/s:leerling/s:bsn')} (testnummer)"
        ),
        "headers": {name: value.decode() for name, value in headers},
        "payload": path.read_text(encoding="utf-8"),
    }


def _headers_schema() -> dict[str, Any]:
    types = [CE_TYPE_PREFIX + t.value for t in SignaleringType]
    return {
        "type": "object",
        "description": (
            "CloudEvents 1.0, Kafka protocol binding, binary content mode: de event-attributen "
            "staan als ce_*-headers (UTF-8), de value is het kale XML-document."
        ),
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_dataschema",
            "content-type",
        ],
        "properties": {
            "ce_specversion": {"type": "string", "const": "1.0"},
            "ce_id": {
                "type": "string",
                "description": (
                    "Gelijk aan signaleringId: deterministisch uit de bron afgeleid. Dezelfde "
                    "signalering kan (zelden) twee keer aankomen: ontdubbel op ce_id."
                ),
            },
            "ce_source": {"type": "string", "const": CE_SOURCE},
            "ce_type": {
                "type": "string",
                "enum": types,
                "description": "nl.vva.signalering. + het element <type> van de payload.",
            },
            "ce_time": {
                "type": "string",
                "format": "date-time",
                "description": "Tijdstip van aanmaken (RFC 3339, UTC), gelijk aan <aangemaakt>.",
            },
            "ce_dataschema": {
                "type": "string",
                "const": DATASCHEMA,
                "description": "Namespace van het XSD; het getal is de major-versie.",
            },
            "content-type": {"type": "string", "const": "application/xml"},
        },
    }


def build(schemas_dir: Path | None = None, topic_prefix: str = "vva.signalering") -> dict[str, Any]:
    """The AsyncAPI document as a plain dict (YAML/JSON-ready)."""
    schemas_dir = schemas_dir or PROJECT_ROOT / "schemas"
    missing = [t.value for t in SignaleringType if t not in MEANINGS]
    if missing:
        raise ValueError(f"signalering types without a meaning in the contract: {missing}")
    namespace, xsd = inlined_xsd(schemas_dir)
    major = namespace_major(namespace)
    prefix = topic_prefix.rstrip(".")
    example_topic = topic_for(prefix, "GM0363")
    type_table = "\n".join(f"- **{t.value}**: {MEANINGS[t]}" for t in SignaleringType)
    examples = sorted((schemas_dir / "examples" / "signaleringen").glob("*.xml"))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Koppelpunt gemeenten (VVA): signaleringen",
            "version": f"{major}.{CONTRACT_MINOR}.0",
            "description": (
                "Signaleringen van de Voorziening Vroegtijdig Aanmelden aan gemeenten "
                "(leerplicht/RMC): één Kafka-topic per gemeente, alleen leesbaar voor de "
                "leverancier die de gemeente daarvoor aanwijst.\n\n"
                f"Payload: XML volgens het XSD met namespace `{namespace}` (major-versie "
                f"{major}). Binnen een major-versie alleen toevoegingen; een wijziging die "
                "bestaande afnemers breekt krijgt een nieuwe namespace en een nieuwe major.\n\n"
                f"Soorten signalering (element `<type>`, header `ce_type`):\n{type_table}\n\n"
                "Zie docs/leveranciers.md voor aansluiten, ontdubbelen en herlezen (replay)."
            ),
            "license": {
                "name": "EUPL-1.2",
                "url": "https://interoperable-europe.ec.europa.eu/collection/eupl",
            },
        },
        "defaultContentType": "application/xml",
        "servers": {
            "koppelpunt": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "protocolVersion": "4.x",
                "description": (
                    "Kafka-broker van het koppelpunt. Het adres, de gebruikersnaam en het "
                    "eenmalige wachtwoord staan in de verbindingsconfiguratie die de beheerder "
                    "met `koppelpunt access grant` maakt."
                ),
                "variables": {
                    "bootstrap": {
                        "description": "host:poort van de broker (uit de verbindingsconfiguratie)",
                        "default": "127.0.0.1:9092",
                    }
                },
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            }
        },
        "channels": {
            "signaleringen": {
                "address": prefix + ".{gemeentecode}",
                "title": "Signaleringen voor één gemeente",
                "description": (
                    "Eén topic per gemeente, bijvoorbeeld "
                    f"`{example_topic}`. Partitiesleutel = BSN: de signaleringen over één "
                    "leerling staan op volgorde in één partitie. Een leverancier leest alleen de "
                    "topics van de gemeenten waarvoor hij toegang heeft; al het andere weigert "
                    "de broker (TOPIC_AUTHORIZATION_FAILED)."
                ),
                "parameters": {
                    "gemeentecode": {
                        "description": (
                            "CBS-gemeentecode in kleine letters: gm + 4 cijfers (gm0363 = "
                            "Amsterdam)."
                        ),
                        "examples": ["gm0363", "gm0599"],
                    }
                },
                "messages": {"signalering": {"$ref": "#/components/messages/signalering"}},
            }
        },
        "operations": {
            "ontvangSignaleringen": {
                "action": "receive",
                "channel": {"$ref": "#/channels/signaleringen"},
                "title": "Signaleringen lezen",
                "summary": (
                    "Lees de topics van je gemeenten in een consumer group die begint met je "
                    "gebruikersnaam en een punt; commit offsets pas na verwerking."
                ),
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
                "bindings": {
                    "kafka": {
                        "groupId": {
                            "type": "string",
                            "pattern": "^[a-z0-9][a-z0-9_-]*\\..+$",
                            "description": "Moet beginnen met NAAM. (de gebruikersnaam + punt).",
                        },
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                },
                "messages": [{"$ref": "#/channels/signaleringen/messages/signalering"}],
            }
        },
        "components": {
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": (
                        "SASL/SCRAM-SHA-512 met de gebruikersnaam en het wachtwoord uit de "
                        "verbindingsconfiguratie, over TLS (security.protocol SASL_SSL; het "
                        "CA-certificaat van de broker staat in die configuratie)."
                    ),
                }
            },
            "messages": {
                "signalering": {
                    "name": "signalering",
                    "title": "Signalering",
                    "summary": "Eén signalering over één leerling voor één gemeente.",
                    "contentType": "application/xml",
                    "headers": _headers_schema(),
                    "payload": {
                        # No registered media type exists for XSD; the schema is the complete
                        # XSD text (common.xsd inlined), identical to schemas/signalering.xsd.
                        "schemaFormat": "application/xml",
                        "schema": xsd,
                    },
                    "bindings": {
                        "kafka": {
                            "key": {
                                "type": "string",
                                "pattern": "^[0-9]{9}$",
                                "description": "BSN van de leerling (UTF-8).",
                            },
                            "bindingVersion": KAFKA_BINDING_VERSION,
                        }
                    },
                    "examples": [_example(p, prefix) for p in examples],
                }
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the XSD and the examples stay readable)."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def render(document: dict[str, Any]) -> str:
    header = (
        "# GENERATED by `python -m koppelpunt.contract.asyncapi` from the code and the XSD.\n"
        "# Do not edit: change the source and regenerate (a test compares this file).\n"
    )
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def generate(topic_prefix: str = "vva.signalering", schemas_dir: Path | None = None) -> str:
    return render(build(schemas_dir, topic_prefix))


if __name__ == "__main__":
    sys.stdout.write(generate())
