"""Fault injection for the simulated field: a per-meter or per-DC plan, applied to bytes and to APDUs.

A ``FaultPlan`` is a plain mutable object: change a field while the field runs and the next
decision sees it. A ``FaultInjector`` draws from the plan with its own seeded random streams
(one per kind of fault, so turning one fault on does not shift the draws of another) and is
what the transports (``simulators.transport``) consult for each connection, answer and frame.
At the APDU level, ``FaultySession`` wraps any ``Session`` to answer with an ExceptionResponse or
to replay the session's previous ciphered answer (an old invocation counter).
Clock drift and decommissioned meters belong to the meter's own configuration, not here.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from protocols.security import is_ciphered_tag
from protocols.xdlms.errors import ExceptionResponse, ExceptionServiceError, ExceptionStateError
from simulators.endpoint import Session

__all__ = ["FaultInjector", "FaultPlan", "FaultySession", "ProbabilityError"]

logger = logging.getLogger(__name__)

# ACSE APDUs (AARQ, RLRQ) are never answered with an ExceptionResponse: the standard has none for them.
_ACSE_TAGS = frozenset((0x60, 0x61, 0x62, 0x63))
_PROBABILITIES = ("drop_mid_transfer", "truncate_frame", "corrupt_fcs", "exception_response", "replay_counter")


class ProbabilityError(ValueError):
    """A fault probability outside 0..1 or a negative delay (a configuration mistake)."""


@dataclass
class FaultPlan:
    """What goes wrong, for one meter or one concentrator. Probabilities are per event, 0..1.

    Byte level (applied by the transports):
    ``refuse_connections``: a WAN outage; each TCP connection is closed as soon as it is accepted.
    ``silent``: a failed modem; connections are accepted but nothing is ever answered.
    ``answer_delay``: wall seconds added before every answer (a slow device or network).
    ``drop_mid_transfer``: per answer, send part of it and then drop the connection.
    ``truncate_frame``: per frame sent (HDLC frame or wrapper PDU), send only a prefix of it.
    ``corrupt_fcs``: per HDLC frame sent, damage its frame check sequence (no effect on the wrapper).

    APDU level (applied by ``FaultySession``):
    ``exception_response``: per xDLMS request, answer an ExceptionResponse with ``exception_error``
    instead of serving it. ``replay_counter``: per ciphered answer, send the previous ciphered
    answer again (its invocation counter is old, so a correct client must refuse it).
    """

    seed: int | str = 0
    #: Whose plan this is (meter serial, DC id): part of the name of every random stream.
    name: str = ""
    refuse_connections: bool = False
    silent: bool = False
    answer_delay: float = 0.0
    drop_mid_transfer: float = 0.0
    truncate_frame: float = 0.0
    corrupt_fcs: float = 0.0
    exception_response: float = 0.0
    exception_error: ExceptionServiceError = ExceptionServiceError.SERVICE_NOT_SUPPORTED
    replay_counter: float = 0.0
    #: Faults applied so far, by kind: lets tests and operators see that a fault happened.
    applied: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ProbabilityError`` for a value no draw can honour (call after changing fields)."""
        for name in _PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ProbabilityError(f"fault probability {name}={value} is not between 0 and 1")
        if self.answer_delay < 0:
            raise ProbabilityError(f"answer_delay={self.answer_delay} cannot be negative")

    def count(self, kind: str) -> None:
        self.applied[kind] = self.applied.get(kind, 0) + 1

    @property
    def any_byte_fault(self) -> bool:
        return bool(self.refuse_connections or self.silent or self.answer_delay or self.drop_mid_transfer
                    or self.truncate_frame or self.corrupt_fcs)


class FaultInjector:
    """The decisions of one plan, drawn from seeded random streams ``f"{seed}:faults:{name}:{kind}"``."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._streams: dict[str, random.Random] = {}

    def _rng(self, kind: str) -> random.Random:
        rng = self._streams.get(kind)
        if rng is None:
            rng = self._streams[kind] = random.Random(f"{self.plan.seed}:faults:{self.plan.name}:{kind}")
        return rng

    def _happens(self, kind: str, probability: float) -> bool:
        # Draw only when the fault is on, so that a plan without faults consumes no randomness.
        if probability <= 0.0:
            return False
        if probability < 1.0 and self._rng(kind).random() >= probability:
            return False
        self.plan.count(kind)
        return True

    # --- connection level --------------------------------------------------------------------

    def refuse_connection(self) -> bool:
        if self.plan.refuse_connections:
            self.plan.count("refuse_connections")
            return True
        return False

    def silent(self) -> bool:
        return self.plan.silent

    def answer_delay(self) -> float:
        return max(0.0, self.plan.answer_delay)

    def drop_point(self, size: int) -> int | None:
        """Where to cut an answer of ``size`` bytes before dropping the connection, or None."""
        if size < 2 or not self._happens("drop_mid_transfer", self.plan.drop_mid_transfer):
            return None
        return self._rng("drop_mid_transfer:where").randrange(1, size)

    # --- frame level -------------------------------------------------------------------------

    def damage_frame(self, frame: bytes, *, has_fcs: bool) -> bytes:
        """The frame as it goes on the wire: whole, with a bad FCS, or truncated."""
        if has_fcs and len(frame) >= 4 and self._happens("corrupt_fcs", self.plan.corrupt_fcs):
            # The FCS is the two bytes before the closing flag; inverting one keeps the flag intact.
            damaged = bytearray(frame)
            damaged[-2] ^= 0xFF
            frame = bytes(damaged)
        if len(frame) >= 2 and self._happens("truncate_frame", self.plan.truncate_frame):
            frame = frame[:self._rng("truncate_frame:where").randrange(1, len(frame))]
        return frame

    # --- APDU level --------------------------------------------------------------------------

    def exception_instead(self, apdu: bytes) -> bytes | None:
        """An ExceptionResponse to send instead of serving ``apdu``, or None."""
        if not apdu or apdu[0] in _ACSE_TAGS:
            return None
        if not self._happens("exception_response", self.plan.exception_response):
            return None
        error = self.plan.exception_error
        counter = 0 if error is ExceptionServiceError.INVOCATION_COUNTER_ERROR else None
        return ExceptionResponse(ExceptionStateError.SERVICE_NOT_ALLOWED, error, counter).encode()

    def replay(self) -> bool:
        return self._happens("replay_counter", self.plan.replay_counter)


class FaultySession:
    """A ``Session`` with the APDU-level faults of a plan applied to what it answers."""

    def __init__(self, inner: Session, injector: FaultInjector) -> None:
        self._inner = inner
        self._injector = injector
        self._last_ciphered: bytes | None = None

    async def handle(self, apdu: bytes) -> list[bytes]:
        exception = self._injector.exception_instead(apdu)
        if exception is not None:
            logger.debug("fault: exception-response instead of serving APDU tag %#04x", apdu[0])
            return [exception]
        answers = await self._inner.handle(apdu)
        out: list[bytes] = []
        for answer in answers:
            ciphered = bool(answer) and is_ciphered_tag(answer[0])
            if ciphered and self._last_ciphered is not None and self._injector.replay():
                # The previous ciphered APDU again: valid tag, but its counter was already used.
                logger.debug("fault: replaying an old ciphered answer")
                out.append(self._last_ciphered)
            else:
                out.append(answer)
            if ciphered:
                self._last_ciphered = answer
        return out

    def close(self) -> None:
        self._inner.close()
