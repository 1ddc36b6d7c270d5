"""Why an order failed, in one line, whether a retry can help, and what it says of the concentrator: one classifier.

Every path that talks to the field (on-demand reads, commands, N2PLoad, a DC's own log and meter
table, the field tool) turns the error that ended its session into a ``Failure`` here, and nowhere
else. The DC part comes from the concentrator model (``concentrator.reachability.contact_outcome``):
no connection means the DC is unreachable (the engine fails the DC's other queued work at once);
a meter silent behind a DC that answered means the meter is out of the DC's reach; anything the DC
carried means it is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass

from concentrator.reachability import Contact, FailureKind, contact_outcome
from hes.errors import HesError
from hes.model import ManagementRoute, MeterTarget, ViaConcentrator
from hes.session import AssociationRefused
from protocols.errors import (
    ConnectionLost,
    ConnectTimeout,
    DecodeError,
    DlmsError,
    ReadTimeout,
    TransportError,
)

__all__ = ["Failure", "classify", "failure_kind", "refusal", "retry_hint"]


def retry_hint(retryable: bool) -> str:
    return "a retry can help" if retryable else "a retry will not help"


@dataclass(frozen=True, slots=True)
class Failure:
    """A FAIL: ``reason`` (one line, ending with whether a retry can help), ``retryable``, and the contact
    outcome with the DC on the way (None: no DC on the way, or the failure says nothing about it)."""

    reason: str
    retryable: bool
    contact: Contact | None = None

    @property
    def concentrator_unreachable(self) -> bool:
        """The DC itself could not be reached: its other queued work fails fast."""
        return self.contact is Contact.NO_CONNECTION


def refusal(reason: str, retryable: bool = False) -> Failure:
    """A FAIL decided before anything was contacted (a check did not hold)."""
    return Failure(f"{reason} ({retry_hint(retryable)})", retryable)


def failure_kind(exc: BaseException) -> FailureKind | None:
    """How far an exchange got, from its error (None: a local error that says nothing of the field)."""
    if isinstance(exc, ConnectTimeout):
        return FailureKind.CONNECT
    if isinstance(exc, ConnectionLost):
        # A refused connection is reported lost by some platforms' stacks: it never connected.
        return FailureKind.CONNECT if isinstance(exc.__cause__, ConnectionRefusedError) else FailureKind.LOST
    if isinstance(exc, ReadTimeout | TimeoutError):
        return FailureKind.TIMEOUT
    if isinstance(exc, TransportError):
        return FailureKind.LOST
    if isinstance(exc, DlmsError):
        return FailureKind.ANSWER
    return None


def _device(target: MeterTarget) -> str:
    route = target.route
    return f"concentrator {route.concentrator_id}" if isinstance(route, ManagementRoute) else f"meter {target.serial}"


def classify(exc: BaseException, target: MeterTarget, *, associated: bool) -> Failure:
    """The ``Failure`` for the error ``exc`` that ended a session with ``target`` (``associated``: after the AARE)."""
    route = target.route
    device = _device(target)
    if isinstance(exc, TimeoutError) and not isinstance(exc, ReadTimeout):
        exc = ReadTimeout(f"{device}: no answer in time")
    retryable = bool(getattr(exc, "retryable", False))
    kind = failure_kind(exc)
    dc = target.concentrator_id
    contact: Contact | None = None
    if dc is not None and kind is not None:
        tunnelled = isinstance(route, ViaConcentrator) and route.tunnelled
        contact = contact_outcome(kind, associated=associated, tunnelled=tunnelled)
    text = str(exc) or type(exc).__name__
    if contact is Contact.NO_CONNECTION:
        return Failure(f"concentrator {dc} is unreachable: {text} ({retry_hint(True)})", True, contact)
    if contact is Contact.METER_SILENT:
        return Failure(f"meter {target.serial} unreachable from concentrator {dc}: no answer through the gateway "
                       f"({text}) ({retry_hint(True)})", True, contact)
    if isinstance(exc, TransportError):
        what = f"{device.split()[0]} did not answer" if isinstance(exc, ReadTimeout) else "communication failed"
        return Failure(f"{what}: {text} ({retry_hint(retryable)})", retryable, contact)
    if isinstance(exc, AssociationRefused) and exc.permanent:
        # An association rejected for good with no reason given: what a decommissioned meter answers.
        return Failure(f"meter not commissioned in the field: {text} ({retry_hint(False)})", False, contact)
    if isinstance(exc, DecodeError):
        return Failure(f"corrupted answer: {text} ({retry_hint(retryable)})", retryable, contact)
    if isinstance(exc, HesError | DlmsError):
        return Failure(f"{text} ({retry_hint(retryable)})", retryable, contact)
    return Failure(f"{type(exc).__name__}: {text} ({retry_hint(retryable)})", retryable, contact)
