"""Meter sessions: reach a meter by its route, associate per its security policy, GET/SET/ACTION, release.

A ``MeterSession`` is its own async context manager (``open_session`` makes one)::

    async with open_session(target, reservation, gate=gate, timeouts=Timeouts(read=20)) as s:
        clock = await s.get(8, CLOCK, 2)
    registry.save_counters(target, s.counters_used, s.last_received)

Routes (``hes.model``): a point-to-point meter over the TCP wrapper, HDLC over TCP or HDLC over a
serial line; a meter behind a data concentrator (DC), either end to end through the DC's gateway
(one TCP connection to the DC, the meter's association with the meter's security wrapped in
gateway APDUs) or "concentrated" (an association with the DC's logical device for that meter,
with the DC's security, answered from the DC's tables); a DC itself (its management logical
device). A session first passes its ``hes.slots.Gate``: the device's lock, and the DC's one session
budget. With a ``LinkPool`` (``hes.transport.pool``), sessions to a DC reuse the TCP connection a
previous session released cleanly. Where a session stands is one ``SessionState``; whether its
link may be reused is decided from it, in one place, when it closes.

Invocation counters come from a ``CounterReservation`` (already persisted by the registry): the
session never uses a counter at or beyond ``limit`` (``ReservationExhausted``: ask for a new
reservation), and reports the highest one used (``counters_used``) and the last one accepted from
the server (``last_received``) for the caller to persist. Every failure is an error of the stack's
one tree (``protocols.errors``), each saying whether a retry can help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from hes.errors import FAILURES, HesError
from hes.model import CounterReservation, DirectRoute, ManagementRoute, MeterSecurity, MeterTarget, ViaConcentrator
from hes.slots import Gate
from hes.transport import ApduLink, HdlcOptions, TcpStream, WrapperLink, open_hdlc, open_serial, open_tcp
from hes.transport.hdlc import DEFAULT_PARAMETERS
from hes.transport.pool import LinkPool
from protocols.acse import AcseServiceUserDiagnostic, AssociationResult, MechanismName, ResultSource
from protocols.association import (
    ActionResult,
    Associated,
    AssociationRejected,
    CipheringMode,
    ClientAssociation,
    ClientConfig,
    ClientState,
    ConfirmedServiceErrorReceived,
    Event,
    ExceptionReceived,
    GatewayAddress,
    GetResult,
    GetWithListResult,
    NotificationReceived,
    Released,
    RemoteProtocolError,
    SecurityFailure,
    SecurityPolicy,
    SetResult,
)
from protocols.axdr import Data, decode_data_exact, encode_data
from protocols.errors import (
    ConnectionLost,
    DlmsError,
    ProtocolError,
    ReadTimeout,
    SecurityError,
    ServiceError,
    StateError,
    TransportError,
)
from protocols.hdlc import HdlcParameters
from protocols.obis import ObisCode
from protocols.xdlms.common import ActionResult as ActionResultCode
from protocols.xdlms.common import (
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataAccessResult,
    SelectiveAccessDescriptor,
)
from protocols.xdlms.conformance import Conformance
from protocols.xdlms.errors import ApplicationReferenceError, ServiceErrorChoice
from protocols.xdlms.selective_access import EntryDescriptor, RangeDescriptor

__all__ = [
    "Access",
    "AssociationRefused",
    "AttributeRef",
    "AuthenticationRefused",
    "LinkFactory",
    "MeterSession",
    "ReservationExhausted",
    "SessionState",
    "TargetError",
    "Timeouts",
    "open_session",
]

logger = logging.getLogger(__name__)

#: Selective access as the caller has it: the encoded descriptor, or a range/entry to encode.
Access = SelectiveAccessDescriptor | RangeDescriptor | EntryDescriptor
#: Bytes for the HLS-GMAC client challenge (CtoS): ``os.urandom`` unless a test passes its own.
Rng = Callable[[int], bytes]
#: Opens the link for a target instead of its route (see ``open_session``).
LinkFactory = Callable[[MeterTarget], Awaitable[ApduLink]]

_CHALLENGE_SIZE = 16
_RELEASE_ERRORS: tuple[type[BaseException], ...] = (*FAILURES, TimeoutError)
_AWAITING = frozenset((ClientState.AWAITING_AARE, ClientState.AWAITING_HLS_REPLY, ClientState.AWAITING_RESPONSE,
                       ClientState.AWAITING_RLRE))
_DECIPHERING_ERROR = int(ApplicationReferenceError.DECIPHERING_ERROR)
_AUTHENTICATION_DIAGNOSTICS = frozenset((
    AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE,
    AcseServiceUserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
    AcseServiceUserDiagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED,
    AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED,
))


# --- errors ------------------------------------------------------------------------------------------


class TargetError(HesError):
    """The target cannot be used as given (missing keys or serial device, counters out of range): fix the data."""


class ReservationExhausted(HesError):
    """Every invocation counter of the reservation is used: the caller must reserve new ones, then retry."""

    retryable = True


class AssociationRefused(ServiceError):
    """The server rejected the association (AARE result not accepted).

    ``permanent`` rejections with no reason given are what a decommissioned meter answers (the
    simulated meters do exactly that); ``retryable`` only for a transient rejection.
    """

    def __init__(self, message: str, result: AssociationResult, diagnostic: int,
                 result_source: ResultSource) -> None:
        super().__init__(message, diagnostic, retryable=result is AssociationResult.REJECTED_TRANSIENT)
        self.result = result
        self.diagnostic = diagnostic
        self.result_source = result_source

    @property
    def permanent(self) -> bool:
        return self.result is AssociationResult.REJECTED_PERMANENT


class AuthenticationRefused(SecurityError):
    """The server rejected the association because authentication failed (wrong password or keys)."""

    def __init__(self, message: str, diagnostic: int) -> None:
        super().__init__(message)
        self.diagnostic = diagnostic


# --- settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines in seconds: TCP/serial connect; each wait for an answer (per APDU, per SNRM/RR repeat);
    the release exchange and, again, closing the link. ``retries``: HDLC SNRM/RR/DISC repeats."""

    connect: float = 10.0
    read: float = 10.0
    release: float = 3.0
    retries: int = 3

    def __post_init__(self) -> None:
        for name in ("connect", "read", "release"):
            if getattr(self, name) <= 0:
                raise ValueError(f"timeout {name}={getattr(self, name)} must be positive")
        if self.retries < 0:
            raise ValueError(f"retries {self.retries} cannot be negative")


class AttributeRef(NamedTuple):
    """One attribute to read in ``get_many``."""

    class_id: int
    obis: ObisCode
    attribute: int
    access: Access | None = None


# --- helpers -------------------------------------------------------------------------------------------


def _selection(access: Access | None) -> SelectiveAccessDescriptor | None:
    if access is None or isinstance(access, SelectiveAccessDescriptor):
        return access
    return access.to_access_selection()


def _policy(security: MeterSecurity, client_title: bytes, what: str, *, general: bool = False) -> SecurityPolicy:
    """The association's security; ``general``: cipher with general-glo-ciphering (0xDB) instead of glo-xxx."""
    try:
        if security.policy == "none":
            return SecurityPolicy()
        if security.policy == "lls":
            return SecurityPolicy(mechanism=MechanismName.LLS, password=security.password)
        if security.policy == "hls-gmac":
            return SecurityPolicy(mechanism=MechanismName.HLS_GMAC,
                                  ciphering=CipheringMode.GENERAL if general else CipheringMode.SERVICE_SPECIFIC,
                                  system_title=client_title, encryption_key=security.ek,
                                  authentication_key=security.ak)
    except ValueError as exc:
        raise TargetError(f"{what}: security {security.policy}: {exc}") from None
    raise TargetError(f"{what}: unknown security policy {security.policy!r}")


def _access_error(what: str, result: DataAccessResult) -> ServiceError:
    return ServiceError(f"{what}: {result.name.lower().replace('_', '-')}", int(result),
                        retryable=result is DataAccessResult.TEMPORARY_FAILURE)


def _describe(class_id: int, obis: ObisCode, member: int, kind: str = "attribute") -> str:
    return f"IC {class_id} {obis} {kind} {member}"


class _Request(NamedTuple):
    """What a request is about, e.g. ``GET IC 3 1.0.1.8.0.255 attribute 2``, for messages.

    Formatted only when a message needs it: most requests succeed and are never described.
    """

    service: str
    class_id: int
    obis: ObisCode
    member: int
    kind: str = "attribute"

    def __str__(self) -> str:
        return f"{self.service} {_describe(self.class_id, self.obis, self.member, self.kind)}"


# --- the session ----------------------------------------------------------------------------------------


class SessionState(Enum):
    """Where a session stands: one state, moved only by ``MeterSession._move`` (httpcore's connection states)."""

    NEW = "new"  # not open: ``async with`` opens it
    OPENING = "opening"  # waiting for its gate, connecting, associating
    READY = "ready"  # associated and nothing went wrong: requests go out; after a clean release the link is reused
    TAINTED = "tainted"  # associated, but an error, a timeout or a cancellation happened: requests still go out
    # while the association stands; the link may carry a late answer, so it is closed, never reused
    BROKEN = "broken"  # the link failed or the association is lost: nothing more is sent
    CLOSED = "closed"  # released and closed; ``async with`` opens it again (a new association)

    @property
    def usable(self) -> bool:
        """Requests may be sent."""
        return self is SessionState.READY or self is SessionState.TAINTED


_S = SessionState
#: The moves a session makes; any other is a bug (``StateError``).
_MOVES: dict[SessionState, frozenset[SessionState]] = {
    _S.NEW: frozenset({_S.OPENING}),
    _S.OPENING: frozenset({_S.READY, _S.TAINTED, _S.BROKEN, _S.CLOSED}),
    _S.READY: frozenset({_S.TAINTED, _S.BROKEN, _S.CLOSED}),
    _S.TAINTED: frozenset({_S.BROKEN, _S.CLOSED}),
    _S.BROKEN: frozenset({_S.CLOSED, _S.OPENING}),  # OPENING: a stale pooled connection, associate on a new one
    _S.CLOSED: frozenset({_S.OPENING}),
}


@dataclass(slots=True)
class _Pooled:
    """The pool's stream under the session's link, and whether it was an idle one (reused) or new."""

    stream: TcpStream
    link: WrapperLink
    reused: bool


class MeterSession(contextlib.AbstractAsyncContextManager["MeterSession"]):
    """One association with one device over one link: ``async with MeterSession(target, counters, ...) as s:``.

    Entering waits for the session's gate (its device's lock, its DC's slot), connects by the
    target's route and associates; leaving releases the association and closes the link, or hands
    the link's connection back to the pool (``pool``) when the session ends READY and the release
    was clean. The session is reusable (a later ``async with`` associates again, its invocation
    counters above every one used so far, from the same reservation) and not re-entrant (entering
    an open session is a ``StateError``). One request at a time (calls are serialised by a lock).
    See ``open_session`` for the arguments.
    """

    def __init__(self, target: MeterTarget, counters: CounterReservation, *, timeouts: Timeouts | None = None,
                 rng: Rng = os.urandom, hdlc_parameters: HdlcParameters = DEFAULT_PARAMETERS,
                 max_receive_pdu_size: int = 0xFFFF, connect: LinkFactory | None = None,
                 pool: LinkPool | None = None, gate: Gate | None = None) -> None:
        self.target = target
        self._link_factory = connect
        # Only a DC's wrapper port is pooled: a direct meter serves one association per connection.
        self._pool = pool if connect is None and isinstance(target.route, ViaConcentrator | ManagementRoute) else None
        self._pooled: _Pooled | None = None
        self._gate = gate
        self._gate_context: contextlib.AbstractAsyncContextManager[None] | None = None
        self.reservation = counters
        self.timeouts = timeouts or Timeouts()
        self._hdlc_parameters = hdlc_parameters
        #: The highest invocation counter consumed (None: none was needed), to persist.
        self.counters_used: int | None = None
        #: Pushes (data / event notifications) that arrived during the session.
        self.notifications: list[NotificationReceived] = []
        #: The most attributes the device answered in one GET-with-list, when this session had to learn it
        #: (a short or refused answer); None when nothing was learned. Kept per meter by ``Runner.settle``.
        self.learned_list_limit: int | None = None
        self.associated: Associated | None = None
        self.state = SessionState.NEW
        # Raised by the counter callback, before the APDU carrying the counter is built; raised again after it.
        self._exhausted: ReservationExhausted | None = None
        self._link: ApduLink | None = None
        self._lock = asyncio.Lock()
        route = target.route
        if isinstance(route, ViaConcentrator) and route.mode == "concentrated":
            self.what = f"meter {target.serial} (DC {route.concentrator_id} tables)"
        elif isinstance(route, ManagementRoute):
            self.what = f"concentrator {route.concentrator_id}"
        else:
            self.what = f"meter {target.serial}" + (
                f" (via DC {route.concentrator_id})" if isinstance(route, ViaConcentrator) else "")
        self._security = target.session_security
        # The device type's ciphering applies to the meter's own associations, not to a DC's (its own rules).
        general = target.device_type.ciphering == "general-glo" and self._security is target.security
        self._policy = _policy(self._security, target.client_system_title, self.what, general=general)
        self._gateway = None
        if isinstance(route, ViaConcentrator) and route.mode == "gateway":
            self._gateway = GatewayAddress(route.network_id, route.physical_address)
        self._rng = rng
        # The largest APDU the meter is asked to send us: the caller's, or the device type's when it sets one.
        own = target.device_type.limits.max_pdu
        self._max_receive_pdu_size = own if own is not None and max_receive_pdu_size == 0xFFFF else \
            max_receive_pdu_size
        self._association = self._new_association(counters.start, counters.last_received)

    def _move(self, state: SessionState) -> None:
        if state is not self.state and state not in _MOVES[self.state]:
            raise StateError(f"{self.what}: a session cannot go from {self.state.value} to {state.value}")
        self.state = state

    def _taint(self) -> None:
        """Something went wrong while the association stands: no reuse of the link afterwards."""
        if self.state is SessionState.READY:
            self._move(SessionState.TAINTED)

    def _break(self) -> None:
        if self.state.usable or self.state is SessionState.OPENING:
            self._move(SessionState.BROKEN)

    def _new_association(self, invocation_counter: int, server_invocation_counter: int | None) -> ClientAssociation:
        """An association not yet started, sending from ``invocation_counter`` (with a fresh HLS challenge)."""
        policy = self._policy
        try:
            config = ClientConfig(
                policy=policy,
                client_challenge=self._rng(_CHALLENGE_SIZE) if policy.mechanism is MechanismName.HLS_GMAC else None,
                invocation_counter=invocation_counter,
                server_invocation_counter=server_invocation_counter,
                server_system_title=self._security.system_title if policy.uses_system_titles else None,
                max_receive_pdu_size=self._max_receive_pdu_size,
                gateway=self._gateway,
                counter_used=self._counter_used,
            )
        except ValueError as exc:
            raise TargetError(f"{self.what}: {exc}") from None
        return ClientAssociation(config)

    # --- what the caller persists -------------------------------------------------------------------

    @property
    def last_received(self) -> int | None:
        """The last invocation counter accepted from the server (the replay check's floor), to persist."""
        return self._association.server_invocation_counter

    @property
    def conformance(self) -> Conformance:
        return self._association.conformance

    def _counter_used(self, value: int) -> None:
        # Runs before the APDU carrying ``value`` is built: refusing here means it is never sent.
        if value >= self.reservation.limit:
            self._exhausted = ReservationExhausted(
                f"{self.what}: invocation counter {value} reaches the reservation's limit "
                f"{self.reservation.limit}; reserve new counters and retry")
            raise self._exhausted
        self.counters_used = value if self.counters_used is None else max(self.counters_used, value)

    # --- opening and closing --------------------------------------------------------------------------

    async def __aenter__(self) -> MeterSession:
        if self.state is not SessionState.NEW and self.state is not SessionState.CLOSED:
            raise StateError(f"{self.what}: the session is already open (a session is not re-entrant)")
        if self.state is SessionState.CLOSED:
            # Used again: a new association, above every counter used so far.
            self._association = self._new_association(self._association.next_invocation_counter,
                                                      self._association.server_invocation_counter)
            self.associated = None
            self._exhausted = None
        self._move(SessionState.OPENING)
        try:
            if self._gate is not None:
                keys = self.target.counter_keys
                self._gate_context = self._gate.enter(keys.lock, self.target.concentrator_id)
                await self._gate_context.__aenter__()
            await self._open()
        except BaseException:
            await self._leave(failed=True)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._leave(failed=exc_info[0] is not None)

    async def _leave(self, *, failed: bool) -> None:
        if failed:
            # The caller's own error may have left a request unanswered: do not reuse the link.
            self._taint()
        try:
            await self.close()
        finally:
            gate, self._gate_context = self._gate_context, None
            if gate is not None:
                await gate.__aexit__(None, None, None)

    async def _connect(self, *, fresh: bool = False) -> ApduLink:
        """The route's link; to a DC with a pool, over an idle stream of the pool unless ``fresh``."""
        route, t = self.target.route, self.timeouts
        if isinstance(route, DirectRoute):
            options = HdlcOptions(client_sap=route.client_sap, server_logical=route.server_sap,
                                  server_physical=route.physical_address, parameters=self._hdlc_parameters,
                                  retries=t.retries, disc_timeout=t.release)
            if route.interface == "serial":
                if not route.serial_device:
                    raise TargetError(f"{self.what}: interface serial, but no serial device is set")
                serial_stream = await open_serial(route.serial_device, route.baud_rate, timeout=t.connect)
                return await open_hdlc(serial_stream, options, timeout=t.read)
            stream = await open_tcp(route.host, route.port, timeout=t.connect)
            if route.interface == "hdlc":
                return await open_hdlc(stream, options, timeout=t.read)
            return WrapperLink(stream, client_wport=route.client_sap, server_wport=route.server_sap)
        pool = self._pool
        reused = False
        if pool is None:
            stream = await open_tcp(route.host, route.port, timeout=t.connect)
        else:
            stream, reused = await pool.open(route.host, route.port, timeout=t.connect, fresh=fresh)
        if isinstance(route, ManagementRoute):
            link = WrapperLink(stream, client_wport=route.client_sap, server_wport=route.wport)
        elif route.mode == "gateway":
            # The meter's own client SAP, carried end to end; the DC forwards from its management wPort.
            link = WrapperLink(stream, client_wport=self.target.client_sap, server_wport=route.management_wport)
        else:
            link = WrapperLink(stream, client_wport=route.dc_client_sap, server_wport=route.logical_device)
        if pool is not None:
            self._pooled = _Pooled(stream, link, reused)
        return link

    async def _open(self) -> None:
        self._link = await (self._link_factory(self.target) if self._link_factory else self._connect())
        try:
            await self._associate()
        except ConnectionLost as exc:
            pooled = self._pooled
            if self._pool is None or pooled is None or not pooled.reused or pooled.link.received:
                raise
            # The DC closed the connection while it waited in the pool (its idle timer, a restart): that
            # says nothing about the DC now, and must not look like "DC unreachable". A new connection does.
            logger.info("%s: the DC had closed the reused connection (%s); associating on a new one", self.what, exc)
            await self._reconnect(self._pool, pooled.stream)
            await self._associate()

    async def _associate(self) -> None:
        self._association.associate()
        event = await self._exchange("association")
        if not isinstance(event, Associated):
            raise self._error(event, "association")
        self.associated = event
        self._move(SessionState.READY)

    async def _reconnect(self, pool: LinkPool, stream: TcpStream) -> None:
        """Drop the stale stream; start again on a new connection with a new association.

        The DC may have received the failed AARQ, and with it the invocation counter it consumed: the
        new association sends above every counter used so far (never one twice), from the same
        reservation (its limit still applies), with a new HLS challenge.
        """
        self._link = self._pooled = None
        pool.stale(stream)
        old = self._association
        self._association = self._new_association(old.next_invocation_counter, old.server_invocation_counter)
        self._move(SessionState.OPENING)  # the failed attempt broke nothing of the new one
        self._link = await self._connect(fresh=True)

    async def close(self) -> None:
        """Release the association and close the link: best effort, bounded by ``timeouts.release`` each.

        The link's connection goes back to the pool only when the session was READY to the end and
        the release was answered: the one place that decides reuse.
        """
        if self.state is SessionState.NEW or self.state is SessionState.CLOSED:
            return
        released = False
        try:
            if self.state.usable:
                association = self._association
                if association.state is ClientState.AWAITING_RESPONSE:
                    association.cancel_request()
                if association.state is ClientState.READY:
                    try:
                        async with asyncio.timeout(self.timeouts.release):
                            association.release()
                            event = await self._exchange("release")
                        released = isinstance(event, Released)
                        if not released:
                            logger.info("%s: release answered with %s", self.what, type(event).__name__)
                    except _RELEASE_ERRORS as exc:
                        # The association ends with the link anyway; the meter times it out.
                        logger.info("%s: release failed (%s); closing the link", self.what, exc)
        finally:
            reusable = released and self.state is SessionState.READY
            self._move(SessionState.CLOSED)
            if not (reusable and self._give_back()):
                await self._close_link()

    def _give_back(self) -> bool:
        """Hand the link's stream to the pool; False: it is not the pool's, or the link kept it."""
        pool, pooled = self._pool, self._pooled
        if pool is None or pooled is None or pooled.link is not self._link:
            return False
        if pooled.link.detach() is not pooled.stream:
            return False
        self._link = self._pooled = None
        pool.give_back(pooled.stream)
        return True

    async def _close_link(self) -> None:
        link, self._link, self._pooled = self._link, None, None
        if link is None:
            return
        try:
            async with asyncio.timeout(self.timeouts.release):
                await link.aclose()
        except (TimeoutError, TransportError) as exc:
            logger.info("%s: closing the link: %s", self.what, exc)

    # --- the exchange loop ----------------------------------------------------------------------------------

    async def _exchange(self, what: str | _Request) -> Event:
        """Send what the association queued; read until the exchange it started is over; return its event."""
        link = self._link
        if link is None or self.state is SessionState.BROKEN:
            raise ConnectionLost(f"{self.what}: the session's link is closed")
        association = self._association
        try:
            while True:
                outgoing = association.data_to_send()
                if outgoing:
                    await link.send(outgoing)
                apdu = await link.receive(self.timeouts.read)
                result: Event | None = None
                for event in association.receive_apdu(apdu):
                    if isinstance(event, NotificationReceived):
                        self.notifications.append(event)
                    elif result is None:
                        result = event
                    else:
                        logger.info("%s: %s: extra %s ignored", self.what, what, type(event).__name__)
                if self._exhausted is not None:
                    raise self._exhausted
                if association.state not in _AWAITING:
                    if result is None:
                        raise ProtocolError(f"{self.what}: {what} ended without a result")
                    return result
                if result is not None:
                    # An error that did not end the exchange (e.g. a late answer to an abandoned request).
                    logger.info("%s: %s: %s while waiting; still waiting", self.what, what, type(result).__name__)
        except ReadTimeout:
            self._taint()
            if association.state is ClientState.AWAITING_RESPONSE:
                # Keep the association usable: a late answer will be refused by its invoke id.
                association.cancel_request()
            elif association.state in _AWAITING:
                self._break()
            raise
        except TransportError:
            self._break()
            association.reset()
            raise
        except BaseException:
            # Cancelled, or a local error: what was sent may still be answered on this link.
            self._taint()
            raise

    def _error(self, event: Event, what: str | _Request) -> DlmsError:
        """The typed error for an event that is not the awaited result."""
        self._taint()
        return self._error_of(event, what)

    def _error_of(self, event: Event, what: str | _Request) -> DlmsError:
        """``_error`` without tainting the session: for answers that leave the association sound."""
        prefix = f"{self.what}: {what}"
        if isinstance(event, ExceptionReceived):
            error = event.exception.to_error()
            return ServiceError(f"{prefix}: {error}", error.code, retryable=error.retryable)
        if isinstance(event, ConfirmedServiceErrorReceived):
            e = event.error
            return ServiceError(f"{prefix}: confirmed-service-error {e.service.name.lower()} "
                                f"{e.error.name.lower()} {e.value}", e.value)
        if isinstance(event, SecurityFailure | RemoteProtocolError):
            return event.error
        if isinstance(event, AssociationRejected):
            return self._rejected(event)
        return ProtocolError(f"{prefix}: unexpected {type(event).__name__}")

    def _rejected(self, event: AssociationRejected) -> DlmsError:
        diagnostic: str | int = event.diagnostic
        if event.result_source is ResultSource.ACSE_SERVICE_USER:
            with contextlib.suppress(ValueError):
                diagnostic = AcseServiceUserDiagnostic(event.diagnostic).name.lower().replace("_", "-")
            if event.diagnostic in _AUTHENTICATION_DIAGNOSTICS:
                return AuthenticationRefused(f"{self.what}: association rejected, authentication failed "
                                             f"({diagnostic}): wrong password or keys", event.diagnostic)
            # application-reference deciphering-error: the meter could not decipher our InitiateRequest.
            error = event.service_error
            if (error is not None and error.error is ServiceErrorChoice.APPLICATION_REFERENCE
                    and error.value == _DECIPHERING_ERROR):
                return AuthenticationRefused(f"{self.what}: association rejected, the meter could not decipher "
                                             f"the request: wrong keys, or an invocation counter it has seen",
                                             event.diagnostic)
        result = event.result.name.lower().replace("_", "-")
        hint = ""
        if event.result is AssociationResult.REJECTED_PERMANENT:
            hint = ": the meter is not commissioned (decommissioned) or does not accept this client"
        return AssociationRefused(f"{self.what}: association rejected ({result}, {diagnostic}){hint}",
                                  event.result, event.diagnostic, event.result_source)

    def _check_open(self) -> None:
        if self.state is SessionState.BROKEN:
            raise ConnectionLost(f"{self.what}: the link broke earlier in this session")
        if not self.state.usable or self._link is None:
            raise ConnectionLost(f"{self.what}: the session is not open")

    # --- services -----------------------------------------------------------------------------------------

    async def get_raw(self, class_id: int, obis: ObisCode, attribute: int, access: Access | None = None) -> bytes:
        """The attribute's encoded ``Data`` (blocks joined); a refusal raises ``ServiceError`` with its code."""
        what = _Request("GET", class_id, obis, attribute)
        async with self._lock:
            self._check_open()
            self._association.get(CosemAttributeDescriptor(class_id, obis, attribute), _selection(access))
            event = await self._exchange(what)
        if isinstance(event, GetResult):
            if isinstance(event.data, DataAccessResult):
                raise _access_error(f"{self.what}: {what}", event.data)
            return event.data
        raise self._error(event, what)

    async def get(self, class_id: int, obis: ObisCode, attribute: int, access: Access | None = None) -> Data:
        """The attribute's value, decoded (``DecodeError`` if the meter's bytes are not one ``Data``)."""
        return decode_data_exact(await self.get_raw(class_id, obis, attribute, access))

    def list_limit(self) -> int | None:
        """The most attributes one GET-with-list asks for: the least of the device type's limit, the limit
        learned from this meter before (``MeterTarget.max_get_with_list``) and one learned in this session."""
        known = [limit for limit in (self.target.device_type.limits.max_get_with_list,
                                     self.target.max_get_with_list, self.learned_list_limit) if limit]
        return min(known) if known else None

    async def get_many(self, items: Sequence[AttributeRef | tuple[int, ObisCode, int]]) -> list[Data | ServiceError]:
        """Several attributes: GET-with-list when the server granted it (at most ``list_limit()`` per
        request), else one GET each.

        A device that answers a list with fewer results than asked, or refuses the list as a whole,
        has a smaller limit than it was asked for: the limit is learned (the results it did give, else
        half the list; down to single GETs), the list asked again in parts, and the limit kept for the
        rest of the session (and by the caller for the meter). Each entry is the value or the
        ``ServiceError`` for that attribute alone; errors that end the whole exchange (transport,
        security) are raised.
        """
        refs = [item if isinstance(item, AttributeRef) else AttributeRef(*item) for item in items]
        out: list[Data | ServiceError] = []
        lessons: list[str] = []  # what each short or refused answer taught, for the one INFO line
        pos = 0
        try:
            while pos < len(refs):
                largest = self.list_limit()
                chunk = refs[pos:] if largest is None else refs[pos:pos + largest]
                values = await self._get_list(chunk)
                if isinstance(values, str):  # a smaller limit was learned: ask again in parts of that size
                    lessons.append(values)
                    continue
                out += values
                pos += len(chunk)
        finally:
            if lessons:
                # One line per limit learned, however many halvings it took: the operator wants the
                # meter and where it settled; the steps are at DEBUG.
                logger.info("%s: GET-with-list limit learned: at most %d attributes per request (%s)",
                            self.what, self.learned_list_limit, "; then ".join(lessons))
        return out

    def _learn_list_limit(self, asked: int, limit: int, why: str) -> str:
        """Keep the smaller limit; the lesson, said in a few words."""
        # Strictly below what was asked, so asking again always ends (at 1: single GETs).
        limit = max(1, min(limit, asked - 1))
        self.learned_list_limit = limit
        logger.debug("%s: GET-with-list of %d attributes %s: asking again in parts of %d", self.what, asked, why, limit)
        return f"a list of {asked} {why}"

    async def _get_list(self, refs: list[AttributeRef]) -> list[Data | ServiceError] | str:
        """The values of ``refs``, or the lesson when the answer set a smaller list limit (``_learn_list_limit``)."""
        if not refs:
            return []
        if not self._association.conformance & Conformance.MULTIPLE_REFERENCES or len(refs) == 1:
            out: list[Data | ServiceError] = []
            for ref in refs:
                try:
                    out.append(await self.get(*ref))
                except ServiceError as exc:
                    out.append(exc)
            return out
        what = f"GET-with-list of {len(refs)} attributes"
        async with self._lock:
            self._check_open()
            self._association.get_with_list([
                CosemAttributeDescriptorWithSelection(CosemAttributeDescriptor(r.class_id, r.obis, r.attribute),
                                                      _selection(r.access))
                for r in refs
            ])
            event = await self._exchange(what)
        if not isinstance(event, GetWithListResult):
            if isinstance(event, ExceptionReceived | ConfirmedServiceErrorReceived | GetResult):
                # Refused as a whole (an exception response, a confirmed service error, one plain result):
                # the list may be too long for the device; single GETs are still owed their chance. The
                # association stands, so the session is not tainted.
                error = str(self._error_of(event, what)).removeprefix(f"{self.what}: {what}: ")
                return self._learn_list_limit(len(refs), len(refs) // 2, f"refused ({error})")
            raise self._error(event, what)
        results = event.results
        if len(results) == 1 and isinstance(results[0], DataAccessResult):
            return self._learn_list_limit(len(refs), len(refs) // 2,
                                          f"refused as a whole ({results[0].name.lower().replace('_', '-')})")
        if not results:
            # No result at all is no answer to any attribute: the list refused, not a corrupted reply.
            return self._learn_list_limit(len(refs), len(refs) // 2, "answered with no result")
        if len(results) < len(refs):
            return self._learn_list_limit(len(refs), len(results), f"answered with {len(results)} results")
        if len(results) != len(refs):
            raise ProtocolError(f"{self.what}: {what}: {len(results)} results for {len(refs)} attributes")
        values: list[Data | ServiceError] = []
        for ref, item in zip(refs, results):
            if isinstance(item, DataAccessResult):
                values.append(_access_error(f"{self.what}: GET {_describe(ref.class_id, ref.obis, ref.attribute)}",
                                            item))
            else:
                values.append(decode_data_exact(item))
        return values

    async def set(self, class_id: int, obis: ObisCode, attribute: int, value: Data,
                  access: Access | None = None) -> None:
        """Write ``value``; a refusal raises ``ServiceError`` with the DataAccessResult."""
        what = _Request("SET", class_id, obis, attribute)
        async with self._lock:
            self._check_open()
            self._association.set(CosemAttributeDescriptor(class_id, obis, attribute), encode_data(value),
                                  _selection(access))
            event = await self._exchange(what)
        if not isinstance(event, SetResult):
            raise self._error(event, what)
        if event.result is not DataAccessResult.SUCCESS:
            raise _access_error(f"{self.what}: {what}", event.result)

    async def action(self, class_id: int, obis: ObisCode, method: int, parameters: Data | None = None) -> Data | None:
        """Invoke a method; returns its return data (None without); a refusal raises ``ServiceError``."""
        what = _Request("ACTION", class_id, obis, method, "method")
        async with self._lock:
            self._check_open()
            self._association.action(CosemMethodDescriptor(class_id, obis, method),
                                     None if parameters is None else encode_data(parameters))
            event = await self._exchange(what)
        if not isinstance(event, ActionResult):
            raise self._error(event, what)
        if event.result is not ActionResultCode.SUCCESS:
            raise ServiceError(f"{self.what}: {what}: {event.result.name.lower().replace('_', '-')}",
                               int(event.result), retryable=event.result is ActionResultCode.TEMPORARY_FAILURE)
        if isinstance(event.data, DataAccessResult):
            raise _access_error(f"{self.what}: {what} return data", event.data)
        return None if event.data is None else decode_data_exact(event.data)


def open_session(
    target: MeterTarget,
    counters: CounterReservation,
    *,
    timeouts: Timeouts | None = None,
    rng: Rng = os.urandom,
    hdlc_parameters: HdlcParameters = DEFAULT_PARAMETERS,
    max_receive_pdu_size: int = 0xFFFF,
    connect: LinkFactory | None = None,
    pool: LinkPool | None = None,
    gate: Gate | None = None,
) -> MeterSession:
    """A session to ``target``: ``async with open_session(...) as s`` connects and associates, and on exit
    releases and closes (also on error). The session is made here (a ``TargetError`` for unusable
    target data is raised before any wait).

    ``gate`` (``hes.slots.Gate``): first hold the device's lock and, through a DC, one of the DC's
    session slots (None: no waiting; only for a caller that alone talks to the device).
    Errors: ``ConnectTimeout``/``ConnectionLost``/``ReadTimeout`` (transport), ``SecurityError``
    (wrong keys, replay; ``AuthenticationRefused``), ``AssociationRefused`` (e.g. decommissioned),
    ``ServiceError`` (exception responses, refused attributes), ``ReservationExhausted``,
    ``TargetError`` (unusable target data). ``connect`` replaces the route's own link (an already
    open line, e.g. after an optical sign-on, or an in-process meter for the benchmark).

    ``pool`` (to a DC only, without ``connect``): take an idle connection to the DC from it, and give
    the connection back after a clean release (RLRE) of a session that met no error, timeout or
    cancellation; otherwise the connection is closed as without a pool. When the DC turns out to
    have closed a reused connection (``ConnectionLost`` before any byte came back), the session
    associates once more on a new connection, its invocation counters above the failed AARQ's: a
    DC closing idle connections is not "DC unreachable".
    """
    return MeterSession(target, counters, timeouts=timeouts, rng=rng, hdlc_parameters=hdlc_parameters,
                        max_receive_pdu_size=max_receive_pdu_size, connect=connect, pool=pool, gate=gate)
