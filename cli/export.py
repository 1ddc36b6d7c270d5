"""`hes export ...`: stored data as files for manual transfer (`hes export cim`: CIM XML and a CSV)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cim.export import ExportError, ExportWriteError, export_cim
from cim.outbox import OutboxConfig
from cli.auth import require
from cli.registry import open_registry, run_or_exit
from hes.config import load_settings
from hes.db.engine import StorageError
from hes.errors import FAILURES

__all__ = ["app", "cim_command"]

app = typer.Typer(
    name="export",
    help="Export stored data for manual transfer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _moment(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(f"{name} {text!r} is not an ISO 8601 time (e.g. 2026-11-21T00:00Z)") from None
    if moment.utcoffset() is None:
        raise ExportError(f"{name} {text} needs a time zone (e.g. Z)")
    return moment.astimezone(UTC)


def _meters(meters: str | None, meters_file: Path | None) -> list[str] | None:
    if meters is not None and meters_file is not None:
        raise ExportError("give --meters or --meters-file, not both")
    if meters_file is not None:
        try:
            text = meters_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ExportError(f"cannot read --meters-file {meters_file}: {exc}") from None
        serials = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    elif meters is not None:
        serials = [s.strip() for s in meters.split(",") if s.strip()]
    else:
        return None
    if not serials:
        raise ExportError("the meter list is empty")
    return serials


@app.command("cim")
def cim_command(
    start: Annotated[str, typer.Option("--from", help="Start, ISO 8601 with a time zone (2026-11-21T00:00Z).")],
    end: Annotated[str, typer.Option("--to", help="End, ISO 8601 with a time zone.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the XML files and readings.csv (created).")],
    meters: Annotated[str | None, typer.Option("--meters", help="Serials, comma-separated (default: all).")] = None,
    meters_file: Annotated[
        Path | None, typer.Option("--meters-file", help="A file of serials, one per line ('#' comments).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write the CIM messages (MeterReadings, EndDeviceEvents) of the data stored between --from and --to, and a CSV."""
    settings = run_or_exit("export", load_settings)
    try:
        first, last = _moment("--from", start), _moment("--to", end)
        serials = _meters(meters, meters_file)
        outbox = OutboxConfig.from_settings(settings)
    except ExportError as exc:
        print(f"hes export: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    registry = run_or_exit("export", open_registry)
    run_or_exit("export", lambda: require("export", registry.engine, f"export cim {start} {end}"))
    try:
        result = export_cim(registry.engine, first, last, out, meters=serials, outbox=outbox, now=datetime.now(UTC))
    except FAILURES as exc:
        print(f"hes export: {exc}", file=sys.stderr)
        # Writing or the database failed: a failed operation (1); anything else was asked wrongly (2).
        raise typer.Exit(1 if isinstance(exc, ExportWriteError | StorageError) else 2) from None
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        print(f"wrote {len(result.files)} message(s) with {result.values} value(s) into {out} (and {result.csv.name})")
