"""Two-way TLS on the real server (koppelpunt.api.server, as `koppelpunt serve` runs it) with a
test PKI made here (koppelpunt.pki): the OIN in the client certificate names the sender; bad
certificates, old protocols and suites without forward secrecy are refused in the handshake."""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from koppelpunt.api.tls import server_context
from koppelpunt.config import Settings
from koppelpunt.pki import CertificateAuthority, Issued
from koppelpunt.store.tables import berichten, verwerkingenlog
from tests.http_server import serving
from tests.messages import A, L, aanmeldstatus_xml, prognose_xml

XML = {"Content-Type": "application/xml"}
VO_OIN = "00000001234567890000"
MBO_OIN = "00000009876543210000"
UNKNOWN_OIN = "00000005555555550000"
MBO_KEY = "tls-test-mbo-key"


@dataclass
class Pki:
    directory: Path
    ca: CertificateAuthority
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client(self, name: str, issued: Issued) -> tuple[str, str]:
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        issued.write(cert, key)
        return str(cert), str(key)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CertificateAuthority.create("test-ca")
    ca_file = tmp_path / "ca.crt"
    ca.write(ca_file, tmp_path / "ca.key")
    server = ca.issue_server(key_type="rsa")  # RSA: the suite test offers RSA key exchange
    server.write(tmp_path / "server.crt", tmp_path / "server.key")
    return Pki(tmp_path, ca, ca_file, tmp_path / "server.crt", tmp_path / "server.key")


def tls_settings(settings: Settings, pki: Pki, tmp_path: Path, mode: str | None) -> Settings:
    senders = tmp_path / "senders-tls.yaml"
    digest = hashlib.sha256(MBO_KEY.encode()).hexdigest()
    senders.write_text(
        "senders:\n"
        f"  - {{name: vo-cert, role: vo, oin: '{VO_OIN}'}}\n"
        f"  - {{name: mbo-both, role: mbo, oin: '{MBO_OIN}', key_sha256: {digest}}}\n"
        f"  - {{name: vo-key, role: vo, key_sha256: {hashlib.sha256(b'vo-key').hexdigest()}}}\n"
    )
    return settings.model_copy(
        update={
            "senders_file": senders,
            "tls_cert_file": pki.cert_file,
            "tls_key_file": pki.key_file,
            "tls_client_ca_file": pki.ca_file,
            "tls_client_auth": mode,
        }
    )


def client_context(pki: Pki, cert: tuple[str, str] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


async def post(
    port: int, ctx: ssl.SSLContext, path: str, body: bytes, **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=ctx) as client:
        return await client.post(path, content=body, headers={**XML, **headers})


@pytest.fixture
async def required(settings: Settings, pki: Pki, tmp_path: Path) -> AsyncIterator[int]:
    async with serving(tls_settings(settings, pki, tmp_path, None)) as port:
        yield port


def prognose() -> bytes:
    return prognose_xml(f"tls-{uuid.uuid4().hex[:8]}", [L()])


class TestOin:
    async def test_a_known_oin_gets_202(self, required: int, pki: Pki) -> None:
        vo = pki.client("vo", pki.ca.issue_client("vo", oin=VO_OIN))
        r = await post(required, client_context(pki, vo), "/v1/prognoses", prognose())
        assert r.status_code == 202, r.text

    async def test_oin_and_key_both_must_match(self, required: int, pki: Pki) -> None:
        mbo = pki.client("mbo", pki.ca.issue_client("mbo", oin=MBO_OIN))
        body = aanmeldstatus_xml(f"tls-{uuid.uuid4().hex[:8]}", [A()])
        ctx = client_context(pki, mbo)
        r = await post(required, ctx, "/v1/aanmeldstatussen", body)
        assert r.status_code == 401
        r = await post(required, ctx, "/v1/aanmeldstatussen", body, Authorization="Bearer wrong")
        assert r.status_code == 401
        r = await post(
            required, ctx, "/v1/aanmeldstatussen", body, Authorization=f"Bearer {MBO_KEY}"
        )
        assert r.status_code == 202, r.text

    @pytest.mark.parametrize(
        ("oin", "words"),
        [
            (UNKNOWN_OIN, "hoort bij geen afzender"),
            (None, "geen OIN"),
            ("12345", "geen 20 cijfers"),
            ("0000000123456789000X", "geen 20 cijfers"),
        ],
    )
    async def test_no_known_oin_is_403(
        self, required: int, pki: Pki, oin: str | None, words: str
    ) -> None:
        other = pki.client("other", pki.ca.issue_client("other", oin=oin))
        r = await post(required, client_context(pki, other), "/v1/prognoses", prognose())
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
        assert words in r.json()["detail"]
        assert "key" not in r.text.lower() and "sha256" not in r.text.lower()

    async def test_a_key_alone_does_not_match_an_entry_with_an_oin(
        self, settings: Settings, pki: Pki, tmp_path: Path
    ) -> None:
        async with serving(tls_settings(settings, pki, tmp_path, "optional")) as port:
            ctx = client_context(pki, None)
            body = aanmeldstatus_xml(f"tls-{uuid.uuid4().hex[:8]}", [A()])
            auth = {"Authorization": f"Bearer {MBO_KEY}"}
            r = await post(port, ctx, "/v1/aanmeldstatussen", body, **auth)
            assert r.status_code == 401
            # `optional` without a certificate: the bearer key of an entry without an OIN.
            r = await post(port, ctx, "/v1/prognoses", prognose(), Authorization="Bearer vo-key")
            assert r.status_code == 202, r.text


class TestHandshake:
    async def refused(self, port: int, ctx: ssl.SSLContext) -> None:
        # TLS 1.3 reports a refused client certificate after the handshake, on the first read.
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await post(port, ctx, "/v1/prognoses", prognose())

    @pytest.mark.parametrize("which", ["expired", "not-yet-valid", "other-ca"])
    async def test_bad_certificates_are_refused(self, required: int, pki: Pki, which: str) -> None:
        now = dt.datetime.now(dt.UTC)
        if which == "expired":
            issued = pki.ca.issue_client(
                "x",
                oin=VO_OIN,
                not_before=now - dt.timedelta(days=30),
                not_after=now - dt.timedelta(days=1),
            )
        elif which == "not-yet-valid":
            issued = pki.ca.issue_client(
                "x",
                oin=VO_OIN,
                not_before=now + dt.timedelta(days=1),
                not_after=now + dt.timedelta(days=30),
            )
        else:
            issued = CertificateAuthority.create("other-ca").issue_client("x", oin=VO_OIN)
        await self.refused(required, client_context(pki, pki.client(which, issued)))

    async def test_no_certificate_is_refused_when_required(self, required: int, pki: Pki) -> None:
        await self.refused(required, client_context(pki, None))

    @pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
    async def test_tls_1_1_is_refused(self, required: int, pki: Pki) -> None:
        vo = pki.client("vo", pki.ca.issue_client("vo", oin=VO_OIN))
        ctx = client_context(pki, vo)
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        try:
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except ValueError:
            pytest.skip("this OpenSSL cannot even offer TLS 1.1")
        await self.refused(required, ctx)

    async def test_a_suite_without_forward_secrecy_is_refused(
        self, required: int, pki: Pki
    ) -> None:
        vo = pki.client("vo", pki.ca.issue_client("vo", oin=VO_OIN))
        ctx = client_context(pki, vo)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-GCM-SHA256:AES256-GCM-SHA384")  # RSA key exchange, AEAD
        await self.refused(required, ctx)
        fs = client_context(pki, vo)
        fs.maximum_version = ssl.TLSVersion.TLSv1_2
        fs.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        r = await post(required, fs, "/v1/prognoses", prognose())
        assert r.status_code == 202, r.text


class TestOrigin:
    """The sender's OIN and the transaction id are stored with the message and its log."""

    async def rows(self, settings: Settings, bericht_id: str) -> tuple[Any, list[Any]]:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(berichten.c.sender_oin, berichten.c.transaction_id).where(
                            berichten.c.bericht_id == bericht_id
                        )
                    )
                ).one()
                lines = (
                    await conn.execute(
                        sa.select(verwerkingenlog.c.attributes).where(
                            verwerkingenlog.c.actor == "vo-cert"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        return row, [
            line.attributes for line in lines if line.attributes.get("berichtId") == bericht_id
        ]

    async def test_oin_and_given_transaction_id_are_stored(
        self, settings: Settings, pki: Pki, tmp_path: Path
    ) -> None:
        tls = tls_settings(settings, pki, tmp_path, None)
        vo = pki.client("vo", pki.ca.issue_client("vo", oin=VO_OIN))
        bericht_id = f"tls-{uuid.uuid4().hex[:8]}"
        given = str(uuid.uuid4())
        async with serving(tls) as port:
            r = await post(
                port,
                client_context(pki, vo),
                "/v1/prognoses",
                prognose_xml(bericht_id, [L()]),
                **{"Fsc-Transaction-Id": given.upper()},
            )
            assert r.status_code == 202, r.text
            assert r.headers["fsc-transaction-id"] == given
        row, lines = await self.rows(tls, bericht_id)
        assert (row.sender_oin, row.transaction_id) == (VO_OIN, given)
        assert lines and all(a["oin"] == VO_OIN and a["transactionId"] == given for a in lines)

    async def test_a_new_uuid7_without_the_header_and_400_for_a_bad_one(
        self, settings: Settings, pki: Pki, tmp_path: Path
    ) -> None:
        tls = tls_settings(settings, pki, tmp_path, None)
        vo = pki.client("vo", pki.ca.issue_client("vo", oin=VO_OIN))
        bericht_id = f"tls-{uuid.uuid4().hex[:8]}"
        async with serving(tls) as port:
            ctx = client_context(pki, vo)
            r = await post(port, ctx, "/v1/prognoses", prognose_xml(bericht_id, [L()]))
            assert r.status_code == 202, r.text
            made = uuid.UUID(r.headers["fsc-transaction-id"])
            assert made.version == 7
            bad = await post(port, ctx, "/v1/prognoses", prognose(), **{"Fsc-Transaction-Id": "x"})
            assert bad.status_code == 400
            assert bad.headers["content-type"].startswith("application/problem+json")
        row, _ = await self.rows(tls, bericht_id)
        assert row.transaction_id == str(made)


def test_the_context_offers_only_forward_secret_aead_suites(pki: Pki, settings: Settings) -> None:
    ctx = server_context(
        settings.model_copy(update={"tls_cert_file": pki.cert_file, "tls_key_file": pki.key_file})
    )
    assert ctx is not None and ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    for suite in ctx.get_ciphers():
        if suite["protocol"] == "TLSv1.2":
            assert suite["kea"] in ("kx-ecdhe", "kx-dhe"), suite["name"]
            assert suite["aead"], suite["name"]


def test_plain_http_warns_that_it_is_for_development(settings: Settings) -> None:
    from structlog.testing import capture_logs

    from koppelpunt.api.server import server_config

    with capture_logs() as logs:
        server_config(lambda *a: None, settings)
    warned = [e for e in logs if e["event"] == "http_without_tls"]
    assert warned and "development only" in warned[0]["detail"]
