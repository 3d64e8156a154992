"""Commands other than `db upgrade` and `serve` never create a database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Every read-only command a user might run from the wrong directory.
COMMANDS = [
    ["rejected", "list"],
    ["parked", "list"],
    ["outbox", "list"],
    ["inzage", "--bsn", "999993653"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_a_command_in_another_directory_creates_no_database(
    command: list[str], tmp_path: Path
) -> None:
    """Run with the default relative database URL where no var/ exists: the command names the
    database it would read and exits 2; no ./var/koppelpunt.db appears."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KOPPELPUNT_DEVELOPMENT_MODE": "true",
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "koppelpunt"), *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no database at {tmp_path / 'var' / 'koppelpunt.db'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var").exists()
