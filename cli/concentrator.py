"""`hes concentrator ...`: the registered data concentrators (keys are never shown)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.registry import open_registry, run_or_exit
from hes.registry import ConcentratorInfo

__all__ = ["app", "list_command", "show"]

app = typer.Typer(
    name="concentrator",
    help="Data concentrators in the registry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _reachable(info: ConcentratorInfo) -> str:
    return "unknown" if info.reachable is None else ("yes" if info.reachable else "no")


@app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List concentrators with their address, security and number of meters."""
    items = run_or_exit("concentrator", lambda: open_registry().list_concentrators())
    if as_json:
        print(json.dumps([c.to_json() for c in items]))
        return
    if not items:
        print("no concentrators registered")
        return
    print(f"{'id':<12} {'address':<22} {'security':<9} {'meters':>6}  {'reachable':<9} last contact")
    for c in items:
        contact = "never" if c.last_contact is None else c.last_contact.isoformat(timespec="seconds")
        print(f"{c.id:<12} {c.host + ':' + str(c.port):<22} {c.security_policy:<9} {c.meters:>6}  "
              f"{_reachable(c):<9} {contact}")


@app.command("show")
def show(
    ident: Annotated[str, typer.Argument(help="Concentrator id, e.g. DC0001.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one concentrator (its keys are only said to be set)."""
    info = run_or_exit("concentrator", lambda: open_registry().show_concentrator(ident))
    if as_json:
        print(json.dumps(info.to_json()))
        return
    for name, value in info.to_json().items():
        print(f"{name:<14} {'-' if value is None else value}")
