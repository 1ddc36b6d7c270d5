"""`hes devicetype ...`: the device types (what a make and model has, where) as data: list, show, add, validate."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.auth import require
from cli.registry import open_registry, run_or_exit, who
from hes.devicetypes import DeviceType, read_device_type, shipped_types

__all__ = ["add", "app", "list_command", "show", "validate"]

app = typer.Typer(
    name="devicetype",
    help="Device types: what a make and model of meter has and where, as data files (docs/DEVICE_TYPES.md).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _summary(kind: DeviceType, source: str, meters: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": kind.name, "source": source, "make": kind.make, "model": kind.model, "firmware": kind.firmware,
        "description": kind.description, "load_profile": str(kind.load_profile.obis),
        "daily_values": None if kind.daily is None else str(kind.daily.obis),
        "event_logs": [f"{log.name} {log.obis}" for log in kind.event_logs],
        "registers": [f"{r.name} {r.obis}" for r in kind.registers],
        "disconnect_control": None if kind.relay is None else str(kind.relay),
        "limits": {k: v for k, v in asdict(kind.limits).items() if v is not None},
    }
    if meters is not None:
        out["meters_named"] = meters
    return out


@app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The device types: shipped with the head-end and added, with the meters registered by each name."""

    def act() -> list[dict[str, Any]]:
        registry = open_registry()
        catalogue = registry.device_types()
        named = registry.device_type_meters()
        return [_summary(kind, "added" if catalogue.added(name) else "shipped", named.get(name, 0))
                for name, kind in sorted(catalogue.types.items())]

    types = run_or_exit("devicetype", act)
    if as_json:
        print(json.dumps(types))
        return
    print(f"{'name':<24} {'source':<8} {'make':<12} {'model':<12} {'firmware':<12} {'meters':>6}  load profile")
    for t in types:
        print(f"{t['name']:<24} {t['source']:<8} {t['make'] or '*':<12} {t['model'] or '*':<12} "
              f"{t['firmware'] or '*':<12} {t['meters_named']:>6}  {t['load_profile']}")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The device type's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One device type: where its meters keep their clock, registers, profiles, event logs and relay."""

    def act() -> dict[str, Any]:
        from hes.devicetypes import DeviceTypeError

        catalogue = open_registry().device_types()
        kind = catalogue.get(name)
        if kind is None:
            raise DeviceTypeError(f"no device type {name!r} (hes devicetype list)")
        return _summary(kind, "added" if catalogue.added(name) else "shipped")

    summary = run_or_exit("devicetype", act)
    if as_json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        text = ", ".join(value) if isinstance(value, list) else value
        print(f"{key:<19} {'-' if text in (None, '', {}) else text}")


@app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="A device type file (JSON, format hes-devicetype/1).")]) -> None:
    """Check a device type file; one line: what it describes, or the first bad field (exit 2)."""
    kind, _ = run_or_exit("devicetype", lambda: read_device_type(file))
    shipped = " (replaces the shipped type of that name)" if kind.name in shipped_types() else ""
    print(f"{file}: device type {kind.name} is valid: {kind.make or 'any make'} {kind.model or 'any model'}"
          f"{' firmware ' + kind.firmware if kind.firmware else ''}, load profile {kind.load_profile.obis}{shipped}")


@app.command("add")
def add(file: Annotated[Path, typer.Argument(help="A device type file (JSON, format hes-devicetype/1).")]) -> None:
    """Add (or replace) a device type: checked, stored for every worker, audited. No restart needed."""

    def act() -> tuple[DeviceType, bool]:
        registry = open_registry()
        require("registry", registry.engine, f"devicetype add {file}")
        return registry.add_device_type(file, who=who())

    kind, replaced = run_or_exit("devicetype", act)
    verb = "replaced" if replaced else "added"
    print(f"device type {kind.name} {verb}: meters of {kind.make or 'any make'} {kind.model or 'any model'} "
          f"(or registered as {kind.name}) are read by it from now on", file=sys.stdout)
