"""`hes run`: the daemon (scheduler, concentrator sync, push listener, MQTT, CIM delivery) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
from typing import Annotated

import typer

from cli.registry import run_or_exit
from hes.config import load_settings
from hes.daemon import Component, DaemonContext, supervise
from hes.loop import run as run_loop
from hes.registry import Registry
from hes.slots import ConcentratorSlots, Gate
from scheduler.engine import session_budget
from scheduler.service import ServiceOptions

__all__ = ["COMPONENTS", "load_components", "run"]

#: The daemon's components, as "module:factory" (a factory takes no argument and returns a Component).
#: Named by string so that ``hes`` itself never imports the packages built on it.
COMPONENTS: list[tuple[str, str]] = [
    ("scheduler", "scheduler.service:component"),
    ("concentrator-sync", "hes.dcsync:component"),
    ("push-listener", "hes.events.push:component"),
    ("mqtt", "hes.events.mqtt:component"),
    ("cim-delivery", "cim.delivery:component"),
]


def load_components(names: list[str] | None = None) -> list[Component]:
    """The components named (all when ``names`` is None); an unknown name is a ``typer.BadParameter``."""
    known = dict(COMPONENTS)
    chosen = list(known) if names is None else names
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise typer.BadParameter(f"unknown component {', '.join(unknown)} (known: {', '.join(known) or 'none'})")
    components: list[Component] = []
    for name in chosen:
        module_name, factory_name = known[name].split(":", 1)
        factory = getattr(importlib.import_module(module_name), factory_name)
        components.append(factory())
    return components


def run(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only this component (repeatable); default: all of them."),
    ] = None,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="This worker's name in leases and logs (default host:pid).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO (default WARNING).")] = False,
) -> None:
    """Run the head-end daemon: scheduled plans and N2PLoad, push listener, MQTT, CIM delivery."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    components = load_components(only)
    settings = run_or_exit("run", load_settings)
    registry = run_or_exit("run", lambda: Registry.open(settings))
    # One session budget per DC for the whole process: the scheduler's items and every other session.
    per_dc = run_or_exit("run", lambda: ServiceOptions.from_environment().per_concentrator)
    budget = run_or_exit("run", lambda: session_budget(registry.engine, per_dc))
    context = DaemonContext(
        settings=settings,
        engine=registry.engine,
        registry=registry,
        worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}",
        gate=Gate(ConcentratorSlots(budget)),
    )
    names = ", ".join(component.name for component in components) or "none"
    print(f"hes run: worker {context.worker_id}, components: {names}; Ctrl-C or SIGTERM stops", file=sys.stderr)
    run_loop(supervise(components, context))
    print("hes run: stopped", file=sys.stderr)
