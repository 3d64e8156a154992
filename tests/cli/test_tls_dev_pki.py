"""`koppelpunt tls dev-pki` (make run): the development CA, server certificate and a client
certificate per development sender with its OIN, keys 0600, kept on a second run."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml
from cryptography import x509
from typer.testing import CliRunner

from koppelpunt.cli.main import app as cli
from koppelpunt.config import PROJECT_ROOT
from koppelpunt.pki import subject_oin

DEV_SENDERS = PROJECT_ROOT / "dev" / "senders.dev.yaml"


def test_dev_pki_makes_a_certificate_per_dev_sender(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    args = ["tls", "dev-pki", "--dir", str(directory), "--senders", str(DEV_SENDERS)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert str(directory) in result.output
    senders = yaml.safe_load(DEV_SENDERS.read_text())["senders"]
    assert senders and all(len(s["oin"]) == 20 and s["oin"].isdigit() for s in senders)
    for sender in senders:
        cert = x509.load_pem_x509_certificate((directory / f"{sender['name']}.crt").read_bytes())
        assert subject_oin(cert) == sender["oin"]
    for key in directory.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
