"""The ``hes run`` daemon: long-running components (scheduler, push listener, CIM delivery, MQTT) under one supervisor.

A component is an object with a ``name`` and an ``async run(context)`` that works until it is
cancelled. The supervisor runs every component as a named task; one that raises is logged with its
reason and started again after a back-off (doubling from one second up to a minute, reset after a
minute of good running), so a bug or an outage in one part never stops the others. SIGINT and
SIGTERM set ``context.stop``; the supervisor then cancels every component and waits for them.

Which components exist is decided by the caller (``cli/run.py``), since ``hes/`` must not import
the packages built on it (``scheduler/``, ``cim/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine

from hes.config import Settings
from hes.registry import Registry
from hes.slots import Gate

__all__ = ["Component", "DaemonContext", "supervise"]

logger = logging.getLogger(__name__)

#: Back-off between restarts of a failed component: first, then doubled up to the ceiling.
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
#: A component that ran this long before failing is restarted after the first back-off again.
HEALTHY_AFTER_S = 60.0


@dataclass
class DaemonContext:
    """What every component shares: settings, the HES database, the registry, and the stop signal."""

    settings: Settings
    engine: Engine
    registry: Registry
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: Worker identity for leases and logs (host:pid unless given).
    worker_id: str = ""
    #: What every session of the process waits for: the DCs' one session budget, the device locks.
    gate: Gate = field(default_factory=Gate)


class Component(Protocol):
    """A long-running part of the daemon."""

    @property
    def name(self) -> str: ...

    async def run(self, context: DaemonContext) -> None:
        """Work until cancelled; an exception is logged and the component restarted after a back-off."""
        ...


async def _keep_running(component: Component, context: DaemonContext, sleep: Callable[[float], object]) -> None:
    backoff = FIRST_BACKOFF_S
    while not context.stop.is_set():
        started = time.monotonic()
        try:
            await component.run(context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.error("component %s failed: %s: %s", component.name, type(exc).__name__, exc)
        else:
            if context.stop.is_set():
                return
            logger.warning("component %s returned; starting it again", component.name)
        if time.monotonic() - started >= HEALTHY_AFTER_S:
            backoff = FIRST_BACKOFF_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.stop.wait(), timeout=backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


async def supervise(components: Sequence[Component], context: DaemonContext, *, handle_signals: bool = True) -> None:
    """Run ``components`` until ``context.stop`` is set (by SIGINT/SIGTERM when ``handle_signals``)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, context.stop.set)
                installed.append(signum)
    tasks = [
        asyncio.create_task(_keep_running(component, context, asyncio.sleep), name=f"hes-run:{component.name}")
        for component in components
    ]
    try:
        await context.stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for signum in installed:
            loop.remove_signal_handler(signum)
