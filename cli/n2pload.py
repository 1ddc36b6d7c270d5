"""`hes n2pload [--concentrator ID]`: one N2PLoad pass now: each meter's new profile intervals, results, summary."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cli.plan import PER_DC_HELP, check_engine_options, execute_run, print_run, summary_line, worker_id_for
from cli.registry import TIMEOUT_HELP, open_registry, run_or_exit
from scheduler.contract import Command
from scheduler.plans import N2PLOAD, ItemResult, Plans, RunInfo

__all__ = ["n2pload"]


def n2pload(
    concentrator: Annotated[str | None, typer.Option("--concentrator", help="Only this DC's meters.")] = None,
    daily: Annotated[bool, typer.Option("--daily", help="Collect the daily values too.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait",
        help="Wait for retries as the n2pload plan says (default), or return once nothing is due now.",
    )] = True,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Meters worked on at once.")] = 64,
    per_dc: Annotated[int | None, typer.Option("--per-dc", help=PER_DC_HELP)] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """One N2PLoad pass now: for every meter behind a (or every) concentrator, the intervals not yet collected.

    A run of the built-in plan n2pload (retries and delay as it says); exit 1 if any meter FAILed.
    """

    def act() -> tuple[RunInfo, list[ItemResult]]:
        budget = check_engine_options(concurrency, per_dc, timeout)
        registry = open_registry()
        try:
            from cli.auth import require

            identity = require("plan", registry.engine, f"n2pload {concentrator or 'all'}", group="n2pload")
            plans = Plans(registry.engine)
            commands: tuple[Command, ...] = ("profile", "daily") if daily else ("profile",)
            run = plans.start_run(N2PLOAD, trigger="n2pload", who=identity.audit_name, concentrator=concentrator,
                                  commands=commands)
            done = execute_run(registry, run, wait=wait, concurrency=concurrency, per_dc=budget, timeout=timeout,
                               worker_id=worker_id_for("n2pload"), requested_by=identity.audit_name)
            return done, plans.items(run.id)
        finally:
            registry.engine.dispose()

    run, items = run_or_exit("n2pload", act)
    print_run(run, items, as_json=as_json)
    if run.counts.get("FAIL") or run.state != "done":
        print(f"hes n2pload: {summary_line(run)}", file=sys.stderr)
        raise typer.Exit(1)
