"""Loaded by ``python -m tests.any_date`` in every Python process under libfaketime: ``time.sleep`` that works there.

The runner keeps the monotonic clock real (``FAKETIME_DONT_FAKE_MONOTONIC=1``): libfaketime 0.9.10 does
not intercept ``sem_clockwait``, so with a faked monotonic clock every lock or event wait with a timeout
(``threading``, ``queue``, ``concurrent.futures``) waits as long as the offset, i.e. for years
(libfaketime issue 390). With the monotonic clock real, libfaketime still shifts the absolute deadline
of ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``, which ``time.sleep`` uses since Python 3.11, and
the kernel refuses it with EINVAL (libfaketime issue 426). ``select`` with a relative timeout is
unaffected, so ``time.sleep`` sleeps with it here. Nothing else changes: every clock read is faked.
"""

from __future__ import annotations

import os
import select
import time
from typing import SupportsIndex

__all__: list[str] = []


def _sleep(seconds: float | SupportsIndex) -> None:
    wait = float(seconds)
    if wait < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], wait)  # restarted with the time left after a signal (PEP 475)


if "faketime" in os.environ.get("LD_PRELOAD", ""):
    time.sleep = _sleep
