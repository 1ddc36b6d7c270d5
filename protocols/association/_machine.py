"""The transition-table machinery shared by the client and server association objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from protocols.association.config import MAX_INVOCATION_COUNTER, CounterCallback
from protocols.association.events import Event, RemoteProtocolError, SecurityFailure
from protocols.errors import DlmsError, SecurityError, StateError

__all__ = ["Machine", "Transition", "Unauthentic", "Undecodable"]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Input from the peer that did not decode (a pseudo-APDU type for the table)."""

    error: DlmsError


@dataclass(frozen=True, slots=True)
class Unauthentic:
    """Input from the peer that failed deciphering, authentication or the replay check."""

    error: SecurityError


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of a table: the handler returns the next state, which must be one of ``targets``.

    ``on_error`` is the state to enter when the handler fails on the peer's input (None keeps
    the current one); whatever the handler queued or emitted is then rolled back.
    """

    handler: Callable[[Any, Any], Enum]
    targets: frozenset[Enum]
    on_error: Enum | None = None


def row(handler: Callable[[Any, Any], Enum], *targets: Enum, on_error: Enum | None = None) -> Transition:
    return Transition(handler, frozenset(targets), on_error)


class Machine:
    """State, outgoing APDU queue, event list and invocation counter of one association object."""

    _TABLE: dict[tuple[Enum, type], Transition] = {}

    def __init__(self, state: Enum, invocation_counter: int, counter_used: CounterCallback | None) -> None:
        self._state = state
        self._outgoing: list[bytes] = []
        self._events: list[Event] = []
        self._counter = invocation_counter
        self._counter_used = counter_used

    # --- outputs ---------------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        """The APDUs to send, in order, each one whole; the queue is emptied."""
        out, self._outgoing = self._outgoing, []
        return out

    @property
    def next_invocation_counter(self) -> int:
        """The invocation counter the next ciphered APDU will use."""
        return self._counter

    def _consume_counter(self) -> int:
        value = self._counter
        if value > MAX_INVOCATION_COUNTER:
            raise SecurityError("the invocation counter is exhausted: new keys are needed")
        if self._counter_used is not None:
            self._counter_used(value)
        self._counter = value + 1
        return value

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # --- dispatch --------------------------------------------------------------------------------

    def _pending_invoke_id(self) -> int | None:
        return None

    def _enter(self, state: Enum) -> None:
        self._state = state

    def _refuse(self, message: object) -> None:
        """What to do with peer input that no row allows (the role decides what to answer)."""
        self._emit(
            RemoteProtocolError(
                StateError(f"{type(message).__name__} not expected in state {self._state.name}")
            )
        )

    def _run(self, message: object) -> None:
        """Feed one decoded input from the peer through the table."""
        transition = self._TABLE.get((self._state, type(message)))
        if transition is None:
            self._refuse(message)
            return
        mark = (len(self._outgoing), len(self._events))
        invoke_id = self._pending_invoke_id()
        try:
            new_state = transition.handler(self, message)
        except SecurityError as exc:
            self._rollback(mark)
            self._emit(SecurityFailure(exc, invoke_id))
            new_state = transition.on_error or self._state
        except DlmsError as exc:
            self._rollback(mark)
            self._emit(RemoteProtocolError(exc, invoke_id))
            new_state = transition.on_error or self._state
        else:
            self._check_target(transition, new_state)
        self._enter(new_state)

    def _local(self, message: object) -> None:
        """Run a call of the local user; misuse raises (``StateError``) and changes nothing."""
        transition = self._TABLE.get((self._state, type(message)))
        if transition is None:
            raise StateError(
                f"{type(message).__name__.lstrip('_')} is not allowed in state {self._state.name}"
            )
        mark = (len(self._outgoing), len(self._events))
        try:
            new_state = transition.handler(self, message)
        except BaseException:
            self._rollback(mark)
            raise
        self._check_target(transition, new_state)
        self._enter(new_state)

    def _allowed(self, kind: type) -> bool:
        return (self._state, kind) in self._TABLE

    def _require(self, kind: type) -> None:
        if not self._allowed(kind):
            raise StateError(f"{kind.__name__.lstrip('_')} is not allowed in state {self._state.name}")

    def _rollback(self, mark: tuple[int, int]) -> None:
        del self._outgoing[mark[0] :]
        del self._events[mark[1] :]

    def _check_target(self, transition: Transition, new_state: Enum) -> None:
        if new_state not in transition.targets:
            # A handler that goes somewhere its row does not list is a bug here, not the peer's.
            raise StateError(f"internal: {self._state.name} -> {new_state.name} is not in the table")
