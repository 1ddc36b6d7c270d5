"""`hes plan ...`: mass planning: create plans, list and show them with their runs' results, run one now, tag meters.

A plan that disconnects or reconnects needs the ``disconnect`` role (technician or above) to be
created and to be run by hand; one that disconnects more than one meter needs ``--confirm-disconnect``
too (``cli.auth.require_bulk_disconnect_confirmation``), at creation (stored on the plan, for its
scheduled runs) and at every ``hes plan run``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.auth import Identity
from cli.registry import TIMEOUT_HELP, open_registry, run_or_exit, timeouts
from hes.db.models import utcnow
from hes.errors import FAILURES
from hes.loop import run as run_loop
from hes.registry import Registry
from scheduler.contract import RELAY_COMMANDS, ExecutionContext
from scheduler.engine import EngineOptions, Worker
from scheduler.plans import (
    ItemResult,
    PlanError,
    PlanInfo,
    Plans,
    PlanSpec,
    RunInfo,
    parse_commands,
    parse_duration,
    parse_range,
    parse_window,
)
from scheduler.service import ServiceOptions

__all__ = [
    "app", "check_engine_options", "execute_run", "print_run", "read_serials", "summary_line", "worker_id_for",
]

app = typer.Typer(
    name="plan",
    help="Mass planning: plans over many meters (a list, a concentrator, a tag, all), run on schedule or now.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def read_serials(path: Path) -> list[str]:
    """Serials from a list file: one per line; blank lines and '#' comments ignored (``PlanError`` if unusable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"--meters {path}: cannot read it ({type(exc).__name__}: {exc})") from None
    serials = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    serials = [serial for serial in serials if serial]
    if not serials:
        raise PlanError(f"--meters {path}: no serial in it (one per line)")
    bad = [serial for serial in serials if len(serial) > 64 or not serial.isprintable() or " " in serial]
    if bad:
        raise PlanError(f"--meters {path}: {bad[0]!r} is not a serial number")
    return list(dict.fromkeys(serials))


def _time(moment: Any) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def summary_line(run: RunInfo) -> str:
    counts = ", ".join(f"{state} {run.counts[state]}" for state in ("EXE", "WARN", "FAIL", "UNSUPPORTED", "PENDING",
                                                                   "RUNNING") if run.counts.get(state))
    return (f"run {run.id} of plan {run.plan} ({run.trigger}, {run.correlation_id}): {run.state}; "
            f"{run.total} items, {run.meters} meters: {counts or 'nothing to do'}; {run.stored} new rows stored")


def _item_line(item: ItemResult) -> str:
    tail = ""
    if item.state == "PENDING":
        tail = f": retry at {_time(item.next_attempt_at)}; last: {item.reason}" if item.reason else ": waiting"
    elif item.reason:
        tail = f": {item.reason}"
    elif item.observations:
        tail = f": {item.observations}"
    attempts = "" if item.attempts <= 1 else f" (attempt {item.attempts})"
    return f"{item.serial} {item.command} {item.state}{attempts}{tail}"


def print_run(run: RunInfo, items: list[ItemResult], *, as_json: bool) -> None:
    """A run's summary and one line per meter and command (or both as one JSON object)."""
    if as_json:
        print(json.dumps({**run.to_json(), "items": [item.to_json() for item in items]}))
        return
    print(summary_line(run))
    for note in (run.notes or "").splitlines():
        print(f"note: {note}")
    for item in items:
        print(_item_line(item))


def _progress_callback(plans: Plans, run_id: int, progress: Progress | None) -> Callable[[], None]:
    task = None if progress is None else progress.add_task("items", total=None)
    last = [0.0]

    def update() -> None:
        if progress is None or task is None or time.monotonic() - last[0] < 0.3:
            return
        last[0] = time.monotonic()
        run = plans.run_info(run_id)
        progress.update(task, total=run.total, completed=run.done)

    return update


def execute_run(registry: Registry, run: RunInfo, *, wait: bool, concurrency: int, per_dc: int,
                timeout: float | None, worker_id: str, requested_by: str) -> RunInfo:
    """Work on one run in this process until it is done (or, without ``wait``, until nothing is due now)."""
    plans = Plans(registry.engine)
    from scheduler.executors import default_executors

    context = ExecutionContext(registry=registry, engine=registry.engine, now=utcnow, timeouts=timeouts(timeout),
                               requested_by=requested_by[:40])
    worker = Worker(context, default_executors(), EngineOptions(worker_id=worker_id, concurrency=concurrency,
                                                                per_concentrator=per_dc, poll=0.2))
    console = Console()
    progress = None
    if console.is_terminal:
        progress = Progress(TextColumn(f"run {run.id} of {run.plan}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=True)
    on_progress = _progress_callback(plans, run.id, progress)

    async def main() -> None:
        await worker.work(run_id=run.id, wait_retries=wait, on_progress=on_progress)

    if progress is not None:
        with progress:
            run_loop(main())
    else:
        run_loop(main())
    return plans.run_info(run.id)


def worker_id_for(kind: str) -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{kind}"


def _exit_for(run: RunInfo) -> None:
    if run.counts.get("FAIL") or run.state != "done":
        raise typer.Exit(1)


def _relay_checks(plans: Plans, identity: Identity, commands: Sequence[str], name: str, what: str,
                  confirm: bool, count: Callable[[], int]) -> int | None:
    """The role a relay plan needs and, for a bulk disconnect, its confirmation: the meters confirmed, or None.

    Refusals exit 4 with one line and an audit row (``cli.auth``).
    """
    from cli.auth import require, require_bulk_disconnect_confirmation

    relay = [command for command in commands if command in RELAY_COMMANDS]
    if not relay:
        if confirm:
            raise PlanError(f"--confirm-disconnect: plan {name} does not disconnect")
        return None
    require(relay[0], plans.engine, what, group="plan")
    if "disconnect" not in relay:
        if confirm:
            raise PlanError(f"--confirm-disconnect: plan {name} reconnects, it does not disconnect")
        return None  # restoring supply in bulk is not the dangerous direction: the role is enough
    meters = count()
    require_bulk_disconnect_confirmation(identity, plans.engine, meters, confirm, target=f"plan {name}")
    return meters if confirm else None


#: ``--per-dc``'s help: one budget per DC, the default from the environment like ``hes run``'s.
PER_DC_HELP = ("Sessions at once per concentrator (default: HES_SCHEDULER_PER_DC, else 4; a concentrator's own "
               "setting wins).")


def check_engine_options(concurrency: int, per_dc: int | None, timeout: float | None) -> int:
    """The options checked; the per-DC session budget to use (``--per-dc``, else ``HES_SCHEDULER_PER_DC``)."""
    if not 1 <= concurrency <= 10000:
        raise PlanError(f"--concurrency {concurrency}: 1 to 10000")
    if per_dc is None:
        per_dc = ServiceOptions.from_environment().per_concentrator
    if not 1 <= per_dc <= 1000:
        raise PlanError(f"--per-dc {per_dc}: 1 to 1000")
    timeouts(timeout)
    return per_dc


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The plan's name (letters, digits, '_', '.', ':', '-').")],
    commands: Annotated[str, typer.Option("--commands", help="Comma-separated: profile, daily, events, registers, "
                                                              "clock, disconnect or reconnect (run per meter in "
                                                              "that order; relay orders need a technician).")],
    meters: Annotated[Path | None, typer.Option("--meters", help="A file of serials, one per line.")] = None,
    concentrator: Annotated[str | None, typer.Option("--concentrator", help="Every meter of this DC.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Every meter with this tag (hes plan tag).")] = None,
    all_meters: Annotated[bool, typer.Option("--all", help="Every commissioned meter.")] = False,
    start: Annotated[str | None, typer.Option("--from", help="Data range start: ISO 8601, 'now' or relative "
                                                             "(-1d, -6h) to each run.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Data range end (same forms; default: now).")] = None,
    window: Annotated[str | None, typer.Option("--window", help="Daily window HH:MM-HH:MM (UTC) the plan's "
                                                                "commands may run in.")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a meter's retryable failure.")] = 0,
    retry_delay: Annotated[str, typer.Option("--retry-delay", help="Wait before a retry (30s, 5m, 1h).")] = "5m",
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first when work queues.")] = 0,
    cron: Annotated[str | None, typer.Option("--cron", help="Run on this crontab schedule (UTC), "
                                                            "e.g. '0 2 * * *'.")] = None,
    every: Annotated[str | None, typer.Option("--every", help="Run at this interval (15m, 1h, 1d).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Run once at this ISO 8601 time.")] = None,
    confirm_disconnect: Annotated[bool, typer.Option(
        "--confirm-disconnect", help="Confirm a plan that disconnects more than one meter (scheduled runs go on "
                                     "this confirmation while the selection holds no more meters).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Create a plan: which meters, which commands, range, window, retries, priority and when it runs."""

    def act() -> PlanInfo:
        chosen = [flag for flag, given in (("--meters", meters is not None), ("--concentrator", concentrator),
                                           ("--tag", tag), ("--all", all_meters)) if given]
        if len(chosen) != 1:
            raise PlanError("choose the meters with exactly one of --meters FILE, --concentrator ID, --tag T, --all")
        triggers = [(kind, value) for kind, value in (("cron", cron), ("interval", every), ("date", at)) if value]
        if len(triggers) > 1:
            raise PlanError("at most one of --cron, --every, --at (none: the plan runs with hes plan run)")
        kind, selection = "all", cast(Any, None)
        if meters is not None:
            kind, selection = "list", read_serials(meters)
        elif concentrator:
            kind, selection = "concentrator", concentrator
        elif tag:
            kind, selection = "tag", tag
        spec = PlanSpec(
            name=name, selection_kind=kind, selection=selection, commands=parse_commands(commands),
            range_from=parse_range("--from", start), range_to=parse_range("--to", end), window=parse_window(window),
            retries=retries, retry_delay_s=parse_duration(retry_delay, "--retry-delay"), priority=priority,
            trigger_kind=triggers[0][0] if triggers else None, trigger_value=triggers[0][1] if triggers else None,
        )
        registry = open_registry()
        try:
            from cli.auth import require

            identity = require("plan", registry.engine, f"plan create {name}")
            plans = Plans(registry.engine)
            confirmed = _relay_checks(plans, identity, spec.commands, name, f"plan create {name}", confirm_disconnect,
                                      lambda: plans.selection_size(spec.selection_kind, spec.selection))
            return plans.create(spec, who=identity.audit_name, confirmed_meters=confirmed)
        finally:
            registry.engine.dispose()

    plan = run_or_exit("plan", act)
    if as_json:
        print(json.dumps(plan.to_json()))
        return
    print(f"plan {plan.name} created: {plan.selection_text}; {','.join(plan.commands)}; {plan.trigger_text}")
    if plan.confirmation_text:
        print(plan.confirmation_text)


@app.command("list")
def list_command(as_json: Annotated[bool, typer.Option("--json", help="Print the plans as JSON.")] = False) -> None:
    """List the plans (the built-in default-daily and n2pload included)."""

    def act() -> list[PlanInfo]:
        registry = open_registry()
        try:
            from cli.auth import require

            require("list", registry.engine, "plan list", group="plan")
            return Plans(registry.engine).list_plans()
        finally:
            registry.engine.dispose()

    plans = run_or_exit("plan", act)
    if as_json:
        print(json.dumps([plan.to_json() for plan in plans]))
        return
    for plan in plans:
        window = "" if plan.window is None else f", window {plan.window[0]}-{plan.window[1]}"
        builtin = " (built-in)" if plan.builtin else ""
        print(f"{plan.name}{builtin}: {plan.selection_text}; {','.join(plan.commands)}; {plan.trigger_text}; "
              f"retries {plan.retries} every {plan.retry_delay_s:g} s; priority {plan.priority}{window}")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The plan.")],
    run_id: Annotated[int | None, typer.Option("--run", help="This run (default: the latest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a plan and a run of it: the summary and every meter's result (EXE/WARN/FAIL, observations)."""

    def act() -> tuple[PlanInfo, RunInfo | None, list[ItemResult], list[RunInfo]]:
        run: RunInfo | None
        registry = open_registry()
        try:
            from cli.auth import require

            require("list", registry.engine, f"plan show {name}", group="plan")
            plans = Plans(registry.engine)
            plan = plans.get(name)
            recent = plans.runs(name, limit=5)
            if run_id is not None:
                run = plans.run_info(run_id)
                if run.plan != name:
                    raise PlanError(f"run {run_id} is a run of plan {run.plan}, not {name}")
            else:
                run = recent[0] if recent else None
            return plan, run, [] if run is None else plans.items(run.id), recent
        finally:
            registry.engine.dispose()

    plan, run, items, recent = run_or_exit("plan", act)
    if as_json:
        print(json.dumps({"plan": plan.to_json(), "run": None if run is None else
                          {**run.to_json(), "items": [item.to_json() for item in items]},
                          "recent_runs": [{"run": r.id, "state": r.state, "trigger": r.trigger,
                                           "created_at": _time(r.created_at)} for r in recent]}))
        return
    print(f"plan {plan.name}: {plan.selection_text}; {','.join(plan.commands)}; {plan.trigger_text}; "
          f"retries {plan.retries} every {plan.retry_delay_s:g} s")
    if plan.confirmation_text:
        print(plan.confirmation_text)
    if recent:
        print("recent runs: " + ", ".join(f"{r.id} ({r.trigger}, {r.state}, {_time(r.created_at)})" for r in recent))
    if run is None:
        print("no run yet")
        return
    print_run(run, items, as_json=False)


@app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="The plan.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for retries as the plan says (default), or "
                                                                  "return once nothing is due now.")] = True,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Meters worked on at once.")] = 64,
    per_dc: Annotated[int | None, typer.Option("--per-dc", help=PER_DC_HELP)] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)] = None,
    confirm_disconnect: Annotated[bool, typer.Option(
        "--confirm-disconnect", help="Confirm that this run disconnects more than one meter.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Run a plan now in this process: every meter's result and the run's summary (exit 1 if any FAILed)."""

    def act() -> tuple[RunInfo, list[ItemResult]]:
        budget = check_engine_options(concurrency, per_dc, timeout)
        registry = open_registry()
        try:
            from cli.auth import require

            identity = require("plan", registry.engine, f"plan run {name}")
            plans = Plans(registry.engine)
            plan = plans.get(name)
            confirmed = _relay_checks(plans, identity, plan.commands, name, f"plan run {name}", confirm_disconnect,
                                      lambda: plans.run_size(name))
            if "disconnect" in plan.commands and confirmed is None:
                confirmed = 1  # not the plan's stored confirmation: a run by hand is confirmed by its own user
            run = plans.start_run(name, trigger="manual", who=identity.audit_name, confirmed_meters=confirmed)
            done = execute_run(registry, run, wait=wait, concurrency=concurrency, per_dc=budget, timeout=timeout,
                               worker_id=worker_id_for("plan"), requested_by=identity.audit_name)
            return done, plans.items(run.id)
        finally:
            registry.engine.dispose()

    run, items = run_or_exit("plan", act)
    print_run(run, items, as_json=as_json)
    if run.counts.get("FAIL") or run.state != "done":
        print(f"hes plan: {summary_line(run)}", file=sys.stderr)
    _exit_for(run)


@app.command("tag")
def tag_command(
    tag: Annotated[str, typer.Argument(help="The tag (a group of meters: a feeder, a district, a pilot).")],
    serials: Annotated[list[str] | None, typer.Argument(help="Meters to tag.")] = None,
    meters: Annotated[Path | None, typer.Option("--meters", help="A file of serials, one per line.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Take the tag off these meters.")] = False,
) -> None:
    """Put a tag on meters (or take it off); plans select tagged meters with --tag."""

    def act() -> int:
        chosen = list(serials or []) + (read_serials(meters) if meters is not None else [])
        if not chosen:
            raise PlanError("name the meters: serials as arguments or --meters FILE")
        registry = open_registry()
        try:
            from cli.auth import require

            identity = require("plan", registry.engine, f"plan tag {tag}")
            return Plans(registry.engine).tag(tag, chosen, remove=remove, who=identity.audit_name)
        finally:
            registry.engine.dispose()

    changed = run_or_exit("plan", act)
    print(f"tag {tag}: {changed} meters {'untagged' if remove else 'tagged'}")


_DISCOVER_ERRORS: tuple[type[BaseException], ...] = (*FAILURES, TimeoutError)


@app.command("discover")
def discover_command(
    serials: Annotated[list[str], typer.Argument(help="Meters whose object list to read.")],
    timeout: Annotated[float | None, typer.Option("--timeout", help=TIMEOUT_HELP)] = None,
) -> None:
    """Read meters' object lists (association LN) for the support check of plans (exit 1 if one failed)."""
    from scheduler.capabilities import discover

    def act() -> list[tuple[str, str]]:
        deadlines = timeouts(timeout)
        registry = open_registry()
        try:
            from cli.auth import require

            identity = require("plan", registry.engine, "plan discover")
            context = ExecutionContext(registry=registry, engine=registry.engine, now=utcnow, timeouts=deadlines,
                                       requested_by=identity.audit_name)
            results: list[tuple[str, str]] = []

            async def main() -> None:
                for serial in serials:
                    try:
                        objects = await discover(context, serial)
                        results.append((serial, f"{len(objects)} objects"))
                    except _DISCOVER_ERRORS as exc:
                        results.append((serial, f"FAIL: {exc}"))

            asyncio.run(main())
            return results
        finally:
            registry.engine.dispose()

    results = run_or_exit("plan", act)
    for serial, text in results:
        print(f"{serial}: {text}")
    if any(text.startswith("FAIL") for _, text in results):
        raise typer.Exit(1)
