"""Whether a data concentrator can be reached: every transition in one table, and the rules that follow from it.

A contact with a DC (or through it) ends in one of three ``Contact`` outcomes, decided by
``contact_outcome`` from how far the exchange got:

- ``ANSWERED``: the DC answered (an association with one of its logical devices, or an answer
  through its gateway, or any refusal it sent back);
- ``METER_SILENT``: the DC took the connection, but the meter behind it never answered through the
  gateway: the DC is fine, the meter is out of its reach (PLC noise, a meter switched off);
- ``NO_CONNECTION``: no connection (refused, connect timeout, dropped before any answer), or a
  concentrated read (answered by the DC itself) that got no answer before its association.

``Reachability`` is the DC's state and times. ``record`` applies an outcome and ``at`` the passing
of time (a DC found down is rechecked ``recheck_after`` seconds after the failed attempt), both
through ``TRANSITIONS``; nothing else moves the state. From the state follow the two rules callers
use: ``may_contact`` (a DC that is down is not contacted before its recheck, unless forced) and
``fails_fast`` (work queued before the failure was seen fails at once, without a contact of its own).
Times are seconds on one clock of the caller's choosing (epoch seconds for stored state, the event
loop's monotonic clock for a worker's view of one run); the model never reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum

__all__ = [
    "DEFAULT_RECHECK_AFTER",
    "NEVER",
    "TRANSITIONS",
    "Contact",
    "FailureKind",
    "Reachability",
    "ReachabilityState",
    "RecheckDue",
    "contact_outcome",
    "reached",
]

#: A DC that failed is contacted again (on-demand reads, commands) this long after the failed attempt.
DEFAULT_RECHECK_AFTER = 300.0
#: No recheck by time (a worker's view of one run: only work queued after the failure tries again).
NEVER = math.inf


class ReachabilityState(Enum):
    UNKNOWN = "unknown"  # never contacted
    REACHABLE = "reachable"
    DOWN = "down"  # the last attempt found no connection; not contacted until its recheck
    RECHECK = "recheck"  # down, but the recheck is due: the next contact is allowed

    @property
    def reachable(self) -> bool | None:
        """As the registry stores it: True, False, or None when never contacted."""
        if self is ReachabilityState.UNKNOWN:
            return None
        return self is ReachabilityState.REACHABLE


class Contact(Enum):
    """How a contact with or through the DC ended, as far as the DC is concerned."""

    ANSWERED = "answered"
    METER_SILENT = "meter-silent"
    NO_CONNECTION = "no-connection"


class RecheckDue(Enum):
    """The event time produces: the recheck delay after a failed attempt has passed."""

    RECHECK_DUE = "recheck-due"


Event = Contact | RecheckDue

_S = ReachabilityState
_C = Contact
#: (state, event) -> state. A pair missing here leaves the state as it is (time passing while reachable).
TRANSITIONS: dict[tuple[ReachabilityState, Event], ReachabilityState] = {
    (_S.UNKNOWN, _C.ANSWERED): _S.REACHABLE,
    (_S.UNKNOWN, _C.METER_SILENT): _S.REACHABLE,
    (_S.UNKNOWN, _C.NO_CONNECTION): _S.DOWN,
    (_S.REACHABLE, _C.ANSWERED): _S.REACHABLE,
    (_S.REACHABLE, _C.METER_SILENT): _S.REACHABLE,
    (_S.REACHABLE, _C.NO_CONNECTION): _S.DOWN,
    (_S.DOWN, _C.ANSWERED): _S.REACHABLE,
    (_S.DOWN, _C.METER_SILENT): _S.REACHABLE,
    (_S.DOWN, _C.NO_CONNECTION): _S.DOWN,
    (_S.DOWN, RecheckDue.RECHECK_DUE): _S.RECHECK,
    (_S.RECHECK, _C.ANSWERED): _S.REACHABLE,
    (_S.RECHECK, _C.METER_SILENT): _S.REACHABLE,
    (_S.RECHECK, _C.NO_CONNECTION): _S.DOWN,
}


def reached(contact: Contact) -> bool:
    """Whether the DC is reachable after a contact that ended so: from the table, where a contact's row is the
    same whatever the state before it (tested), so a store can apply it without reading the state first."""
    return TRANSITIONS[(ReachabilityState.UNKNOWN, contact)] is ReachabilityState.REACHABLE


class FailureKind(Enum):
    """What stopped an exchange, as far as reachability is concerned (the caller maps its errors)."""

    CONNECT = "connect"  # no connection made (refused, connect timeout)
    LOST = "lost"  # the connection dropped
    TIMEOUT = "timeout"  # no answer in time
    ANSWER = "answer"  # an answer came back, but not the one wanted (refusal, security, corrupt)


def contact_outcome(failure: FailureKind | None, *, associated: bool, tunnelled: bool) -> Contact:
    """The outcome of a contact through a DC: ``failure`` None when the exchange succeeded.

    ``associated``: an association was established (the DC carried it, whatever failed later);
    ``tunnelled``: the exchange went through the DC's gateway to the meter (else the DC answered itself).
    """
    if failure is None or associated or failure is FailureKind.ANSWER:
        return Contact.ANSWERED
    if failure is FailureKind.TIMEOUT and tunnelled:
        # The DC took the connection and forwards; the meter's answer never came back through it.
        return Contact.METER_SILENT
    return Contact.NO_CONNECTION


@dataclass(frozen=True, slots=True)
class Reachability:
    """A DC's reachability: its state, the last attempt, the last answer, and since when it has been down."""

    state: ReachabilityState = ReachabilityState.UNKNOWN
    last_attempt: float | None = None
    last_contact: float | None = None
    down_since: float | None = None

    @classmethod
    def stored(cls, reachable: bool | None, last_attempt: float | None, last_contact: float | None,
               down_since: float | None = None) -> Reachability:
        """The state from what the registry keeps (a failure stored before attempts were timed: rechecked)."""
        if reachable is None:
            state = ReachabilityState.UNKNOWN
        elif reachable:
            state = ReachabilityState.REACHABLE
        else:
            state = ReachabilityState.DOWN if last_attempt is not None else ReachabilityState.RECHECK
        if state is ReachabilityState.DOWN or state is ReachabilityState.RECHECK:
            down_since = down_since if down_since is not None else last_attempt
        else:
            down_since = None
        return cls(state, last_attempt, last_contact, down_since)

    def _move(self, event: Event) -> ReachabilityState:
        return TRANSITIONS.get((self.state, event), self.state)

    def record(self, contact: Contact, at: float) -> Reachability:
        """The state after a contact attempt at ``at`` ended in ``contact``."""
        state = self._move(contact)
        down = state is ReachabilityState.DOWN
        return Reachability(
            state,
            last_attempt=at,
            last_contact=self.last_contact if contact is Contact.NO_CONNECTION else at,
            down_since=(self.down_since if self.down_since is not None else at) if down else None,
        )

    def recheck_at(self, recheck_after: float) -> float | None:
        """When a DC found down may be contacted again (None: it is not down)."""
        if self.state is not ReachabilityState.DOWN or self.last_attempt is None:
            return None
        return self.last_attempt + recheck_after

    def at(self, now: float, recheck_after: float = DEFAULT_RECHECK_AFTER) -> Reachability:
        """The state at ``now``: a DC down for ``recheck_after`` seconds since its last attempt is due a recheck."""
        due = self.recheck_at(recheck_after)
        if due is None or now < due:
            return self
        return replace(self, state=self._move(RecheckDue.RECHECK_DUE))

    def may_contact(self, now: float, recheck_after: float = DEFAULT_RECHECK_AFTER, *, force: bool = False) -> bool:
        """Whether to contact the DC now: not while it is down and its recheck is not due, unless ``force``."""
        return force or self.at(now, recheck_after).state is not ReachabilityState.DOWN

    def fails_fast(self, queued_at: float) -> bool:
        """Whether work queued at ``queued_at`` fails without a contact: it was queued before the DC was found down."""
        return (self.state is ReachabilityState.DOWN and self.last_attempt is not None
                and queued_at <= self.last_attempt)

    @property
    def reachable(self) -> bool | None:
        return self.state.reachable
