"""Field time for the simulators: wall time scaled, so a test can run a day of field time in seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["FieldClock"]


class FieldClock:
    """``now()`` = ``epoch`` + (monotonic time since start) x ``scale``, always aware UTC.

    ``scale`` 1 is real time; 96 runs a 15-minute interval in about 9.4 s; ``scale`` 0 freezes
    time (tests that want a fixed instant). ``set_scale`` and ``jump`` change it while running.
    """

    def __init__(
        self,
        epoch: datetime,
        scale: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if epoch.tzinfo is None:
            raise ValueError("the field clock's epoch must be an aware datetime")
        if scale < 0:
            raise ValueError("the time scale cannot be negative")
        self._monotonic = monotonic
        self._origin = epoch.astimezone(UTC)
        self._started = monotonic()
        self._scale = scale

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=(self._monotonic() - self._started) * self._scale)

    def set_scale(self, scale: float) -> None:
        """Change the speed from now on, without a jump in field time."""
        if scale < 0:
            raise ValueError("the time scale cannot be negative")
        self._origin = self.now()
        self._started = self._monotonic()
        self._scale = scale

    def jump(self, delta: timedelta) -> None:
        """Move field time by ``delta`` at once (e.g. skip to the next day in a test)."""
        self._origin = self.now() + delta
        self._started = self._monotonic()

    def field_seconds(self, wall_seconds: float) -> float:
        return wall_seconds * self._scale

    def wall_seconds(self, field_seconds: float) -> float:
        """How long to sleep for ``field_seconds`` of field time (0 when time is frozen)."""
        return field_seconds / self._scale if self._scale else 0.0
