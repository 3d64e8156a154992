"""Every CLI option and argument says what it is for (`--help` is the CLI's manual)."""

from __future__ import annotations

from typing import Any

import typer

from koppelpunt.cli.main import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    sub = getattr(command, "commands", None)
    if sub is None:
        return [(" ".join(path), command)]
    found: list[tuple[str, Any]] = []
    for name, child in sub.items():
        found += _commands(child, (*path, name))
    return found


def test_every_option_and_argument_is_described() -> None:
    undescribed = [
        f"koppelpunt {path} {param.name}"
        for path, command in _commands(typer.main.get_command(app))
        for param in command.params
        if param.name != "help" and not getattr(param, "help", None)
    ]
    assert undescribed == []
