"""The development PKI: what it issues is accepted by a real TLS handshake, and only that."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from koppelpunt.pki import CertificateAuthority, subject_oin, write_private

OIN = "00000001234567890000"


def test_client_certificate_carries_the_oin_in_subject_serial_number() -> None:
    ca = CertificateAuthority.create("test CA")
    issued = ca.issue_client("vo", oin=OIN)
    assert subject_oin(issued.certificate) == OIN
    assert subject_oin(ca.issue_client("no oin", oin=None).certificate) is None
    assert issued.certificate.issuer == ca.certificate.subject


def test_keys_are_written_0600_and_load_back(tmp_path: Path) -> None:
    ca = CertificateAuthority.create("test CA", key_type="rsa")
    ca.write(tmp_path / "ca.pem", tmp_path / "ca.key")
    server = ca.issue_server()
    server.write(tmp_path / "s.pem", tmp_path / "s.key", chain=[ca.cert_pem])
    for key in ("ca.key", "s.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    again = CertificateAuthority.load(tmp_path / "ca.pem", tmp_path / "ca.key")
    assert again.certificate == ca.certificate
    assert len(x509.load_pem_x509_certificates((tmp_path / "s.pem").read_bytes())) == 2


def test_write_private_replaces_an_existing_file_with_a_0600_one(tmp_path: Path) -> None:
    """The one write_private (keys, connection configs, exports): text is written as UTF-8, an
    existing 0644 file is replaced by a new 0600 one (a reader of the old file sees nothing
    new), no temporary file is left, and a missing directory is made."""
    path = tmp_path / "sub" / "verbinding.json"
    write_private(path, "wachtwoord ë\n")
    assert path.read_bytes() == "wachtwoord ë\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with path.open("rb") as before:
        write_private(path, b"nieuw\n")
        assert before.read() == "wachtwoord ë\n".encode()
    assert path.read_bytes() == b"nieuw\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["verbinding.json"]


def test_write_private_writes_into_a_pipe_as_it_is(tmp_path: Path) -> None:
    """Something that is not a regular file (a named pipe, /dev/stdout) is written to, not
    replaced by a regular file."""
    fifo = tmp_path / "pijp"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_private(fifo, "door de pijp\n")
    reader.join(timeout=30)
    assert received == [b"door de pijp\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_server_certificate_passes_a_real_handshake(tmp_path: Path, key_type: str) -> None:
    """A TLS handshake in memory (ssl.MemoryBIO): the client verifies chain and host name."""
    ca = CertificateAuthority.create("test CA")
    server = ca.issue_server(("127.0.0.1", "localhost"), key_type=key_type)  # type: ignore[arg-type]
    server.write(tmp_path / "s.pem", tmp_path / "s.key")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "s.pem", tmp_path / "s.key")
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))

    def handshake(host: str) -> None:
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = client_ctx.wrap_bio(c_in, c_out, server_hostname=host)
        srv = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        for _ in range(10):
            for end, out, peer_in in ((client, c_out, s_in), (srv, s_out, c_in)):
                with contextlib.suppress(ssl.SSLWantReadError):
                    end.do_handshake()
                peer_in.write(out.read())
            if client.version() and srv.version():
                return
        raise AssertionError("handshake did not finish")

    handshake("localhost")
    handshake("127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake("example.org")


def test_expired_and_future_certificates_have_the_dates_asked_for() -> None:
    ca = CertificateAuthority.create("test CA")
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_client(
        "old", oin=OIN, not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(days=1)
    )
    assert expired.certificate.not_valid_after_utc < now
    future = ca.issue_client("new", oin=OIN, not_before=now + dt.timedelta(days=1))
    assert future.certificate.not_valid_before_utc > now
