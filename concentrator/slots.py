"""Who may talk to a device now: a capacity per key, the holders and a queue of waiters, without any waiting.

One mechanism serves two rules of the field. A data concentrator (DC) serves a few sessions at
once (its session budget: capacity N per DC id); a device that checks invocation counters serves
one association at a time (capacity 1 per device key), because two sessions of one head-end would
interleave their counters and the second would be refused as a replay.

``SlotTable`` only keeps the books, sans-IO: ``take`` says whether a slot was granted or the
waiter was queued; ``give_back`` says which queued waiter now holds the freed slot; ``withdraw``
removes a waiter that gave up. Waiting (futures, cancellation) is the caller's: ``hes.slots``
drives it on asyncio. Waiters are served first come, first served, and a key with no holder and no
waiter leaves no trace, so a table for a million meters holds only the busy ones.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["SlotError", "SlotTable"]

W = TypeVar("W", bound=Hashable)


class SlotError(ValueError):
    """A slot given back that was not held, or a capacity below one: a bug in the caller."""


@dataclass(slots=True)
class _Key(Generic[W]):
    capacity: int
    held: int = 0
    waiting: deque[W] = field(default_factory=deque)


class SlotTable(Generic[W]):
    """Slots per key; ``capacity(key)`` says how many (read when a key becomes busy, so a change applies
    from the next time the key is idle)."""

    def __init__(self, capacity: Callable[[str], int], *, track_peak: bool = True) -> None:
        self._capacity = capacity
        self._keys: dict[str, _Key[W]] = {}
        self._track_peak = track_peak
        #: The most holders seen at once, per key (for operators and tests; empty unless ``track_peak``:
        #: a table of per-device locks would otherwise remember every device ever read).
        self.peak: dict[str, int] = {}

    def _key(self, key: str) -> _Key[W]:
        entry = self._keys.get(key)
        if entry is None:
            capacity = self._capacity(key)
            if capacity < 1:
                raise SlotError(f"{key}: capacity {capacity} must be at least 1")
            entry = self._keys[key] = _Key(capacity)
        return entry

    def _granted(self, key: str, entry: _Key[W]) -> None:
        entry.held += 1
        if self._track_peak and entry.held > self.peak.get(key, 0):
            self.peak[key] = entry.held

    def take(self, key: str, waiter: W) -> bool:
        """True: ``waiter`` holds a slot of ``key`` now. False: it is queued until ``give_back`` names it."""
        entry = self._key(key)
        if entry.held < entry.capacity and not entry.waiting:
            self._granted(key, entry)
            return True
        entry.waiting.append(waiter)
        return False

    def give_back(self, key: str) -> W | None:
        """Free one slot of ``key``; the waiter that holds it from now on (None: nobody waited)."""
        entry = self._keys.get(key)
        if entry is None or entry.held < 1:
            raise SlotError(f"{key}: a slot given back that was not held")
        entry.held -= 1
        if entry.waiting:
            waiter = entry.waiting.popleft()
            self._granted(key, entry)
            return waiter
        if entry.held == 0:
            del self._keys[key]
        return None

    def withdraw(self, key: str, waiter: W) -> bool:
        """Remove a queued ``waiter`` (it gave up); False when it was not queued (granted already, or unknown)."""
        entry = self._keys.get(key)
        if entry is None:
            return False
        try:
            entry.waiting.remove(waiter)
        except ValueError:
            return False
        if entry.held == 0 and not entry.waiting:
            del self._keys[key]
        return True

    def held(self, key: str) -> int:
        entry = self._keys.get(key)
        return 0 if entry is None else entry.held

    def waiting(self, key: str) -> int:
        entry = self._keys.get(key)
        return 0 if entry is None else len(entry.waiting)

    def busy(self) -> list[str]:
        """Keys with a holder or a waiter now."""
        return list(self._keys)
