"""The event loop the head-end's long jobs run in: uvloop where it is installed, asyncio's own otherwise.

A collection pass is thousands of short TCP exchanges; the event loop's own work (polling, callbacks,
transports) is a fixed share of every one. uvloop (libuv, MIT/Apache-2.0, maintained by the asyncio
core developers at MagicStack) does that work in C: measured on ``bench.collect`` (2 DCs x 150
meters, five interleaved runs each), the head-end's CPU per meter-day fell by about 11 %. It is a
drop-in ``asyncio`` loop: the code above it (``hes.session``, ``hes.transport``) is the same.

It is a dependency on POSIX systems only (no Windows build): ``run`` falls back to ``asyncio.run``
when it cannot be imported, and ``HES_EVENT_LOOP=asyncio`` forces the standard loop (to compare,
or to rule the loop out when chasing a problem).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "run"]

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when it is installed and not refused by ``HES_EVENT_LOOP``; None otherwise."""
    if os.environ.get("HES_EVENT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop ``run`` uses (``bench.collect`` reports it)."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the head-end's event loop (see the module docstring)."""
    factory = loop_factory()
    if factory is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
