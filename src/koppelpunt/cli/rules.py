"""`koppelpunt rules check DIR | dry-run DIR --since DATE`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Routing rules: validate a directory, try it out.", no_args_is_help=True)
