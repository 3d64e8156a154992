"""A TLS-terminating proxy in front of the service: a real nginx (Debian's, installed by the
Makefile's system-deps) does the two-way TLS and passes the verified client certificate in
KOPPELPUNT_TLS_CLIENT_CERT_HEADER ($ssl_client_escaped_cert). The service believes that header
only on connections from KOPPELPUNT_TLS_TRUSTED_PROXIES: nginx connects from 127.0.0.2 (its
proxy_bind), the test's direct connections come from 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import ssl
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from koppelpunt.config import Settings
from koppelpunt.pki import CertificateAuthority
from tests.http_server import serving
from tests.kafka_fixtures import free_port
from tests.messages import L, prognose_xml

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="no nginx (make system-deps installs nginx-light as root)"
)
XML = {"Content-Type": "application/xml"}
HEADER = "X-SSL-Client-Cert"
VO_OIN = "00000001234567890000"


@contextlib.contextmanager
def nginx(
    directory: Path, port: int, upstream: int, ca: Path, cert: Path, key: Path
) -> Iterator[None]:
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
master_process off;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {directory}/body;
  proxy_temp_path {directory}/proxy;
  fastcgi_temp_path {directory}/fastcgi;
  uwsgi_temp_path {directory}/uwsgi;
  scgi_temp_path {directory}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_client_certificate {ca};
    ssl_verify_client on;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_bind 127.0.0.2;
      proxy_set_header {HEADER} $ssl_client_escaped_cert;
    }}
  }}
}}
"""
    )
    assert NGINX is not None
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


async def wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError("nginx did not start")


async def test_the_header_counts_from_the_proxy_only(settings: Settings, tmp_path: Path) -> None:
    ca = CertificateAuthority.create("proxy-test-ca")
    ca.write(tmp_path / "ca.crt", tmp_path / "ca.key")
    ca.issue_server().write(tmp_path / "server.crt", tmp_path / "server.key")
    vo = ca.issue_client("vo", oin=VO_OIN)
    vo.write(tmp_path / "vo.crt", tmp_path / "vo.key")
    senders = tmp_path / "senders-proxy.yaml"
    key = hashlib.sha256(b"key-vo").hexdigest()
    senders.write_text(
        "senders:\n"
        f"  - {{name: vo-cert, role: vo, oin: '{VO_OIN}'}}\n"
        f"  - {{name: vo-key, role: vo, key_sha256: {key}}}\n"
    )
    service = settings.model_copy(
        update={
            "senders_file": senders,
            "tls_client_cert_header": HEADER,
            "tls_trusted_proxies": ["127.0.0.2/32"],
        }
    )
    port = free_port()
    async with serving(service) as upstream:
        with nginx(
            tmp_path,
            port,
            upstream,
            tmp_path / "ca.crt",
            tmp_path / "server.crt",
            tmp_path / "server.key",
        ):
            await wait_listening(port)
            ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
            ctx.load_cert_chain(tmp_path / "vo.crt", tmp_path / "vo.key")
            async with httpx.AsyncClient(verify=ctx) as client:
                r = await client.post(
                    f"https://127.0.0.1:{port}/v1/prognoses",
                    content=prognose_xml(f"proxy-{uuid.uuid4().hex[:8]}", [L()]),
                    headers=XML,
                )
            assert r.status_code == 202, r.text
            # Directly, from an address that is not the proxy's, the same header is ignored:
            # no certificate, so a bearer key is needed (and enough, for a key-only sender).
            forged = urllib.parse.quote(vo.cert_pem.decode("ascii"), safe="")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{upstream}") as client:
                body = prognose_xml(f"proxy-{uuid.uuid4().hex[:8]}", [L()])
                r = await client.post(
                    "/v1/prognoses", content=body, headers={**XML, HEADER: forged}
                )
                assert r.status_code == 401, r.text
                r = await client.post(
                    "/v1/prognoses",
                    content=body,
                    headers={**XML, HEADER: forged, "Authorization": "Bearer key-vo"},
                )
                assert r.status_code == 202, r.text
