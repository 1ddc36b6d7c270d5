"""``hes demo``: the main job on the embedded default (grows with the product)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["demo"]


def demo() -> None:
    """Run the main job on the embedded default and print what happened.

    For now: one complete meter session on our own DLMS/COSEM stack, in memory (HDLC, HLS-GMAC
    association with suite-0 ciphering, clock, serial, A+ and a day of load profile), every value
    checked against the meter.
    """
    from hes.demo import run_session

    report = run_session()
    console = Console()
    table = Table(title="hes demo: one meter session on the hes DLMS/COSEM stack (in memory)")
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
    failed = [s for s in report.steps if s.result != "EXE"] or report.mismatches
    if failed:
        for line in report.mismatches:
            typer.echo(f"hes demo: {line}", err=True)
        raise typer.Exit(1)
