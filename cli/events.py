"""`hes events list`: stored meter and concentrator events, newest first, with their criticality."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cli.auth import require
from cli.registry import open_registry, run_or_exit
from hes.events.catalog import Criticality, load_catalog
from hes.events.mqtt import pending_count
from hes.events.query import list_events
from hes.reads import ReadRequestError

__all__ = ["app", "list_command", "parse_since"]

app = typer.Typer(
    name="events",
    help="Stored events and alarms (meters' and concentrators' own), named by the event table.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_SPAN = re.compile(r"^(\d+)([mhd])$")


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """``48h``, ``30m``, ``7d`` back from ``now``, or an ISO 8601 time (UTC unless it has an offset)."""
    if text is None:
        return None
    match = _SPAN.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReadRequestError(f"--since {text!r}: a span like 48h, 30m, 7d, or an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@app.command("list")
def list_command(
    meter: Annotated[str | None, typer.Option("--meter", help="Only this meter's events.")] = None,
    concentrator: Annotated[
        str | None, typer.Option("--concentrator", help="Only this concentrator's and its meters' events.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="48h, 7d, or an ISO 8601 time.")] = None,
    min_criticality: Annotated[
        str, typer.Option("--min-criticality", help="info, warning, alarm or critical.")
    ] = "info",
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List stored events, newest first, with name and criticality (viewers and above)."""
    registry = run_or_exit("events", open_registry)
    run_or_exit("events", lambda: require("read", registry.engine, "events list", group="events"))

    def act() -> tuple[list[dict[str, object]], int]:
        level = Criticality.parse(min_criticality, "--min-criticality")
        start = parse_since(since, datetime.now(UTC))
        found = list_events(registry.engine, serial=meter, concentrator=concentrator, since=start,
                            min_criticality=level, limit=limit, catalog=load_catalog())
        return [e.to_json() for e in found], pending_count(registry.engine)

    events, pending = run_or_exit("events", act)
    if as_json:
        print(json.dumps({"events": events, "mqtt_pending": pending}))
        return
    if not events:
        print("no events")
    for e in events:
        print(f"{e['time']} {e['device']:<14} {e['criticality']:<8} {e['log']:<14} {e['code']:>4} {e['name']}")
    print(f"MQTT outbox: {pending} message(s) not published yet")
