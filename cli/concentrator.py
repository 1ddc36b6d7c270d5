"""`hes concentrator ...`: the registered data concentrators (keys are never shown) and their own event logs."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cli.registry import TIMEOUT_HELP, open_registry, run_or_exit, timeouts
from hes.registry import ConcentratorInfo

__all__ = ["app", "events", "list_command", "show"]

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


@app.command("events")
def events(
    ident: Annotated[str, typer.Argument(help="Concentrator id, e.g. DC0001.")],
    start: Annotated[
        str | None, typer.Option("--from", help="Range start, ISO 8601 (default: a day before --to).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Range end, ISO 8601 (default: now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)] = None,
) -> None:
    """Read the concentrator's own event log now, as an order (stored once each, named by the event table)."""
    import asyncio

    from cli.auth import require
    from cli.read import parse_time
    from hes.events.concentrator import read_concentrator_events

    registry = run_or_exit("concentrator", open_registry)
    run_or_exit("concentrator", lambda: registry.show_concentrator(ident))  # an unknown DC is a bad argument
    identity = run_or_exit("concentrator", lambda: require("read", registry.engine, f"concentrator events {ident}",
                                                           group="concentrator"))
    result = run_or_exit("concentrator", lambda: asyncio.run(read_concentrator_events(
        registry, ident, start=parse_time("--from", start), end=parse_time("--to", end),
        requested_by=identity.audit_name, timeouts=timeouts(timeout))))
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        print(f"order {result.order_number} concentrator events {result.concentrator}: {result.state}"
              + (f": {result.reason}" if result.reason else f"; {len(result.events)} events, {result.stored} new"))
        for observation in result.observations:
            print(f"observation: {observation}")
        for event in result.events:
            print(f"{event.time:%Y-%m-%dT%H:%M:%SZ} {event.code:>5} {event.name} ({event.criticality.label})")
    if not result.ok:
        print(f"hes concentrator: {ident}: {result.reason}", file=sys.stderr)
        raise typer.Exit(1)
