"""`hes disconnect`, `hes reconnect`, `hes clock sync`: commands on one meter, each recorded as an order.

Exit codes, as for ``hes read``: 0 EXE or WARN (executed; a WARN's observations are printed and in
``--json``'s ``state``), 1 FAIL (the reason is the one line on stderr), 2 bad arguments, 4 refused for
the user's role (``cli.auth``: disconnect and reconnect need a technician, clock sync an operator).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer

from cli.auth import require
from cli.registry import TIMEOUT_HELP, open_registry, run_or_exit, timeouts
from hes.commands import DEFAULT_TOLERANCE, CommandName, CommandResult, Commands

__all__ = ["EXIT_CODES", "clock_app", "clock_sync", "disconnect", "reconnect"]

#: Exit code per order result.
EXIT_CODES = {"EXE": 0, "FAIL": 1, "WARN": 0}

clock_app = typer.Typer(
    name="clock",
    help="The meter's clock.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_Serial = Annotated[str, typer.Argument(help="The meter's serial number.")]
_Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
_Timeout = Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)]
_Recheck = Annotated[bool, typer.Option(
    "--recheck-dc", help="Contact the meter's concentrator even if it was unreachable last time.")]


def _run(serial: str, command: CommandName, as_json: bool, timeout: float | None, recheck_dc: bool,
         tolerance: float = DEFAULT_TOLERANCE) -> None:
    registry = run_or_exit(command, open_registry)
    # Refused before the order exists: a refusal is one audit line, not a FAIL order on the meter.
    identity = run_or_exit(command, lambda: require(command, registry.engine, serial))

    def action() -> CommandResult:
        commands = Commands(registry, who=identity.audit_name, timeouts=timeouts(timeout), recheck_dc=recheck_dc)
        return asyncio.run(commands.run(serial, command, tolerance))

    result = run_or_exit(command, action)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        detail = result.detail
        print(f"{result.order_number} {result.serial} {result.command} {result.state}" + (f": {detail}" if detail
                                                                                          else ""))
    if result.state == "FAIL":
        print(f"hes {command}: {serial}: {result.reason}", file=sys.stderr)
    raise typer.Exit(EXIT_CODES[result.state])


def disconnect(serial: _Serial, as_json: _Json = False, timeout: _Timeout = None, recheck_dc: _Recheck = False) -> None:
    """Open the meter's relay (IC 70 remote_disconnect), then read its state back."""
    _run(serial, "disconnect", as_json, timeout, recheck_dc)


def reconnect(serial: _Serial, as_json: _Json = False, timeout: _Timeout = None, recheck_dc: _Recheck = False) -> None:
    """Close the meter's relay (IC 70 remote_reconnect), then read its state back (WARN if manual action is needed)."""
    _run(serial, "reconnect", as_json, timeout, recheck_dc)


@clock_app.command("sync")
def clock_sync(
    serial: _Serial,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Seconds of deviation left alone.", min=0.0)] = (
        DEFAULT_TOLERANCE
    ),
    as_json: _Json = False,
    timeout: _Timeout = None,
    recheck_dc: _Recheck = False,
) -> None:
    """Read the meter's clock; if off by more than --tolerance seconds, set it to the head-end's time (UTC)."""
    _run(serial, "clock-sync", as_json, timeout, recheck_dc, tolerance)
