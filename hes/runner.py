"""The one order runner: checks, order, counters, session, contact, finish, audit, for every path to the field.

An order is one job on one device: a read, a relay command, a clock sync, a DC's own log or meter
table. ``OrderRunner.run(job)`` does the whole life of it, each step written once:

1. In one transaction, committed before anything is contacted: the order, PENDING (a process
   killed later still leaves its trace); the device's facts (``hes.db.devices``); the checks
   (``hes.checks``: a FAIL with the reason when one does not hold); the target (keys decrypted);
   the invocation counters, reserved by the device's ``CounterKeys`` (``hes.db.counters``).
2. The session (``Runner.session``): through the gate (the device's lock, its DC's one session
   budget), deadlines by the link it crosses (``concentrator.links``), the DC's clock read when
   it is due, the job's body; the error that ended it classified once (``hes.failures``).
3. In one transaction: the replay floor, the contact outcome with the DC, its clock (``Runner.settle``),
   what the job stores, the order EXE / WARN / FAIL with observations or the reason, the audit row.

N2PLoad runs the same steps without an order of its own (its plan item is the order, recorded by
the engine), batching steps 1 and 3 of many meters into shared transactions: it calls ``prepare``,
``session`` and ``settle`` directly. The field tool runs ``session`` on its optical line with the
counters of its key file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from concentrator.clock import DEFAULT_POLICY, ClockCheck, ClockPolicy, ClockState
from concentrator.links import DEFAULT_DEADLINES, Deadlines, ReadMode
from concentrator.reachability import Contact
from hes.checks import Refused, check_concentrator, check_meter
from hes.crash import crash_point
from hes.db.concentrators import record_clock, record_contacts
from hes.db.counters import record_received_many, reserve_for
from hes.db.devices import ConcentratorFacts, MeterFacts, concentrator_facts, meter_facts, record_list_limits
from hes.db.engine import StorageError, session_factory, storage_errors
from hes.db.models import Order, utcnow
from hes.db.orders import create_order, finish_order, record_audit, start_order
from hes.devicetypes import DeviceType
from hes.errors import FAILURES, HesError
from hes.failures import Failure, classify, refusal
from hes.model import CounterReservation, ManagementRoute, MeterTarget, ViaConcentrator
from hes.profiles import CLOCK
from hes.registry import Registry, RegistryError
from hes.session import LinkFactory, MeterSession, Timeouts, open_session
from hes.slots import Gate
from hes.transport.pool import LinkPool
from protocols.axdr import DataTag
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, SecurityError, ServiceError

__all__ = [
    "UNLIMITED",
    "Announcement",
    "Body",
    "Finish",
    "Job",
    "Observations",
    "OrderResult",
    "OrderRunner",
    "Prepared",
    "Runner",
    "SessionResult",
    "settle",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
State = Literal["EXE", "WARN", "FAIL"]

#: Connect, release and HDLC repeats of a session whose response deadline is the link's.
_BASE_TIMEOUTS = Timeouts(connect=10.0, release=3.0, retries=3)
#: What ends a session: a typed error of the head-end or the stack, or a deadline (``asyncio.timeout``).
_SESSION_ERRORS: tuple[type[BaseException], ...] = (*FAILURES, TimeoutError)
#: The reservation of a session that ciphers nothing: no counter goes on the wire, none is persisted.
UNLIMITED = CounterReservation(start=1, limit=2**32)


class Observations(list[str]):
    """What a body noticed that makes an executed order a WARN (gaps, flags, a clock off, a relay not where asked)."""


#: A job's work on the open session; its result is the job's own (rows to store, values to show).
Body = Callable[[MeterSession, Observations], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class Finish:
    """What a job's ``store`` and ``announce`` know of its order: the device's id in the registry (0: a DC or
    unknown), the order, when, the DC on the way (None: none, or not known for a refused order), and the
    order's observations (``store`` may add some: what it found storing makes the order a WARN too)."""

    device_id: int
    order_number: str
    now: datetime
    concentrator_id: str | None = None
    observations: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Announcement(Generic[T]):
    """An order's result as ``announce`` gets it: state, the reason or the observations, the body's result."""

    finish: Finish
    state: State
    detail: str | None
    result: T | None


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One order: what to do (``body``) on which device, with how many invocation counters.

    ``device`` is a meter's serial, or a DC's id when ``concentrator`` (the DC's own logical device).
    ``store`` runs in the finishing transaction of an executed order, with the body's result: it
    writes what the job read and returns how many rows were new, and a line for the audit.
    """

    device: str
    command: str
    body: Body[T]
    counters: int
    parameters: Mapping[str, Any] = field(default_factory=dict)
    mode: ReadMode = "gateway"
    concentrator: bool = False
    #: Contact a DC known to be down anyway (a plan's retry, ``--recheck-dc``).
    force_contact: bool = False
    #: What is not done when a check refuses ("read", "sent", ...).
    verb: str = "read"
    store: Callable[[Session, Finish, T], tuple[int, str | None]] | None = None
    #: Runs in the finishing transaction of every order, FAIL included (the event bus's command message).
    announce: Callable[[Session, Announcement[T]], None] | None = None
    #: ``hes.crash`` point between the exchange and the storage of its result.
    crash_point: str | None = None
    #: Read the DC's clock in this session when its last reading is older than the runner's clock interval.
    check_dc_clock: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """Step 1's result for one device: the target, its counters, the device's id in the registry (0: a DC)."""

    target: MeterTarget
    reservation: CounterReservation
    device_id: int
    #: The DC's clock is due a reading in this session.
    clock_due: bool = False
    #: When the session is tunnelled through the DC to its meter (gateway mode), the DC's clock is read in
    #: a short session of its own with the DC's management logical device, after the meter's: its target
    #: and counters.
    clock_target: MeterTarget | None = None
    clock_reservation: CounterReservation | None = None


@dataclass(slots=True)
class SessionResult(Generic[T]):
    """Step 2's result: the body's result or the failure, and what step 3 stores of the session."""

    target: MeterTarget
    result: T | None = None
    failure: Failure | None = None
    #: The error that ended the session, as raised (``failure`` is its classification).
    error: BaseException | None = None
    observations: Observations = field(default_factory=Observations)
    associated: bool = False
    counters_used: int | None = None
    last_received: int | None = None
    clock: ClockCheck | None = None
    #: The replay floor the DC management session that read the clock leaves (gateway mode): the device
    #: received from, the client SAP, the highest counter received.
    clock_received: tuple[str, int, int] | None = None
    #: The GET-with-list limit the session learned from the device (None: nothing learned).
    list_limit: int | None = None

    @property
    def contact(self) -> Contact | None:
        """The outcome of this contact with the DC on the way (None: no DC, or nothing known)."""
        if self.target.concentrator_id is None:
            return None
        if self.failure is not None:
            return self.failure.contact
        return Contact.ANSWERED


@dataclass(frozen=True, slots=True)
class OrderResult(Generic[T]):
    """An order's outcome: its number, EXE/WARN/FAIL, the reason or observations, the body's result."""

    order_number: str
    device: str
    command: str
    state: State
    reason: str | None = None
    retryable: bool = False
    observations: tuple[str, ...] = ()
    result: T | None = None
    stored: int = 0
    failure: Failure | None = None
    counters_used: int | None = None
    last_received: int | None = None
    #: The DC's clock, when this order read it.
    clock: ClockCheck | None = None

    @property
    def ok(self) -> bool:
        return self.state != "FAIL"

    @property
    def clock_deviation(self) -> float | None:
        return None if self.clock is None else self.clock.deviation


class Runner:
    """The steps every path shares (prepare, session, settle), with the process's gate, pool and deadlines.

    ``timeouts`` overrides the per-link response deadlines (``deadlines``, by default the
    registry's, ``HES_DEADLINE_*``): a command line's ``--timeout``. ``connect`` replaces every
    route's own link (tests, the benchmark's in-process field). ``clock`` is the head-end's clock
    (checks, the DC clock's deviation); ``clock_policy`` how closely DC clocks are watched (by default
    the registry's, ``HES_CONCENTRATOR_CLOCK_*``).
    """

    def __init__(self, registry: Registry | None, *, gate: Gate | None = None, pool: LinkPool | None = None,
                 deadlines: Deadlines | None = None, timeouts: Timeouts | None = None,
                 connect: LinkFactory | None = None, clock: Callable[[], datetime] = utcnow,
                 clock_policy: ClockPolicy | None = None) -> None:
        self._registry = registry
        self.gate = gate if gate is not None else Gate()
        self.pool = pool
        self.deadlines = deadlines or (registry.deadlines if registry is not None else DEFAULT_DEADLINES)
        self.timeouts = timeouts
        self._timeouts: dict[tuple[bool, str, float | None] | None, Timeouts] = {}
        self.connect = connect
        self.clock = clock
        self.clock_policy = clock_policy or (registry.dc_clock if registry is not None else DEFAULT_POLICY)
        # DCs whose clock a session of this process is reading (or read lately): one reading per DC and interval.
        self._clock_claims: dict[str, datetime] = {}

    @property
    def registry(self) -> Registry:
        """The registry steps 1 and 3 work on (a runner without one, the field tool's, only runs sessions)."""
        if self._registry is None:
            raise HesError("this runner has no registry: it only runs sessions")
        return self._registry

    # --- step 1 -------------------------------------------------------------------------------------------------

    def prepare(self, connection: Connection, job: Job[Any], now: datetime) -> Prepared:
        """Facts, checks, target and counters of ``job``'s device on ``connection`` (the caller commits).

        Raises ``Refused`` when a check does not hold (or the registry's data cannot be used as it
        is), a ``HesError`` when the device's counters are used up.
        """
        return self.reserve(connection, job, self.check(connection, job, now), now)

    def check(self, connection: Connection, job: Job[Any], now: datetime) -> MeterFacts | ConcentratorFacts:
        """The device's facts, once the use case's checks hold for them (``Refused`` otherwise)."""
        if job.concentrator:
            dc = concentrator_facts(connection, job.device)
            if dc is None:
                raise Refused(f"concentrator {job.device} is not registered")
            return dc
        facts = check_meter(meter_facts(connection, job.device), job.device, verb=job.verb)
        check_concentrator(facts, now, force=job.force_contact)
        return facts

    def reserve(self, connection: Connection, job: Job[Any], facts: MeterFacts | ConcentratorFacts, now: datetime,
                *, counters: int | None = None, device_type: DeviceType | None = None) -> Prepared:
        """The target and its invocation counters (``counters``, default the job's), reserved on ``connection``
        (``device_type``: the meter's, when the caller has it already)."""
        if isinstance(facts, ConcentratorFacts):
            target = self.registry.management_target(facts)
            device_id = 0
            clock_state: ClockState | None = facts.clock
        else:
            try:
                target = self.registry.target(facts, mode=job.mode, device_type=device_type)
            except RegistryError as exc:
                raise Refused(str(exc)) from None
            device_id = facts.id
            clock_state = None if facts.concentrator is None else facts.concentrator.clock
        reservation = UNLIMITED
        if target.session_security.policy == "hls-gmac":
            reservation = reserve_for(connection, target.counter_keys, counters or job.counters, now)
        dc_id = target.concentrator_id
        if not (job.check_dc_clock and dc_id is not None and clock_state is not None
                and clock_state.due(now, self.clock_policy.every) and self._claim_clock(dc_id, now)):
            return Prepared(target, reservation, device_id)
        route = target.route
        if not (isinstance(route, ViaConcentrator) and route.tunnelled):
            return Prepared(target, reservation, device_id, True)
        # Gateway mode: the DC only relays this session; its clock is read from its management device.
        dc = concentrator_facts(connection, route.concentrator_id)
        if dc is None:
            return Prepared(target, reservation, device_id)
        try:
            clock_target = self.registry.management_target(dc)
        except RegistryError as exc:
            logger.info("concentrator %s: clock not read: %s", dc.id, exc)
            return Prepared(target, reservation, device_id)
        clock_reservation = UNLIMITED
        if clock_target.session_security.policy == "hls-gmac":
            clock_reservation = reserve_for(connection, clock_target.counter_keys, 4, now)
        return Prepared(target, reservation, device_id, True, clock_target, clock_reservation)

    def _claim_clock(self, concentrator_id: str, now: datetime) -> bool:
        claimed = self._clock_claims.get(concentrator_id)
        every = self.clock_policy.every
        if every is None or (claimed is not None and now - claimed < every):
            return False
        if len(self._clock_claims) > 100_000:
            self._clock_claims.clear()
        self._clock_claims[concentrator_id] = now
        return True

    # --- step 2 -------------------------------------------------------------------------------------------------

    def timeouts_for(self, target: MeterTarget) -> Timeouts:
        """The session's deadlines: the response deadline by the link its exchanges cross."""
        route = target.route
        given = self.timeouts
        if given is not None:
            return given
        key = (route.tunnelled, route.medium, route.response_deadline) if isinstance(route, ViaConcentrator) else None
        timeouts = self._timeouts.get(key)
        if timeouts is None:  # a few links in a fleet: each one's deadlines built once
            if key is not None:
                read = self.deadlines.for_exchange(tunnelled=key[0], medium=key[1], override=key[2])
            else:
                read = self.deadlines.for_exchange(tunnelled=False)
            timeouts = self._timeouts[key] = dataclasses.replace(_BASE_TIMEOUTS, read=read)
        return timeouts

    async def session(self, prepared: Prepared, body: Body[T], *, connect: LinkFactory | None = None,
                      rng: Callable[[int], bytes] | None = None, **options: Any) -> SessionResult[T]:
        """Open the session (gate, link, association), read the DC's clock if due, run ``body``, close."""
        target = prepared.target
        out: SessionResult[T] = SessionResult(target)
        error: BaseException | None = None
        extra = dict(options)
        if rng is not None:
            extra["rng"] = rng
        try:
            async with open_session(target, prepared.reservation, gate=self.gate, pool=self.pool,
                                    timeouts=self.timeouts_for(target), connect=connect or self.connect,
                                    **extra) as session:
                out.associated = True
                try:
                    if prepared.clock_due and prepared.clock_target is None:
                        out.clock = await self._read_dc_clock(session, target, out.observations)
                    out.result = await body(session, out.observations)
                finally:
                    out.counters_used, out.last_received = session.counters_used, session.last_received
                    out.list_limit = session.learned_list_limit
        except _SESSION_ERRORS as exc:
            error = exc
        if prepared.clock_target is not None and prepared.clock_reservation is not None:
            if error is None:
                await self._dc_clock_session(prepared.clock_target, prepared.clock_reservation, out, connect, extra)
            else:
                # The session failed: the DC's clock waits for the next contact.
                self._clock_claims.pop(prepared.clock_target.serial, None)
        if error is not None:
            out.error = error
            out.failure = classify(error, target, associated=out.associated)
            if (isinstance(error, SecurityError) and target.session_security is not target.security) or (
                    isinstance(error, SecurityError) and isinstance(target.route, ManagementRoute)):
                # The DC's keys changed without its row saying so: read them again next time.
                self.registry.forget_concentrator_security(target.concentrator_id or "")
        return out

    async def _dc_clock_session(self, target: MeterTarget, reservation: CounterReservation, out: SessionResult[Any],
                                connect: LinkFactory | None, extra: Mapping[str, Any]) -> None:
        """Read the DC's clock in a short session with its management device (after a tunnelled session).

        Whatever fails here is an observation of the DC, never the order's failure: the order was the
        meter's.
        """
        dc = target.serial
        try:
            async with open_session(target, reservation, gate=self.gate, pool=self.pool,
                                    timeouts=self.timeouts_for(target), connect=connect or self.connect,
                                    **extra) as session:
                try:
                    out.clock = await self._read_dc_clock(session, target, out.observations)
                finally:
                    last = session.last_received
                    if last is not None and target.session_security.policy == "hls-gmac":
                        keys = target.counter_keys
                        out.clock_received = (keys.received_device, keys.client_sap, last)
        except _SESSION_ERRORS as exc:
            logger.info("concentrator %s: clock not read: %s", dc, exc)
            reason = classify(exc, target, associated=False).reason
            out.observations.append(f"concentrator {dc} clock not read: {reason}")

    async def _read_dc_clock(self, session: MeterSession, target: MeterTarget,
                             observations: Observations) -> ClockCheck | None:
        """The DC's clock (its management device, or one of its concentrated logical devices: the DC answers)."""
        dc = target.concentrator_id
        if dc is None or (isinstance(target.route, ViaConcentrator) and target.route.tunnelled):
            return None
        try:
            data = await session.get(8, CLOCK, 2)
        except ServiceError as exc:
            logger.info("concentrator %s: clock not read: %s", dc, exc)
            return None
        raw = data.value
        try:
            stamp = raw if isinstance(raw, CosemDateTime) else CosemDateTime.decode(bytes(raw)) \
                if data.tag == DataTag.OCTET_STRING else None
        except DecodeError:
            stamp = None
        moment = None if stamp is None else stamp.to_datetime()
        if moment is None:
            observations.append(f"concentrator {dc} clock unreadable: {data.tag.name.lower()} {raw!r}")
            return None
        check = ClockCheck(dc, moment, self.clock(), self.clock_policy.tolerance)
        note = check.observation()
        if note is not None:
            observations.append(note)
        return check

    # --- step 3 -------------------------------------------------------------------------------------------------

    def settle(self, connection: Connection, outcomes: Sequence[tuple[SessionResult[Any], datetime]]) -> None:
        settle(connection, outcomes)


def settle(connection: Connection, outcomes: Sequence[tuple[SessionResult[Any], datetime]]) -> None:
    """Step 3's common part: what sessions say of the field, stored in the caller's transaction: replay floors,
    the DCs' contact outcomes (one write per DC), their clocks, the meters' learned GET-with-list limits."""
    received: list[tuple[str, int, int, datetime]] = []
    contacts: list[tuple[str, Contact, datetime]] = []
    limits: list[tuple[str, int]] = []
    for outcome, now in outcomes:
        target = outcome.target
        route = target.route
        if outcome.list_limit is not None and not isinstance(route, ManagementRoute) and not (
                isinstance(route, ViaConcentrator) and route.mode == "concentrated"):
            # The meter's own limit: a DC answering from its tables has its own, not the meter's.
            limits.append((target.serial, outcome.list_limit))
        if outcome.last_received is not None and target.session_security.policy == "hls-gmac":
            keys = target.counter_keys
            received.append((keys.received_device, keys.client_sap, outcome.last_received, now))
        contact = outcome.contact
        dc = target.concentrator_id
        if contact is not None and dc is not None:
            contacts.append((dc, contact, now))
        if outcome.clock is not None:
            record_clock(connection, outcome.clock)
        if outcome.clock_received is not None:
            received.append((*outcome.clock_received, now))
    if received:
        record_received_many(connection, received)
    if contacts:
        record_contacts(connection, contacts)
    if limits:
        record_list_limits(connection, limits)


class OrderRunner(Runner):
    """``Runner`` plus the order's life: ``run(job)`` (see the module docstring). ``requested_by`` names the user."""

    def __init__(self, registry: Registry, *, requested_by: str, **options: Any) -> None:
        super().__init__(registry, **options)
        self.requested_by = requested_by
        self._sessions = session_factory(registry.engine)

    def _audit_what(self, job: Job[Any], order_number: str) -> str:
        described = job.parameters.get("described", f"{job.command} {job.device}")
        return f"{described} (order {order_number})"

    async def run(self, job: Job[T], *, requested_by: str | None = None, clock_due: bool = False) -> OrderResult[T]:
        """Run ``job`` as an order (``requested_by``: who asked, when not the runner's own user; ``clock_due``:
        read the DC's clock whenever its last reading was)."""
        who = requested_by or self.requested_by
        engine = self.registry.engine
        parameters = {k: v for k, v in job.parameters.items() if k != "described"}
        now = self.clock()
        refused: Failure | None = None
        prepared: Prepared | None = None
        with storage_errors(engine), self._sessions() as db, db.begin():
            order = create_order(db, job.device, job.command, parameters, who, when=now)
            order_number, order_id = order.order_number, order.id
            try:
                prepared = self.prepare(db.connection(), job, now)
            except Refused as exc:
                refused = refusal(exc.reason, exc.retryable)
            except StorageError:
                raise
            except HesError as exc:  # registry data that cannot be used as it is (keys, counters used up)
                refused = refusal(str(exc), exc.retryable)
            if refused is not None or prepared is None:
                failure = refused or refusal("nothing to run")
                finish_order(db, order, "FAIL", reason=failure.reason, when=now)
                record_audit(db, who, self._audit_what(job, order_number), f"FAIL: {failure.reason}", when=now)
                if job.announce is not None:
                    job.announce(db, Announcement(Finish(0, order_number, now), "FAIL", failure.reason, None))
                return OrderResult(order_number, job.device, job.command, "FAIL", failure.reason, failure.retryable,
                                   failure=failure)
            start_order(db, order, when=now)
        if clock_due and not prepared.clock_due and prepared.target.concentrator_id is not None:
            prepared = dataclasses.replace(prepared, clock_due=True)
        outcome = await self.session(prepared, job.body)
        logger.info("%s %s (%s): %s", job.command, job.device, order_number,
                    "done" if outcome.failure is None else outcome.failure.reason)
        if job.crash_point is not None:
            crash_point(job.crash_point)
        return self._finish(job, order_id, order_number, prepared, outcome, parameters, who)

    def _finish(self, job: Job[T], order_id: int, order_number: str, prepared: Prepared, outcome: SessionResult[T],
                parameters: dict[str, Any], who: str) -> OrderResult[T]:
        engine = self.registry.engine
        now = self.clock()
        failure = outcome.failure
        stored = 0
        with storage_errors(engine), self._sessions() as db, db.begin():
            self.settle(db.connection(), [(outcome, now)])
            row = db.get(Order, order_id)
            if row is None:  # someone deleted it under us: a storage problem, not a field one
                raise RegistryError(f"order {order_number} vanished from the database")
            reservation = prepared.reservation
            if reservation is not UNLIMITED:
                row.parameters = {**parameters, "counters": [reservation.start, reservation.limit],
                                  "counters_used": outcome.counters_used}
            what = self._audit_what(job, order_number)
            finish = Finish(prepared.device_id, order_number, now, prepared.target.concentrator_id,
                            list(outcome.observations))
            if failure is not None:
                finish_order(db, row, "FAIL", reason=failure.reason, when=now)
                record_audit(db, who, what, f"FAIL: {failure.reason}", when=now)
                state: State = "FAIL"
                text: str | None = failure.reason
            else:
                detail: str | None = None
                if job.store is not None and outcome.result is not None:
                    stored, detail = job.store(db, finish, outcome.result)
                state = "WARN" if finish.observations else "EXE"
                text = "; ".join(finish.observations) or None
                finish_order(db, row, state, observations=text, when=now)
                audit = state if text is None else f"{state}: {text}"
                record_audit(db, who, what, audit if detail is None else f"{audit} ({detail})", when=now)
            if job.announce is not None:
                job.announce(db, Announcement(finish, state, text, outcome.result))
        observations = tuple(finish.observations)
        if failure is not None:
            return OrderResult(order_number, job.device, job.command, "FAIL", failure.reason, failure.retryable,
                               observations, outcome.result, 0, failure, outcome.counters_used, outcome.last_received,
                               outcome.clock)
        return OrderResult(order_number, job.device, job.command, state, None, False, observations, outcome.result,
                           stored, None, outcome.counters_used, outcome.last_received, outcome.clock)
