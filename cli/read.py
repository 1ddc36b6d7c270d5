"""`hes read SERIAL --what ...`: an on-demand read of one meter, its order number, result and values."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.auth import require
from cli.registry import TIMEOUT_HELP, open_registry, run_or_exit, timeouts
from hes.reads import WHATS, ReadRequestError, ReadResult, ReadValue, read_meter

__all__ = ["parse_time", "read"]


def parse_time(option: str, text: str | None) -> datetime | None:
    """An ISO 8601 date or date-time; UTC unless it carries an offset (``ReadRequestError`` when unreadable)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReadRequestError(f"{option} {text!r} is not an ISO 8601 date or time (e.g. 2024-03-01T00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(value: ReadValue) -> str:
    return "" if value.status is None else f"0x{value.status:02x}"


def _headline(result: ReadResult) -> str:
    span = f" {_time(result.start)}..{_time(result.end)}" if result.start is not None else ""
    tail = f": {result.reason}" if result.reason else ""
    return f"order {result.order_number} read {result.what} {result.serial}{span}: {result.state}{tail}"


def _print_plain(result: ReadResult) -> None:
    print(_headline(result))
    for observation in result.observations:
        print(f"observation: {observation}")
    if result.ok:
        print(f"values: {len(result.values)} read, {result.stored} new rows stored")
    for v in result.values:
        status = f" status {_status(v)}" if v.status is not None else ""
        unit = f" {v.unit}" if v.unit else ""
        print(f"{_time(v.time)} dev {v.deviation} {v.obis} {v.name} = {v.value}{unit}{status}")


def _print_rich(result: ReadResult, console: Console) -> None:
    colour = {"EXE": "green", "WARN": "yellow", "FAIL": "red"}[result.state]
    console.print(_headline(result), style=colour, markup=False, highlight=False)
    for observation in result.observations:
        console.print(f"observation: {observation}", style="yellow", markup=False, highlight=False)
    if not result.values:
        return
    table = Table(title=f"{len(result.values)} values, {result.stored} new rows stored")
    for name, justify in (("time (UTC)", "left"), ("dev", "right"), ("OBIS", "left"), ("name", "left"),
                          ("value", "right"), ("unit", "left"), ("status", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for v in result.values:
        table.add_row(_time(v.time), "" if v.deviation is None else str(v.deviation), v.obis, v.name,
                      "" if v.value is None else str(v.value), v.unit, _status(v))
    console.print(table)


def read(
    serial: Annotated[str, typer.Argument(help="The meter's serial number.")],
    what: Annotated[str, typer.Option("--what", help="clock, registers, profile, daily or events.")],
    start: Annotated[str | None, typer.Option("--from", help="Range start, ISO 8601 (UTC unless an offset).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Range end, ISO 8601 (default: now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    clock_tolerance: Annotated[
        float, typer.Option("--clock-tolerance", help="Seconds of meter clock deviation before WARN.")
    ] = 60.0,
    timeout: Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)] = None,
    recheck_dc: Annotated[
        bool, typer.Option("--recheck-dc", help="Contact the concentrator even if it was unreachable last time.")
    ] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v",
        help="Trace the session on stderr (INFO): what was read leniently, limits learned, retries.")] = False,
) -> None:
    """Read a meter now: prints the order number, EXE/WARN/FAIL with the reason, and the values."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="hes read: %(name)s: %(message)s", stream=sys.stderr)

    def act() -> ReadResult:
        if what not in WHATS:
            raise ReadRequestError(f"--what {what!r}: one of {', '.join(WHATS)}")
        if clock_tolerance < 0:
            raise ReadRequestError(f"--clock-tolerance {clock_tolerance} cannot be negative")
        deadlines = timeouts(timeout)
        begin, finish = parse_time("--from", start), parse_time("--to", end)
        registry = open_registry()
        identity = require("read", registry.engine, f"read {what} {serial}", group="read")
        try:
            return asyncio.run(read_meter(
                registry, serial, what, start=begin, end=finish, requested_by=identity.audit_name,
                clock_tolerance=timedelta(seconds=clock_tolerance), timeouts=deadlines, recheck_dc=recheck_dc,
            ))
        finally:
            registry.engine.dispose()

    result = run_or_exit("read", act)
    if as_json:
        print(json.dumps(result.to_json()))
    elif result.ok:
        console = Console()
        if console.is_terminal:
            _print_rich(result, console)
        else:
            _print_plain(result)
    if not result.ok:
        print(f"hes read: {_headline(result)}", file=sys.stderr)
        raise typer.Exit(1)
