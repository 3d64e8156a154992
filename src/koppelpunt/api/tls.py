"""Two-way TLS for the API: the server's SSL context and the client certificate of a request.

uvicorn (0.55) takes a ready SSLContext through its public `ssl_context_factory`, so the
context is ours: TLS 1.2 at least, on TLS 1.2 only ECDHE/DHE key exchange with AEAD ciphers
(Digikoppeling: forward secrecy; no RSA key exchange, no CBC), TLS 1.3 as OpenSSL offers it, and
client certificates required, optional or not asked for (KOPPELPUNT_TLS_CLIENT_AUTH).

uvicorn does not give the application the client certificate (the ASGI TLS extension,
`scope["extensions"]["tls"]`, is not in a released uvicorn). KoppelpuntHttpProtocol
(api/server.py) puts it there from the TLS transport (`get_extra_info("ssl_object")`), or, on
a connection from KOPPELPUNT_TLS_TRUSTED_PROXIES, from the header a TLS-terminating proxy
fills with the certificate it verified (KOPPELPUNT_TLS_CLIENT_CERT_HEADER, nginx's
`$ssl_client_escaped_cert`). From any other address that header is ignored.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from koppelpunt.config import Settings
from koppelpunt.pki import subject_oin

# TLS 1.2: ECDHE/DHE key exchange, AEAD ciphers only. TLS 1.3 suites are all AEAD with
# (EC)DHE and are set apart by OpenSSL (set_ciphers does not touch them).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!PSK:!DSS"
# What PKIoverheid puts in the Subject serialNumber of an organisation certificate: the OIN.
OIN = re.compile(r"^[0-9]{20}$")

_VERIFY = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The API's SSLContext, or None without KOPPELPUNT_TLS_CERT_FILE (plain HTTP)."""
    if settings.tls_cert_file is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    mode = settings.effective_tls_client_auth
    if mode != "none" and settings.tls_client_ca_file is not None:
        ctx.load_verify_locations(cafile=settings.tls_client_ca_file)
    ctx.verify_mode = _VERIFY[mode]
    return ctx


@dataclass(frozen=True, slots=True)
class TlsProxies:
    """The proxies trusted to pass a verified client certificate, and their header."""

    header: bytes | None
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsProxies:
        header = settings.tls_client_cert_header
        return cls(
            header.lower().encode("latin-1") if header else None,
            tuple(ipaddress.ip_network(n) for n in settings.tls_trusted_proxies),
        )

    def trusts(self, host: str | None) -> bool:
        if self.header is None or not host or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def transport_extension(ssl_object: Any) -> dict[str, Any] | None:
    """The ASGI `tls` extension for a TLS connection: the client's verified certificate (PEM,
    leaf only: Python 3.11 does not expose the verified chain) when it sent one."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    return {
        "client_cert_chain": chain,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
        "server_cert": None,
    }


def proxy_extension(value: bytes) -> dict[str, Any]:
    """The `tls` extension from a trusted proxy's header (URL-escaped PEM, as nginx's
    `$ssl_client_escaped_cert`); an empty header: the proxy saw no certificate."""
    pem = urllib.parse.unquote(value.decode("latin-1")).strip()
    return {
        "client_cert_chain": [pem + "\n"] if pem else [],
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
        "server_cert": None,
        "koppelpunt_via_proxy": True,
    }


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """What authentication needs of a verified client certificate: its OIN, or why none."""

    oin: str | None
    problem: str | None  # why no OIN: no serialNumber, malformed, unreadable


def client_certificate(scope: Mapping[str, Any]) -> ClientCertificate | None:
    """The client certificate of this request (verified by the handshake or by a trusted
    proxy); None when there is none."""
    tls = scope.get("extensions", {}).get("tls")
    if not tls or not tls.get("client_cert_chain"):
        return None
    try:
        certificate = x509.load_pem_x509_certificate(tls["client_cert_chain"][0].encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return ClientCertificate(None, "het clientcertificaat is onleesbaar")
    oin = subject_oin(certificate)
    if oin is None:
        return ClientCertificate(
            None, "het clientcertificaat heeft geen OIN (Subject serialNumber)"
        )
    if not OIN.fullmatch(oin):
        return ClientCertificate(None, "het OIN in het clientcertificaat is geen 20 cijfers")
    return ClientCertificate(oin, None)
