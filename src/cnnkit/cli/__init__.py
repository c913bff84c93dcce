"""The ``cnnkit`` command; each command group lives in its own module, imported only when it is called."""
from __future__ import annotations


def main() -> None:
    from cnnkit.cli._app import cli

    cli(prog_name="cnnkit")


__all__ = ["main"]
