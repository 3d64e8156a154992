"""The `charset` parameter of an XML message's Content-Type against the document's own encoding.

RFC 7303 (3.2) makes the charset parameter of `application/xml` and `text/xml` authoritative
over the XML declaration; the XML parser reads only the document (byte order mark, else the
encoding declaration, else UTF-8). Where the two disagree the same bytes would mean other
characters to the sender than to us, so the message is refused instead of guessed at:

- a charset Python does not know: 415 (we cannot honour what we cannot read);
- a charset under which the bytes are other characters than under the document's own
  encoding (or no characters at all): 400 `charset-conflict`.

Where both readings give the same characters (`charset=iso-8859-1` on an all-ASCII UTF-8
document, `utf-16le` on a UTF-16 document with its byte order mark) the message is read as the
parser reads it. Pure functions: the route decides what to answer.
"""

from __future__ import annotations

import codecs
import re
from email.message import Message

# The encoding declaration of an ASCII-compatible document: <?xml version="1.0" encoding="X"?>
_DECLARATION = re.compile(rb"""^<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")

# Byte order marks (UTF-32 before UTF-16: FF FE 00 00 starts with FF FE), then the first bytes
# of "<?" in the encodings that need no mark (XML 1.0, appendix F.1).
_SIGNATURES = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)


class UnknownCharset(ValueError):
    """The charset parameter names no encoding Python knows."""


def declared_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type (unquoted), or None."""
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    if charset is None or isinstance(charset, tuple):  # RFC 2231 form: not for HTTP
        return None
    return str(charset).strip() or None


def check_known(charset: str) -> None:
    """UnknownCharset unless Python can decode `charset`."""
    try:
        codecs.lookup(charset)
    except LookupError as exc:
        raise UnknownCharset(charset) from exc


def document_encoding(body: bytes) -> str:
    """The encoding the XML parser reads `body` in: BOM, else declaration, else UTF-8."""
    for signature, encoding in _SIGNATURES:
        if body.startswith(signature):
            return encoding
    declared = _DECLARATION.match(body[:1024])
    return declared.group(1).decode("ascii") if declared else "utf-8"


def conflict(body: bytes, charset: str) -> str | None:
    """Why `charset` and the document's own encoding disagree about `body`; None if they
    agree. The reason names the encodings, never the content."""
    check_known(charset)
    own = document_encoding(body)
    try:
        own_codec = codecs.lookup(own)
    except LookupError:
        return None  # an encoding the parser will refuse on its own
    wanted = codecs.lookup(charset)
    if wanted.name == own_codec.name:
        return None
    try:
        as_document = body.decode(own_codec.name)
    except UnicodeDecodeError:
        return None  # not even the document's own encoding: the parser refuses it
    try:
        as_charset = body.decode(wanted.name)
    except UnicodeDecodeError:
        as_charset = None
    if as_charset is not None and as_charset.lstrip("\ufeff") == as_document.lstrip("\ufeff"):
        return None
    return (
        f"charset {charset} in het Content-Type is in strijd met de codering van het "
        f"bericht ({own}): de bytes betekenen dan andere tekens"
    )
