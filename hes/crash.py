"""Crash points for the crash-safety tests: the process kills itself where a test asks it to.

``HES_CRASH_AT=<point>`` makes ``crash_point(<point>)`` send SIGKILL to its own process. SIGKILL, not
an exception, because the tests must see what a power cut or the OOM killer leaves behind: no
``finally``, no flush. Unset in normal use, where a crash point is one environment lookup.

Points: ``command-before-store`` and ``read-before-store`` (after the exchange with the meter,
before its result and the last counter received are stored); ``n2pload-before-store`` (N2PLoad,
after the profile was read, before it and the watermark are stored); ``plan-item-before-record``
(a plan item's data stored, its result not yet recorded by the engine).
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["CRASH_ENV", "crash_point"]

CRASH_ENV = "HES_CRASH_AT"

logger = logging.getLogger(__name__)


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``HES_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        logger.warning("%s=%s: killing the process (crash-safety test)", CRASH_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)
