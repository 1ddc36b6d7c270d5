"""`hes concentrator ...`: the registered data concentrators (keys are never shown) and their own event logs."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cli.registry import TIMEOUT_HELP, open_registry, run_or_exit, timeouts
from hes.errors import HesError
from hes.registry import ConcentratorInfo

__all__ = ["app", "clock_sync", "events", "list_command", "show", "sync"]

app = typer.Typer(
    name="concentrator",
    help="Data concentrators in the registry: their meter tables, clocks and own event logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
clock_app = typer.Typer(
    name="clock",
    help="A concentrator's own clock.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(clock_app, name="clock")


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
        print(f"{name:<20} {'-' if value is None else value}")


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


@app.command("sync")
def sync(
    ident: Annotated[str | None, typer.Argument(help="Concentrator id (or --all).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every registered concentrator.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)] = None,
) -> None:
    """Read concentrators' meter tables and clocks; reconcile the tables with the registry (exit 1 if one FAILed).

    Meters a DC has that the registry lacks are recorded as discovered (hes meter commission gives
    their keys); meters the registry links to the DC that its table no longer lists are flagged
    missing (WARN, hes silent lists them); changed addresses are applied. One order per DC.
    """
    import asyncio

    from cli.auth import require
    from hes.dcsync import SyncResult, sync_concentrator
    from hes.runner import OrderRunner

    run_or_exit("concentrator", lambda: _one_or_all(ident, every))
    registry = run_or_exit("concentrator", open_registry)
    if ident is not None:
        run_or_exit("concentrator", lambda: registry.show_concentrator(ident))  # an unknown DC is a bad argument
    identity = run_or_exit("concentrator", lambda: require("registry", registry.engine,
                                                           f"concentrator sync {ident or '--all'}",
                                                           group="concentrator"))
    deadlines = run_or_exit("concentrator", lambda: timeouts(timeout))
    idents = [ident] if ident is not None else [c.id for c in registry.list_concentrators()]

    async def main() -> list[SyncResult]:
        runner = OrderRunner(registry, requested_by=identity.audit_name, timeouts=deadlines)
        return list(await asyncio.gather(*(sync_concentrator(runner, dc, requested_by=identity.audit_name)
                                           for dc in idents)))

    results = run_or_exit("concentrator", lambda: asyncio.run(main()))
    if as_json:
        print(json.dumps([r.to_json() for r in results]))
    else:
        for r in results:
            head = r.summary or r.reason or ""
            print(f"order {r.order_number} concentrator sync {r.concentrator}: {r.state}: {head}")
            for observation in r.observations:
                print(f"  observation: {observation}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"hes concentrator: sync {r.concentrator}: {r.reason}", file=sys.stderr)
    if failed:
        raise typer.Exit(1)


@clock_app.command("sync")
def clock_sync(
    ident: Annotated[str, typer.Argument(help="Concentrator id, e.g. DC0001.")],
    tolerance: Annotated[float, typer.Option("--tolerance", help="Seconds of deviation left alone.", min=0.0)] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)] = None,
) -> None:
    """Read the concentrator's clock; if off by more than --tolerance seconds, set it to the head-end's time."""
    import asyncio

    from cli.auth import require
    from hes.commands import Commands

    registry = run_or_exit("concentrator", open_registry)
    run_or_exit("concentrator", lambda: registry.show_concentrator(ident))
    identity = run_or_exit("concentrator", lambda: require("clock-sync", registry.engine,
                                                           f"concentrator clock sync {ident}", group="concentrator"))
    deadlines = run_or_exit("concentrator", lambda: timeouts(timeout))
    result = run_or_exit("concentrator", lambda: asyncio.run(
        Commands(registry, who=identity.audit_name, timeouts=deadlines).clock_sync(ident, tolerance,
                                                                                 concentrator=True)))
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        print(f"{result.order_number} concentrator {ident} clock-sync {result.state}"
              + (f": {result.detail}" if result.detail else ""))
    if result.state == "FAIL":
        print(f"hes concentrator: clock sync {ident}: {result.reason}", file=sys.stderr)
        raise typer.Exit(1)


class ConcentratorArgumentError(HesError):
    """A concentrator command asked for wrongly (no concentrator named, or one and --all)."""


def _one_or_all(ident: str | None, every: bool) -> None:
    if (ident is None) == (not every):
        raise ConcentratorArgumentError("name one concentrator, or --all")
