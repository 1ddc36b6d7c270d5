"""`hes report ...`: collection reports (completeness of a day's load profile per meter)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

from cli.registry import open_registry, run_or_exit
from scheduler.reports import DEFAULT_THRESHOLD, CompletenessReport, ReportError, completeness

__all__ = ["app", "completeness_command", "parse_day"]

app = typer.Typer(
    name="report",
    help="Collection reports: completeness of a day's load profile per meter.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(text: str, today: date | None = None) -> date:
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` (UTC); ``ReportError`` otherwise."""
    value = text.strip().lower()
    current = today or datetime.now(UTC).date()
    if value == "today":
        return current
    if value == "yesterday":
        return current - timedelta(days=1)
    if _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ReportError(f"--day {text!r} is not a day (YYYY-MM-DD, 'today' or 'yesterday')")


def _percent(share: float) -> str:
    return f"{share * 100:.1f} %"


def _print(report: CompletenessReport) -> None:
    data = report.to_json()
    print(f"completeness of {data['day']} (UTC day, as of {data['as_of']}): {data['meters']} meters, "
          f"{data['meters_complete']} complete ({_percent(data['meters_complete_share'])}); "
          f"{data['intervals_stored']} of {data['intervals_expected']} intervals stored "
          f"({_percent(data['intervals_share'])})")
    below = report.below
    print(f"below {report.threshold:g} %: {len(below)} meter(s)")
    for meter in below:
        print(f"  {meter.serial:<16} {meter.stored:>4}/{meter.expected:<4} {_percent(meter.share)}")
    for serial, why in report.excluded:
        print(f"not judged: {serial} ({why})")


@app.command("completeness")
def completeness_command(
    day: Annotated[str, typer.Option("--day", help="The UTC day: YYYY-MM-DD, 'today' or 'yesterday'.")],
    threshold: Annotated[
        float, typer.Option("--threshold", help="Percent of a day's intervals a meter must have.")
    ] = DEFAULT_THRESHOLD,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Per meter, the day's intervals expected versus stored; the meters below the threshold."""

    def act() -> CompletenessReport:
        wanted = parse_day(day)
        registry = open_registry()
        try:
            return completeness(registry.engine, wanted, threshold=threshold)
        finally:
            registry.engine.dispose()

    report = run_or_exit("report", act)
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        _print(report)
