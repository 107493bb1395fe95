"""The ``aioreid`` command line: one Typer app, one module per group of commands."""

from aioreid.platform.cli.main import app, main

__all__ = ["app", "main"]
