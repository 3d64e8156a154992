"""A small certificate authority for development and tests (never for production).

`make run` and the test suite need a working PKI that is made on the spot: a CA, a server
certificate for 127.0.0.1/localhost, client certificates that carry an OIN the way PKIoverheid
certificates do (the Subject's serialNumber attribute, 20 digits), and certificates that are
expired, not yet valid or signed by another CA, to show that the TLS stack refuses them. The
`cryptography` library does the X.509 work; this module only fixes the profile in one place, so
the API's and the Kafka broker's development certificates are made the same way.

Production certificates come from PKIoverheid (trust anchor: the PKIoverheid Private Root); see
docs/beheer.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# A development certificate lives long enough for a developer's machine, not forever.
DEFAULT_VALIDITY = dt.timedelta(days=825)
# Clock skew between the machine that issues and the one that checks.
BACKDATE = dt.timedelta(minutes=5)


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate with its private key, both PEM."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def write(self, cert_path: Path, key_path: Path, *, chain: Sequence[bytes] = ()) -> None:
        """Write the certificate (followed by `chain`, PEM) and the key (mode 0600)."""
        write_public(cert_path, self.cert_pem + b"".join(chain))
        write_private(key_path, self.key_pem)


def write_private(path: Path, data: bytes | str) -> None:
    """Write `data` (text as UTF-8) to a file only its owner can read: a private key, a
    connection config (it holds a password), an export of rejected messages (they hold BSNs).

    A new file is created 0600 beside `path` (mkstemp: os.open with O_EXCL and mode 0o600,
    whatever the umask, so there is no moment it is readable by others) and renamed over it.
    An existing file is thereby replaced, not rewritten: whoever could read it, or had it open,
    does not see the new content, and the result is 0600 whatever the old file's mode.
    Something that is not a regular file (/dev/stdout, a pipe) is written as it is.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.exists() and not path.is_file():
        with path.open("wb") as fh:
            fh.write(raw)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _subject(common_name: str, organisation: str | None, oin: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "NL")]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    if oin is not None:
        # PKIoverheid carries the organisation's OIN in the Subject serialNumber (2.5.4.5).
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, oin))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A self-signed root that issues server and client certificates."""

    certificate: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(
        cls,
        name: str,
        *,
        key_type: KeyType = "ec",
        not_before: dt.datetime | None = None,
        validity: dt.timedelta = DEFAULT_VALIDITY,
    ) -> CertificateAuthority:
        key = _new_key(key_type)
        start = not_before or (_now() - BACKDATE)
        subject = _subject(name, "koppelpunt development", None)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError(f"{key_path}: not an EC or RSA private key")
        return cls(certificate, key)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, cert_path: Path, key_path: Path) -> None:
        write_public(cert_path, self.cert_pem)
        write_private(key_path, _key_pem(self.key))

    def _issue(
        self,
        subject: x509.Name,
        *,
        key_type: KeyType,
        usage: x509.ObjectIdentifier,
        alt_names: Sequence[x509.GeneralName],
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
    ) -> Issued:
        key = _new_key(key_type)
        start = not_before or (_now() - BACKDATE)
        end = not_after or (start + DEFAULT_VALIDITY)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=key_type == "rsa",
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)

    def issue_server(
        self,
        hosts: Sequence[str] = ("127.0.0.1", "localhost"),
        *,
        key_type: KeyType = "ec",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """A TLS server certificate for `hosts` (IP addresses and DNS names) in its SAN."""
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._issue(
            _subject(hosts[0], "koppelpunt development", None),
            key_type=key_type,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            alt_names=names,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_client(
        self,
        common_name: str,
        *,
        oin: str | None,
        organisation: str | None = None,
        key_type: KeyType = "ec",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        """A TLS client certificate; `oin` goes into the Subject serialNumber as in PKIoverheid."""
        return self._issue(
            _subject(common_name, organisation or common_name, oin),
            key_type=key_type,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            alt_names=(),
            not_before=not_before,
            not_after=not_after,
        )


def subject_oin(certificate: x509.Certificate) -> str | None:
    """The Subject serialNumber of `certificate`, or None when it has none (not validated)."""
    values = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("ascii", "replace")
