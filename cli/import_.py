"""`hes import BUNDLE`: load a field bundle (optical probe) into the head-end, verified, exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.auth import require
from cli.registry import open_registry, run_or_exit, who
from hes.probe.importer import ImportResult, import_bundle

__all__ = ["import_command"]


def import_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle written by hes probe read --out.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify a field bundle and store its readings (a modified bundle is refused; importing again changes nothing).

    Exit 0: imported (or already imported); 1: the database failed; 2: the bundle is refused.
    """
    def act() -> ImportResult:
        registry = open_registry()
        try:
            require("import", registry.engine, f"import {bundle}")
            return import_bundle(registry, bundle, who=who())
        finally:
            registry.engine.dispose()

    result = run_or_exit("import", act)
    if as_json:
        print(json.dumps(result.to_json()))
        return
    device = f"{result.device_kind} {result.device_id}"
    when = result.imported_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if result.already:
        print(f"bundle {result.bundle_id} ({device}) was already imported at {when}: nothing stored")
        return
    partial = f" (partial: {result.why})" if result.partial else ""
    print(f"imported bundle {result.bundle_id} ({device}){partial}: {len(result.meters)} meters; "
          f"{result.intervals} interval values ({result.new_intervals} new), {result.registers} register readings "
          f"({result.new_registers} new), {result.events} events ({result.new_events} new)"
          + (f", {result.concentrator_events} concentrator events ({result.new_concentrator_events} new)"
             if result.device_kind == "concentrator" else ""))
