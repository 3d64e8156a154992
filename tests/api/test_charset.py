"""The charset parameter of an XML message's Content-Type (RFC 7303 3.2): honoured where it
agrees with the document's own encoding, refused where it would change the characters."""

from __future__ import annotations

import codecs

import httpx
import pytest

from koppelpunt.api.charset import conflict, declared_charset, document_encoding
from koppelpunt.store.berichten import list_afwijzingen
from tests.conftest import Running, auth
from tests.messages import L, prognose_xml


def with_comment(body: bytes, comment: str, encoding: str = "utf-8") -> bytes:
    """The message with an XML comment (non-ASCII characters without touching a field)."""
    return body.replace(b"<berichtId>", f"<!-- {comment} -->".encode(encoding) + b"<berichtId>")


def latin1(bericht_id: str) -> bytes:
    """A prognose declared and encoded as ISO-8859-1, with an é in a comment."""
    text = prognose_xml(bericht_id, [L()]).decode("utf-8")
    text = text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    return with_comment(text.encode("iso-8859-1"), "café", "iso-8859-1")


class TestPure:
    @pytest.mark.parametrize(
        ("content_type", "expected"),
        [
            ("application/xml", None),
            ("application/xml; charset=utf-8", "utf-8"),
            ('text/xml; charset="ISO-8859-1"', "ISO-8859-1"),
            ("application/xml;charset=UTF-16 ; foo=bar", "UTF-16"),
            (None, None),
        ],
    )
    def test_declared_charset(self, content_type: str | None, expected: str | None) -> None:
        """The parameter, unquoted; None without one."""
        assert declared_charset(content_type) == expected

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b'<?xml version="1.0"?><a/>', "utf-8"),
            (b"<?xml version='1.0' encoding='ISO-8859-1'?><a/>", "ISO-8859-1"),
            (codecs.BOM_UTF8 + b"<a/>", "utf-8"),
            ("<a/>".encode("utf-16"), "utf-16"),
            ("<?xml version='1.0'?>".encode("utf-16-be"), "utf-16-be"),
            (b"<a/>", "utf-8"),
        ],
    )
    def test_document_encoding(self, body: bytes, expected: str) -> None:
        """BOM, else the encoding declaration, else UTF-8 (XML 1.0 appendix F)."""
        assert document_encoding(body) == expected

    def test_same_characters_are_no_conflict(self) -> None:
        """ISO-8859-1 on an all-ASCII UTF-8 document reads the same characters."""
        assert conflict(b'<?xml version="1.0"?><a>x</a>', "iso-8859-1") is None

    def test_other_characters_are_a_conflict_named_without_content(self) -> None:
        """ISO-8859-1 on UTF-8 with an é: other characters; the reason names encodings only."""
        reason = conflict("<a>café 999990007</a>".encode(), "iso-8859-1")
        assert reason is not None and "iso-8859-1" in reason and "utf-8" in reason
        assert "999990007" not in reason and "caf" not in reason


XML = "application/xml"


class TestEndpoint:
    async def post(
        self, client: httpx.AsyncClient, body: bytes, content_type: str
    ) -> httpx.Response:
        return await client.post(
            "/v1/prognoses",
            content=body,
            headers={"Content-Type": content_type, **auth("koppelpunt-vo")},
        )

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            ("application/xml; charset=utf-8", with_comment(prognose_xml("cs-1", [L()]), "café")),
            ('text/xml; charset="UTF-8"', with_comment(prognose_xml("cs-2", [L()]), "café")),
            ("application/xml; charset=iso-8859-1", prognose_xml("cs-3", [L()])),  # all ASCII
            ("application/xml; charset=iso-8859-1", latin1("cs-4")),
            (
                "application/xml; charset=utf-16",
                prognose_xml("cs-5", [L()])
                .decode()
                .replace('encoding="UTF-8"', 'encoding="UTF-16"')
                .encode("utf-16"),
            ),
        ],
    )
    async def test_agreeing_charset_is_received(
        self, client: httpx.AsyncClient, content_type: str, body: bytes
    ) -> None:
        """A charset that reads the bytes as the document does: received as usual."""
        r = await self.post(client, body, content_type)
        assert r.status_code == 202, r.text

    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            (
                "application/xml; charset=iso-8859-1",
                with_comment(prognose_xml("cc-1", [L()]), "café"),
            ),
            ("text/xml; charset=utf-8", latin1("cc-2")),
            ("application/xml; charset=utf-16", prognose_xml("cc-3", [L()])),
        ],
    )
    async def test_conflicting_charset_is_400_and_recorded(
        self, client: httpx.AsyncClient, running: Running, content_type: str, body: bytes
    ) -> None:
        """A charset that makes the bytes other characters: 400 charset-conflict, kept in
        the afwijzingen with its bytes."""
        r = await self.post(client, body, content_type)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "charset-conflict"
        async with running.runtime.sessions() as session:
            [stored] = await list_afwijzingen(session, since=None, sender=None, limit=10)
        assert stored.status_code == 400

    async def test_unknown_charset_is_415(self, client: httpx.AsyncClient) -> None:
        """A charset Python cannot decode: 415, the body is not read."""
        r = await self.post(client, prognose_xml("cu-1", [L()]), "application/xml; charset=klingon")
        assert r.status_code == 415, r.text
