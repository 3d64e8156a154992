"""`koppelpunt tls dev-pki`: the development PKI `make run` serves HTTPS with (never production).

On first run: a CA, a server certificate for 127.0.0.1/localhost and a client certificate per
sender of the senders file that has an `oin` (that OIN in the Subject serialNumber, as in a
PKIoverheid certificate), private keys 0600. A later run keeps what exists and adds what is
missing (a sender added to the file), so the certificates a developer uses do not change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from koppelpunt.pki import CertificateAuthority

app = typer.Typer(help="TLS certificates for development.", no_args_is_help=True)


@app.command("dev-pki")
def dev_pki(
    directory: Annotated[Path, typer.Option("--dir", help="Where the files go.")] = Path("var/tls"),
    senders_file: Annotated[
        Path, typer.Option("--senders", help="Senders with an oin get a client certificate.")
    ] = Path("dev/senders.dev.yaml"),
) -> None:
    """Create (once) a development CA, server certificate and client certificates."""
    ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
    if ca_cert.exists() and ca_key.exists():
        ca = CertificateAuthority.load(ca_cert, ca_key)
    else:
        ca = CertificateAuthority.create("koppelpunt development CA")
        ca.write(ca_cert, ca_key)
    made: list[str] = []
    if not (directory / "server.crt").exists() or not (directory / "server.key").exists():
        ca.issue_server(("localhost", "127.0.0.1")).write(
            directory / "server.crt", directory / "server.key"
        )
        made.append("server")
    raw: Any = yaml.safe_load(senders_file.read_text(encoding="utf-8")) or {}
    for sender in raw.get("senders", []):
        name, oin = str(sender.get("name", "")), sender.get("oin")
        if not name or oin is None:
            continue
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        if cert.exists() and key.exists():
            continue
        ca.issue_client(name, oin=str(oin), organisation=name).write(cert, key)
        made.append(name)
    typer.echo(
        f"development TLS in {directory}/: ca.crt (trust anchor), server.crt/key, "
        f"<sender>.crt/key per sender with an oin"
        + (f"; made now: {', '.join(made)}" if made else "")
    )
