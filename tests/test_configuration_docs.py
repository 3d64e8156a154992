"""Every setting is in the configuration reference (docs/configuration.md)."""

from __future__ import annotations

import re

from koppelpunt.config import PROJECT_ROOT, Settings


def test_every_setting_is_documented() -> None:
    text = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    # A setting's name as the table writes it: in backticks, without the KOPPELPUNT_ prefix.
    documented = set(re.findall(r"`(?:KOPPELPUNT_)?([A-Z][A-Z0-9_]+)`", text))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    assert not missing, f"not in docs/configuration.md: {missing}"
