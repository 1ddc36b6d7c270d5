"""``hes demo``: the main job on the embedded default (grows with the product)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["demo"]


def _session_part(console: Console) -> list[str]:
    """Part 1: one meter session on our stack, in memory. Returns what went wrong (empty: all checked)."""
    from cli.demo.parts import run_session

    report = run_session()
    table = Table(title="hes demo (1/3): one meter session on the hes DLMS/COSEM stack (in memory)")
    for column in ("step", "result", "detail", "frames", "bytes"):
        table.add_column(column, justify="right" if column in ("frames", "bytes") else "left")
    for step in report.steps:
        table.add_row(step.what, step.result, step.detail, str(step.frames), str(step.wire_bytes))
    console.print(table)
    if report.rows:
        first, last = report.rows[0], report.rows[-1]
        console.print(
            f"load profile: {len(report.rows)} rows, first {first.time.isoformat()} A+ {first.values[1]} Wh, "
            f"last {last.time.isoformat()} A+ {last.values[1]} Wh"
        )
    console.print(
        f"{report.checked} values checked against the meter, {len(report.mismatches)} mismatches; "
        f"client invocation counters used {report.invocation_counters_used[0]}.."
        f"{report.invocation_counters_used[-1]}; {report.seconds * 1000:.1f} ms"
    )
    failed = [f"session step {s.what}: {s.result} {s.detail}" for s in report.steps if s.result != "EXE"]
    return failed + report.mismatches


def _field_part(console: Console, data_dir: Path, database_url: str | None, kept: bool) -> list[str]:
    """Part 2: a simulated field through the head-end (registry, reads, commands). Returns what went wrong."""
    from cli.demo.parts import run_field

    report = asyncio.run(run_field(data_dir, database_url=database_url))
    table = Table(title=f"hes demo (2/3): a simulated field, {report.concentrators} concentrators and "
                        f"{report.meters} meters, through the head-end")
    table.add_column("order", no_wrap=True, min_width=27)
    for column in ("meter", "command", "result", "detail", "check"):
        table.add_column(column, no_wrap=column != "detail")
    for row in report.rows:
        table.add_row(row.order, row.meter, row.command, row.result, row.detail, "ok" if row.ok else "FAILED")
    console.print(table)
    console.print(f"field: {report.checked} values checked against the simulator, {len(report.mismatches)} "
                  f"mismatches; database {report.database}{'' if kept else ' (temporary)'}; {report.seconds:.2f} s")
    failed = [f"{row.command} {row.meter}: {row.result} {row.detail}" for row in report.rows if not row.ok]
    return failed + report.mismatches


def _collection_part(console: Console, data_dir: Path) -> list[str]:
    """Part 3: N2PLoad and a plan over a simulated field, completeness, CIM into the legacy database."""
    from cli.demo.collection import run_collection

    report = asyncio.run(run_collection(data_dir))
    table = Table(title=f"hes demo (3/3): N2PLoad over {report.concentrators} concentrators and a plan for the "
                        f"point-to-point meters, {report.meters} meters, first pass")
    for column in ("meter", "command", "result", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for serial, command, state, detail in report.items:
        table.add_row(serial, command, state, detail)
    console.print(table)
    c = report.completeness
    console.print(
        f"first pass: {report.run_summary}; {report.intervals_stored} interval values stored; a second pass stored "
        f"{report.second_pass_new} more\n"
        f"completeness of {report.day}: {c.get('meters_complete')}/{c.get('meters')} meters complete, "
        f"{c.get('intervals_stored')}/{c.get('intervals_expected')} intervals "
        f"({c.get('intervals_share', 0):.1%}), below {c.get('threshold_percent')} %: "
        f"{', '.join(c.get('below_threshold') or []) or 'none'}\n"
        f"CIM: {report.delivered} messages delivered into the legacy integration database: "
        f"{report.legacy_intervals} load-curve values, {report.legacy_readings} register readings\n"
        f"collection: {report.checked} values checked against the simulator in both databases, "
        f"{len(report.mismatches)} mismatches; {report.seconds:.2f} s"
    )
    return list(report.mismatches)


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Keep the demo's database, key and manifest here (default: a temporary "
                                        "folder, removed afterwards)."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Use this database instead of SQLite in the data folder.")
    ] = None,
) -> None:
    """Run the main job on the embedded default and print what happened; exit 0 only if every check holds.

    1. One complete meter session on our own DLMS/COSEM stack, in memory (HDLC, HLS-GMAC with
       suite-0 ciphering, clock, serial, A+ and a day of load profile), every value checked.
    2. A small simulated field on 127.0.0.1 (2 concentrators x 3 meters + 2 point-to-point meters),
       registered into the embedded database, every meter read, a disconnect/reconnect through a
       concentrator and of a point-to-point meter, a clock sync; values checked against the simulator.
    3. Scheduled collection on another simulated field: an N2PLoad pass through the concentrators and
       a plan for the point-to-point meters (two days of profile and daily values), a second pass that
       must find nothing new, the completeness of the last whole day, and the CIM outbox delivered
       into a legacy integration database (SQLite); every interval checked in both databases.
    """
    console = Console()
    if not console.is_terminal:
        # Piped or captured output has no width to measure; wide enough that no column collapses.
        console = Console(width=160)
    problems = _session_part(console)
    if data_dir is not None:
        problems += _field_part(console, data_dir, database_url, kept=True)
        problems += _collection_part(console, data_dir / "collection")
    else:
        with tempfile.TemporaryDirectory(prefix="hes-demo-") as folder:
            problems += _field_part(console, Path(folder), database_url, kept=False)
            problems += _collection_part(console, Path(folder) / "collection")
    if problems:
        for line in problems:
            typer.echo(f"hes demo: {line}", err=True)
        raise typer.Exit(1)
