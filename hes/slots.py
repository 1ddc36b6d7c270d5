"""Waiting for a DC's session slot or a device's lock on asyncio: ``async with slots.hold(key):``.

The books are ``concentrator.slots.SlotTable``'s (pure); this module only waits. A waiter is a
future, removed in ``finally`` whatever happens (aiomqtt's pending calls): cancelled while queued,
it leaves the queue; cancelled just after its slot was granted, it passes the slot on.

- ``ConcentratorSlots``: the one session budget per DC (``concentrator.budget.SessionBudget``).
  Re-entrant within a task: the plan engine takes a DC's slot for a unit of work, and the session
  the unit opens inside finds the slot already held instead of taking a second one (which, at the
  budget, would wait for itself).
- ``DeviceLocks``: one session at a time per device that checks invocation counters
  (``concentrator.keys.CounterKeys.lock``); and, as ``Gate.meters``, one plan engine unit at a time
  per meter. Not re-entrant: a task that asks again for a lock it holds has a bug, and is told so
  at once instead of waiting for ever.

Both belong to one event loop while anything is held or awaited (futures belong to a loop): one
object per loop, shared by every session of that loop (``Gate`` carries both); an idle one may be
used from the next loop (a command line that runs ``asyncio.run`` once per order).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from concentrator.budget import SessionBudget
from concentrator.slots import SlotTable

__all__ = ["ConcentratorSlots", "DeviceLocks", "Gate"]

_tokens = itertools.count(1)


class _Slots:
    """A ``SlotTable`` and the futures of its waiters, on one event loop."""

    def __init__(self, capacity: Callable[[str], int], *, name: str, reentrant: bool, track_peak: bool) -> None:
        self._table: SlotTable[int] = SlotTable(capacity, track_peak=track_peak)
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reentrant = reentrant
        # The keys the current task (and the tasks it starts) holds here.
        self._held: ContextVar[frozenset[str]] = ContextVar(f"hes_slots_{name}_{id(self)}", default=frozenset())
        self._name = name

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and (self._table.busy() or self._waiters):
                raise RuntimeError(f"{self._name} are in use in another event loop (make one per loop)")
            # Idle: nothing of the old loop is held or awaited, so the books may move to this one.
            self._loop = loop
        return loop

    def hold(self, key: str) -> _Hold:
        """Hold one slot of ``key`` for the body of ``async with`` (waits, first come first served, while none is
        free)."""
        return _Hold(self, key)

    async def acquire(self, key: str) -> Ticket:
        """Take one slot of ``key`` (waiting while none is free); what ``release`` needs to give it back."""
        held = self._held.get()
        if key in held:
            if self._reentrant:
                return None
            raise RuntimeError(f"{self._name}: {key} is already held by this task")
        loop = self._bind()
        token = next(_tokens)
        if not self._table.take(key, token):
            future = self._waiters[token] = loop.create_future()
            try:
                await future
            except BaseException:
                if not self._table.withdraw(key, token):
                    self._give_back(key)  # granted as we were cancelled: pass it on
                raise
            finally:
                self._waiters.pop(token, None)
        return self._held.set(held | {key})

    def release(self, key: str, ticket: Ticket) -> None:
        """Give back what ``acquire`` took (nothing when it found the slot already held by this task)."""
        if ticket is None:
            return
        self._held.reset(ticket)
        self._give_back(key)

    def _give_back(self, key: str) -> None:
        granted = self._table.give_back(key)
        if granted is not None:
            future = self._waiters.get(granted)
            if future is not None and not future.done():
                future.set_result(None)

    def active(self, key: str) -> int:
        """Holders of ``key`` now."""
        return self._table.held(key)

    def waiting(self, key: str) -> int:
        return self._table.waiting(key)

    @property
    def peak(self) -> dict[str, int]:
        """The most holders seen at once, per key."""
        return self._table.peak


class ConcentratorSlots(_Slots):
    """The session budget of every DC, for one event loop (see the module docstring)."""

    def __init__(self, budget: SessionBudget | None = None) -> None:
        self.budget = budget or SessionBudget()
        super().__init__(self.budget.of, name="concentrator slots", reentrant=True, track_peak=True)


class DeviceLocks(_Slots):
    """One session at a time per device key, for one event loop (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(lambda key: 1, name="device locks", reentrant=False, track_peak=False)


@dataclass
class Gate:
    """What a session waits for before it talks to the field: its DC's slot, its device's lock (one per loop)."""

    slots: ConcentratorSlots = field(default_factory=ConcentratorSlots)
    locks: DeviceLocks = field(default_factory=DeviceLocks)
    #: One unit of work per meter at a time (the plan engine's, taken before the DC's slot and before its
    #: executor prepares the session): a session's invocation counters are reserved when it is prepared, so
    #: two sessions of one meter must be prepared in the order they reach the meter, or the later-reserved
    #: one, sent first, makes the meter refuse the other as a replay.
    meters: DeviceLocks = field(default_factory=DeviceLocks)

    def enter(self, device: str, concentrator_id: str | None) -> _Entry:
        """``async with``: through a DC, a slot of the DC's budget, then the device's lock.

        Always in that order, whoever asks: the plan engine holds a DC slot for a unit of work before
        the unit's session asks for its device's lock, so a session that took a device's lock first
        and then waited for a DC slot could wait for ever on a unit waiting for that very lock.
        """
        return _Entry(self, device, concentrator_id)


#: What ``acquire`` hands to ``release``: the context variable's token, or None for a re-entrant hold.
Ticket = Token[frozenset[str]] | None


class _Hold:
    """``async with slots.hold(key)``: a class, not a generator context manager (one per session, on the hot path)."""

    __slots__ = ("_key", "_slots", "_ticket")

    def __init__(self, slots: _Slots, key: str) -> None:
        self._slots, self._key = slots, key
        self._ticket: Ticket = None

    async def __aenter__(self) -> None:
        self._ticket = await self._slots.acquire(self._key)

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.release(self._key, self._ticket)


class _Entry:
    """``async with gate.enter(device, dc)``: the DC's slot, then the device's lock; given back in reverse."""

    __slots__ = ("_dc", "_dc_ticket", "_device", "_device_ticket", "_gate")

    def __init__(self, gate: Gate, device: str, concentrator_id: str | None) -> None:
        self._gate, self._device, self._dc = gate, device, concentrator_id
        self._dc_ticket: Ticket = None
        self._device_ticket: Ticket = None

    async def __aenter__(self) -> None:
        gate = self._gate
        if self._dc is not None:
            self._dc_ticket = await gate.slots.acquire(self._dc)
        try:
            self._device_ticket = await gate.locks.acquire(self._device)
        except BaseException:
            if self._dc is not None:
                gate.slots.release(self._dc, self._dc_ticket)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        gate = self._gate
        try:
            gate.locks.release(self._device, self._device_ticket)
        finally:
            if self._dc is not None:
                gate.slots.release(self._dc, self._dc_ticket)
