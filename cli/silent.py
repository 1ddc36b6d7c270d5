"""`hes silent --since 48h`: meters and concentrators that stopped sending data, with their last contact."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cli.registry import open_registry, run_or_exit
from scheduler.reports import ReportError, SilentReport, silent

__all__ = ["parse_since", "silent_command"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A duration back from now (``48h``, ``2d``, ``90m``, ``1w``) or an ISO 8601 instant (UTC unless an offset)."""
    value = text.strip().lower()
    current = now or datetime.now(UTC)
    match = _DURATION.fullmatch(value)
    if match:
        return current - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"--since {text!r} is neither a duration (48h, 2d, 90m) nor an ISO 8601 instant") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print(report: SilentReport) -> None:
    print(f"silent since {_time(report.since)}: {len(report.meters)} meter(s), "
          f"{len(report.concentrators)} concentrator(s)")
    for c in report.concentrators:
        state = "unknown" if c.reachable is None else ("reachable" if c.reachable else "unreachable")
        print(f"concentrator {c.ident:<12} last contact {_time(c.last_contact)}  last attempt "
              f"{_time(c.last_attempt)}  {state}  {c.meters} meter(s)")
    for m in report.meters:
        link = m.concentrator or "point-to-point"
        detail = f"  not reached since {_time(m.unreachable_since)}" if m.unreachable_since is not None else ""
        reason = f"  ({m.reason})" if m.reason else ""
        print(f"meter {m.serial:<16} {link:<14} last data {_time(m.last_data)}{detail}{reason}")


def silent_command(
    since: Annotated[
        str, typer.Option("--since", help="How far back: a duration (48h, 2d, 90m) or an ISO 8601 instant.")
    ] = "48h",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Meters with no data stored, and concentrators with no contact, since then (never-heard-of ones too)."""

    def act() -> SilentReport:
        moment = parse_since(since)
        registry = open_registry()
        try:
            return silent(registry.engine, moment)
        finally:
            registry.engine.dispose()

    report = run_or_exit("silent", act)
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        _print(report)
