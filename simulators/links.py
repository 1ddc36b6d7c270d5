"""The PLC/RF hop between a data concentrator and a meter: latency, loss and unreachable windows.

Times in the model are field seconds; ``carry`` converts them to wall time with the field clock,
so a scaled clock speeds the link up with everything else. Every draw comes from one seeded
``random.Random(f"{seed}:link:{name}")``, so a link behaves the same on every run. All settings
are plain attributes, changeable while the field runs.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from protocols.errors import TransportError
from simulators.clock import FieldClock

__all__ = ["LinkLost", "LinkModel", "LinkSettingsError", "LinkStats"]


class LinkLost(TransportError):
    """The APDU did not cross the link (lost, or the meter unreachable); a later retry may pass."""

    retryable = True

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        #: True when the meter was in an unreachable window, False for a single lost APDU.
        self.unreachable = unreachable


class LinkSettingsError(ValueError):
    """A link setting no model can honour (negative latency, loss outside 0..1, empty window)."""


@dataclass
class LinkStats:
    """What crossed the link so far: counts for tests and for the fleet's summary."""

    carried: int = 0
    lost: int = 0
    unreachable: int = 0
    field_seconds: float = 0.0


class LinkModel:
    """One meter's radio or power-line hop.

    The field latency of one APDU of ``size`` bytes is uniform in [latency - jitter, latency + jitter]
    (never below 0) plus ``size / bytes_per_second``. ``loss`` is the chance that one transmission of
    an APDU is lost; the link layer sends it again up to ``retries`` times (G3-PLC's MAC retransmits
    unacknowledged frames, macMaxFrameRetries; RF meshes do the same), each attempt taking its own
    latency, so an APDU is lost for the head-end only when every attempt is. ``unreachable`` windows
    are [start, end) intervals of field time during which nothing passes.
    """

    def __init__(
        self,
        *,
        latency: float,
        jitter: float = 0.0,
        loss: float = 0.0,
        bytes_per_second: float | None = None,
        retries: int = 0,
        seed: int | str = 0,
        name: str = "",
    ) -> None:
        self.latency = latency
        self.jitter = jitter
        self.loss = loss
        self.retries = retries
        self.bytes_per_second = bytes_per_second
        self._windows: list[tuple[datetime, datetime]] = []
        self._rng = random.Random(f"{seed}:link:{name}")
        self.stats = LinkStats()
        self.validate()

    @classmethod
    def plc(cls, *, seed: int | str = 0, name: str = "") -> LinkModel:
        """PRIME/G3 power-line: seconds per exchange, a few percent of transmissions lost (each retried up to
        3 times), about 2.4 kB/s of payload."""
        return cls(latency=2.0, jitter=1.0, loss=0.02, bytes_per_second=2400.0, retries=3, seed=seed, name=name)

    @classmethod
    def rf(cls, *, seed: int | str = 0, name: str = "") -> LinkModel:
        """RF mesh: sub-second per exchange, about 1 % of transmissions lost (each retried up to 3 times),
        about 12 kB/s of payload."""
        return cls(latency=0.3, jitter=0.15, loss=0.01, bytes_per_second=12000.0, retries=3, seed=seed, name=name)

    def validate(self) -> None:
        """Raise ``LinkSettingsError`` for settings out of range (call after changing attributes)."""
        if self.latency < 0 or self.jitter < 0:
            raise LinkSettingsError(f"latency {self.latency} and jitter {self.jitter} cannot be negative")
        if not 0.0 <= self.loss <= 1.0:
            raise LinkSettingsError(f"loss probability {self.loss} is not between 0 and 1")
        if not isinstance(self.retries, int) or not 0 <= self.retries <= 15:
            raise LinkSettingsError(f"retries {self.retries} must be a whole number from 0 to 15")
        if self.bytes_per_second is not None and self.bytes_per_second <= 0:
            raise LinkSettingsError(f"bytes_per_second {self.bytes_per_second} must be positive")

    # --- unreachable windows -------------------------------------------------------------------

    @property
    def windows(self) -> tuple[tuple[datetime, datetime], ...]:
        return tuple(self._windows)

    def add_unreachable(self, start: datetime, end: datetime | timedelta) -> None:
        """Nothing passes from ``start`` (field time) to ``end`` (a time, or a duration after start)."""
        stop = start + end if isinstance(end, timedelta) else end
        if start.tzinfo is None or stop.tzinfo is None:
            raise LinkSettingsError("unreachable windows need aware datetimes (field time is UTC)")
        if stop <= start:
            raise LinkSettingsError(f"unreachable window ends ({stop}) before it starts ({start})")
        self._windows.append((start, stop))
        self._windows.sort()

    def clear_unreachable(self) -> None:
        self._windows.clear()

    def unreachable_until(self, at: datetime) -> datetime | None:
        """The end of the window containing ``at``, or None when the meter is reachable then."""
        until: datetime | None = None
        for start, stop in self._windows:
            if start <= at < stop:
                until = stop if until is None else max(until, stop)
        return until

    def reachable(self, at: datetime) -> bool:
        return self.unreachable_until(at) is None

    # --- carrying APDUs ----------------------------------------------------------------------------

    def draw_latency(self, size: int) -> float:
        """Field seconds one APDU of ``size`` bytes takes (one draw of the seeded stream)."""
        low = max(0.0, self.latency - self.jitter)
        high = self.latency + self.jitter
        delay = self._rng.uniform(low, high) if high > low else low
        if self.bytes_per_second is not None:
            delay += size / self.bytes_per_second
        return delay

    def draw_lost(self) -> bool:
        # Draw only when loss is on: a lossless link consumes no randomness for it.
        return self.loss > 0.0 and self._rng.random() < self.loss

    async def carry(self, clock: FieldClock, size: int) -> None:
        """Carry one APDU of ``size`` bytes: sleep its latency, or raise ``LinkLost``.

        An unreachable meter is known at once (raised before any wait); a lost APDU is known only
        after its time in flight. The caller's own timeout models how long a DC waits for an answer.
        """
        until = self.unreachable_until(clock.now())
        if until is not None:
            self.stats.unreachable += 1
            raise LinkLost(f"meter unreachable until {until.isoformat()}", unreachable=True)
        for attempt in range(self.retries + 1):
            delay = self.draw_latency(size)
            lost = self.draw_lost()
            self.stats.field_seconds += delay
            await asyncio.sleep(clock.wall_seconds(delay))
            if not lost:
                break
            self.stats.lost += 1
            if attempt == self.retries:
                raise LinkLost(f"APDU of {size} bytes lost on the link ({attempt + 1} attempts)", unreachable=False)
        until = self.unreachable_until(clock.now())
        if until is not None:
            # The window opened while the APDU was in flight.
            self.stats.unreachable += 1
            raise LinkLost(f"meter unreachable until {until.isoformat()}", unreachable=True)
        self.stats.carried += 1
