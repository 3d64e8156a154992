"""The CLI starts without importing what only a running command needs."""

from __future__ import annotations

import subprocess
import sys

# Each costs 0.1-0.5 s to import; --help and argument errors need none of them.
HEAVY = ("sqlalchemy", "aiokafka", "xmlschema", "fastapi", "uvicorn", "alembic", "httpx", "lxml")


def test_importing_the_cli_loads_no_driver_or_framework() -> None:
    code = (
        "import sys, koppelpunt.cli.main\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
