"""The AsyncAPI contract: generated, committed, valid for the official parser, served."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from lxml import etree

from koppelpunt.config import PROJECT_ROOT, Settings
from koppelpunt.contract import asyncapi
from koppelpunt.model import SignaleringType

COMMITTED = PROJECT_ROOT / "asyncapi.yaml"
VALIDATOR = PROJECT_ROOT / "tools" / "asyncapi" / "validate.mjs"
EXAMPLES = sorted((PROJECT_ROOT / "schemas" / "examples" / "signaleringen").glob("*.xml"))


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """Run @asyncapi/parser (pinned in tools/asyncapi/package-lock.json) on `path`."""
    node = shutil.which("node")
    assert node is not None, "Node.js 20+ is needed to validate the AsyncAPI document"
    assert (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "the AsyncAPI parser is not installed: run `make install` (npm ci in tools/asyncapi)"
    )
    return subprocess.run(
        [node, str(VALIDATOR), str(path)], capture_output=True, text=True, check=False
    )


class TestGeneratedDocument:
    def test_committed_file_is_the_generated_one(self) -> None:
        """asyncapi.yaml equals the generator's output: regenerate it when this fails."""
        assert COMMITTED.read_text(encoding="utf-8") == asyncapi.generate(), (
            "asyncapi.yaml is stale: regenerate with "
            "`.venv/bin/python -m koppelpunt.contract.asyncapi > asyncapi.yaml`"
        )

    def test_official_parser_accepts_it(self) -> None:
        """@asyncapi/parser reports no error for the committed document."""
        result = validate(COMMITTED)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "valid AsyncAPI 3.0.0" in result.stderr

    def test_official_parser_rejects_a_broken_document(self, tmp_path: Path) -> None:
        """The validator is not a no-op: a message payload of the wrong type is an error."""
        document = asyncapi.build()
        document["components"]["messages"]["signalering"]["payload"] = {
            "schemaFormat": "application/vnd.aai.asyncapi+json;version=3.0.0",
            "schema": "not a schema",
        }
        broken = tmp_path / "broken.yaml"
        broken.write_text(asyncapi.render(document), encoding="utf-8")
        result = validate(broken)
        assert result.returncode == 1
        assert '"severity":0' in result.stdout

    def test_every_signalering_type_is_described(self) -> None:
        """Each SignaleringType is in ce_type's enum and in the description with its meaning."""
        document = asyncapi.build()
        message = document["components"]["messages"]["signalering"]
        enum = message["headers"]["properties"]["ce_type"]["enum"]
        assert enum == [f"nl.vva.signalering.{t.value}" for t in SignaleringType]
        for t in SignaleringType:
            assert f"**{t.value}**: {asyncapi.MEANINGS[t]}" in document["info"]["description"]

    def test_a_type_without_meaning_fails_generation(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A new signalering type cannot ship without a line in the contract."""
        monkeypatch.delitem(asyncapi.MEANINGS, SignaleringType.VERHUISD)
        with pytest.raises(ValueError, match="VERHUISD"):
            asyncapi.build()

    def test_channel_security_and_key(self) -> None:
        """One channel per gemeente, SCRAM-SHA-512, key = BSN, group prefix documented."""
        document = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
        assert document["asyncapi"] == "3.0.0"
        assert document["info"]["version"] == "1.0.0"  # namespace urn:vva:signalering:1
        assert document["channels"]["signaleringen"]["address"] == "vva.signalering.{gemeentecode}"
        schemes = document["components"]["securitySchemes"]
        assert schemes["scram"]["type"] == "scramSha512"
        message = document["components"]["messages"]["signalering"]
        assert message["bindings"]["kafka"]["key"]["pattern"] == "^[0-9]{9}$"
        assert message["contentType"] == "application/xml"
        operation = document["operations"]["ontvangSignaleringen"]
        assert operation["action"] == "receive"
        assert "groupId" in operation["bindings"]["kafka"]


class TestPayloadSchema:
    def test_inlined_xsd_accepts_every_example(self) -> None:
        """The XSD in the document (common.xsd inlined) validates the example signaleringen."""
        _ns, text = asyncapi.inlined_xsd(PROJECT_ROOT / "schemas")
        schema = etree.XMLSchema(etree.fromstring(text.encode()))
        assert EXAMPLES
        for path in EXAMPLES:
            schema.assertValid(etree.parse(str(path)))

    def test_inlined_xsd_rejects_what_the_original_rejects(self) -> None:
        """A BSN of 8 digits is refused by the inlined XSD as by schemas/signalering.xsd."""
        _ns, text = asyncapi.inlined_xsd(PROJECT_ROOT / "schemas")
        inlined = etree.XMLSchema(etree.fromstring(text.encode()))
        original = etree.XMLSchema(etree.parse(str(PROJECT_ROOT / "schemas" / "signalering.xsd")))
        bad = etree.fromstring(EXAMPLES[0].read_bytes().replace(b"<bsn>9", b"<bsn>"))
        assert not inlined.validate(bad)
        assert not original.validate(bad)

    def test_examples_carry_the_published_headers(self) -> None:
        """Each example's ce_id and ce_type match its payload (de-duplication key, type)."""
        message = asyncapi.build()["components"]["messages"]["signalering"]
        assert len(message["examples"]) == len(EXAMPLES)
        for example in message["examples"]:
            doc = etree.fromstring(example["payload"].encode())
            ns = {"s": "urn:vva:signalering:1"}
            assert example["headers"]["ce_id"] == doc.findtext("s:signaleringId", namespaces=ns)
            assert example["headers"]["ce_type"] == "nl.vva.signalering." + str(
                doc.findtext("s:type", namespaces=ns)
            )


class TestServed:
    async def test_get_asyncapi_yaml_is_public_yaml(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        """GET /asyncapi.yaml without a key: YAML for this instance's topic prefix."""
        response = await client.get("/asyncapi.yaml")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/yaml")
        assert response.text == asyncapi.generate(settings.topic_prefix, settings.schemas_dir)
        document = yaml.safe_load(response.text)
        address = document["channels"]["signaleringen"]["address"]
        assert address == settings.topic_prefix + ".{gemeentecode}"
