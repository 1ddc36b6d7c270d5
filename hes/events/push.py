"""The push listener of ``hes run``: DataNotification and EventNotification from meters and DCs, stored as events.

Wrapper PDUs (IEC 62056-47) over TCP, one or many per connection, and over UDP on the same port, one or
more per datagram. ``PushIntake`` drops a HAN port's LLC header and reassembles general-block-transfer
streams per sender; each whole APDU then goes to ``PushHandler.handle``, whatever the transport:

1. The sender. A general-glo-ciphering APDU names it by its system title (the meter's, also when
   a DC forwards the push unchanged); it is deciphered with that meter's keys from the registry,
   must be authenticated (encryption-only, security control 0x20, only when its device type says
   ``push.accept_encryption_only``), and its invocation counter must be above the last one received from it
   for pushes (kept per meter under client SAP ``PUSH_COUNTER_SAP``: a replayed push is refused).
   A plain DataNotification names the meter by its first element (the logical device name: the
   serial). A plain EventNotification carries no identity: it is attributed by the sender's IP
   address when exactly one point-to-point meter has that address, or through the DC at that
   address by the source wPort (the meter's logical device there); otherwise it is refused.
   A plain push from a meter whose security is HLS-GMAC is refused: it could be forged.
2. The content. EventNotification on an event code object (1, 0.0.96.11.E.255, 2): one event of
   log 0.0.99.98.E.255. On the alarm register (0.0.97.98.0.255): one event per set bit (log
   0.0.97.98.0.255, code = bit). DataNotification: the alarm register word in its structure.
3. Storage: events stored once each (``hes.db.readings.store_events``) and their MQTT messages
   queued in the same transaction; with ``HES_DISCONNECT_ON_TAMPER``, a tamper event orders a
   disconnect (audited as ``policy:disconnect-on-tamper``).

Anything malformed, unknown or unauthentic is logged with the sender (address and wPort) and
dropped; the listener keeps serving. Database work runs in a thread so pushes never stall the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, select

from hes.daemon import DaemonContext
from hes.db.counters import counter_state, record_received
from hes.db.engine import StorageError, session_factory, storage_errors
from hes.db.models import Concentrator, Meter, utcnow
from hes.db.readings import EventRow, store_events
from hes.db.stored import correlation
from hes.errors import FAILURES, HesError
from hes.events.alarm_register import ALARM_REGISTER, decode_alarm_register
from hes.events.catalog import Catalog, EventDefinition, load_catalog
from hes.events.outbox import event_messages, install, queue
from hes.registry import Registry
from protocols.axdr import Data, DataTag
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError, DlmsError, SecurityError
from protocols.hdlc import LLC_COMMAND, LLC_RESPONSE
from protocols.obis import ObisCode
from protocols.security import CipheredApduTag, GeneralGloCiphering, decipher, read_security_header
from protocols.wrapper import ApduReceived, ConnectionClosed, WrapperConnection, WrapperError, WrapperFrame
from protocols.xdlms.common import XdlmsTag
from protocols.xdlms.gbt import GbtReceiver, decode_general_block_transfer
from protocols.xdlms.notification import DataNotification, EventNotificationRequest

__all__ = [
    "PUSH_COUNTER_SAP",
    "REPLAY_WINDOW",
    "PushComponent",
    "PushHandler",
    "PushIntake",
    "PushListener",
    "PushOutcome",
    "PushRejected",
    "component",
]

logger = logging.getLogger(__name__)

#: Pushes' invocation counters are tracked per meter under this client SAP (the IDIS push client).
PUSH_COUNTER_SAP = 0x66
_DATA_NOTIFICATION = 0x0F
_EVENT_NOTIFICATION = 0xC2
_MAX_PDU = 64 * 1024
#: How far below the highest invocation counter received a late push is still taken (once).
REPLAY_WINDOW = 64
#: Replay windows kept in memory (the meters that pushed most recently).
_WINDOWS_KEPT = 100_000
_IDLE_SECONDS = 30.0
#: How long a block-transferred push may wait for its next block, and how many senders may have one open.
_GBT_SECONDS = 30.0
_GBT_STREAMS = 10_000
#: What all open block streams may hold together, and UDP pushes in hand at once (a flood is dropped, logged).
_GBT_TOTAL = 16 * 1024 * 1024
_UDP_IN_HAND = 256
#: Who the audit trail names for orders of the disconnect-on-tamper policy.
_POLICY_USER = "policy:disconnect-on-tamper"


class PushRejected(HesError):
    """A push that cannot be attributed, authenticated or understood: logged with its sender and dropped."""


@dataclass(frozen=True, slots=True)
class _Sender:
    meter_id: int
    serial: str
    concentrator: str | None
    policy: str


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What became of one push: the meter, the events it carried (with their definitions), how many were new."""

    serial: str
    events: tuple[tuple[EventRow, EventDefinition], ...]
    stored: int
    ciphered: bool

    @property
    def tamper(self) -> bool:
        return any(definition.tamper for _, definition in self.events)


def _integer(data: Data, what: str) -> int:
    if data.tag in (DataTag.BOOLEAN, DataTag.FLOAT32, DataTag.FLOAT64) or not isinstance(data.value, int):
        raise PushRejected(f"{what}: expected an integer, got {DataTag(data.tag).name.lower()}")
    return int(data.value)


def _time(stamp: CosemDateTime | None, received: datetime) -> datetime:
    if stamp is None:
        return received
    moment = stamp.to_datetime()
    return received if moment is None else moment.astimezone(UTC)


class PushHandler:
    """Turns one pushed APDU into stored events (see the module docstring); no I/O but the database."""

    def __init__(self, registry: Registry, *, catalog: Catalog | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.registry = registry
        self.catalog = catalog or load_catalog()
        self.clock = clock
        self._sessions = session_factory(registry.engine)
        # Handled in worker threads: a meter's replay window is checked under one of a few striped locks,
        # and the most recent windows are kept in LRU order (bounded memory for a million meters).
        self._lock = threading.Lock()
        self._locks = tuple(threading.Lock() for _ in range(64))
        self._windows: collections.OrderedDict[str, tuple[int, int]] = collections.OrderedDict()

    # --- who sent it -------------------------------------------------------------------------------------

    def _meter(self, condition: ColumnElement[bool], what: str) -> _Sender:
        with storage_errors(self.registry.engine), self._sessions() as session:
            rows = list(session.execute(
                select(Meter.id, Meter.serial, Meter.concentrator_id, Meter.security_policy, Meter.state)
                .where(condition)
                .limit(2)))
        if not rows:
            raise PushRejected(f"unknown sender: no meter with {what}")
        if len(rows) > 1:
            raise PushRejected(f"ambiguous sender: several meters with {what}")
        ident, serial, dc, policy, state = rows[0]
        if state == "decommissioned":
            raise PushRejected(f"meter {serial} is decommissioned: its pushes are not taken")
        return _Sender(ident, serial, dc, policy)

    def _by_address(self, host: str, source_wport: int) -> _Sender:
        with storage_errors(self.registry.engine), self._sessions() as session:
            dcs = list(session.scalars(select(Concentrator.id).where(Concentrator.host == host)))
        if len(dcs) > 1:
            raise PushRejected(f"ambiguous sender: {len(dcs)} concentrators at {host}, and the push names no meter")
        if dcs:
            try:
                return self._meter((Meter.concentrator_id == dcs[0]) & (Meter.logical_device == source_wport),
                                   f"wPort {source_wport} at concentrator {dcs[0]}")
            except PushRejected:
                pass  # not one of that DC's meters: maybe a point-to-point meter at the same address
        return self._meter((Meter.host == host) & Meter.concentrator_id.is_(None),
                           f"address {host} (a plain EventNotification names no meter)")

    # --- the APDU ----------------------------------------------------------------------------------------

    def _open(self, apdu: bytes) -> tuple[_Sender, bytes, int]:
        envelope = GeneralGloCiphering.decode(apdu)
        title = bytes(envelope.system_title)
        sender = self._meter(Meter.system_title == title, f"system title {title.hex()}")
        target = self.registry.target_for(sender.serial)
        security = target.security
        header = read_security_header(envelope.content)
        control = header.security_control
        # Encrypted only (0x20): anyone on the path can flip bits unseen; only a device type that says its
        # meters push so (some do, on a trusted network) lets these in. Never plain-and-unauthenticated.
        if not control.authenticated and not (control.encrypted and target.device_type.push.accept_encryption_only):
            raise PushRejected(
                f"meter {sender.serial}: push not authenticated (security control 0x{int(control):02x}); "
                f"device type {target.device_type.name} does not accept encryption-only pushes "
                f"(push.accept_encryption_only)" if control.encrypted else
                f"meter {sender.serial}: push neither authenticated nor encrypted (security control "
                f"0x{int(control):02x})")
        if security.ek is None or (control.authenticated and security.ak is None):
            raise PushRejected(f"meter {sender.serial} has no keys to decipher its push")
        try:
            plain = decipher(envelope.content, system_title=title, encryption_key=security.ek,
                             authentication_key=security.ak or b"")
        except SecurityError as exc:
            raise PushRejected(
                f"meter {sender.serial}: push fails authentication ({exc}): wrong keys or forged") from None
        # The counter is checked (and kept) by ``handle`` once the content has proved itself: an encryption-only
        # push carries no tag, so a forged one deciphers to noise and must not move the replay floor.
        return sender, plain, header.invocation_counter

    def _check_replay(self, serial: str, counter: int) -> None:
        """Accept each invocation counter once: above the highest one received, or late but within the window.

        Pushes of one meter arrive on separate connections and may be taken out of order, so a
        counter a little below the highest one is accepted once, as anti-replay windows do: per
        meter, the highest counter and a bitmask of the ``REPLAY_WINDOW`` below it. The highest
        is also stored (``invocation_counters``); a meter this process has not seen lately (after a
        restart, or evicted from the ``_WINDOWS_KEPT`` most recent) starts strict: only counters
        above the stored one pass.
        """
        lock = self._locks[hash(serial) % len(self._locks)]
        with lock:  # one meter at a time; other meters' pushes go on meanwhile
            window = self._windows.pop(serial, None)
            if window is None:
                state = counter_state(self.registry.engine, serial, PUSH_COUNTER_SAP)
                last = None if state is None else state[1]
                window = (-1, 0) if last is None else (last, (1 << REPLAY_WINDOW) - 1)
            high, seen = window
            if counter > high:
                seen = ((seen << (counter - high)) | 1) & ((1 << REPLAY_WINDOW) - 1)
                high = counter
                record_received(self.registry.engine, serial, PUSH_COUNTER_SAP, counter)
            elif high - counter >= REPLAY_WINDOW or seen >> (high - counter) & 1:
                self._keep(serial, (high, seen))
                raise PushRejected(f"meter {serial}: replayed push (invocation counter {counter}, highest received "
                                   f"{high})")
            else:
                seen |= 1 << (high - counter)
            self._keep(serial, (high, seen))

    def _keep(self, serial: str, window: tuple[int, int]) -> None:
        with self._lock:
            self._windows[serial] = window
            while len(self._windows) > _WINDOWS_KEPT:
                self._windows.popitem(last=False)

    def handle(self, apdu: bytes, host: str, source_wport: int) -> PushOutcome:
        """Store what ``apdu`` reports; ``PushRejected``/``DecodeError``/``StorageError`` say why it was dropped."""
        if not apdu:
            raise PushRejected("empty APDU")
        received = self.clock()
        ciphered = apdu[0] == CipheredApduTag.GENERAL_GLO_CIPHERING
        sender: _Sender | None = None
        counter: int | None = None
        if ciphered:
            sender, apdu, counter = self._open(apdu)
        elif apdu[0] not in (_DATA_NOTIFICATION, _EVENT_NOTIFICATION):
            raise PushRejected(f"APDU 0x{apdu[0]:02x} is not a DataNotification, EventNotification or "
                               f"general-glo-ciphering")
        if not apdu or apdu[0] not in (_DATA_NOTIFICATION, _EVENT_NOTIFICATION):
            raise PushRejected("the deciphered APDU is not a DataNotification or EventNotification")
        found: list[tuple[ObisCode, int, datetime]] = []  # (log OBIS, code, time)
        if apdu[0] == _EVENT_NOTIFICATION:
            notification = EventNotificationRequest.decode(apdu)
            if sender is None:
                sender = self._by_address(host, source_wport)
            found = self._event_notification(notification, received)
        else:
            data = DataNotification.decode(apdu)
            sender, found = self._data_notification(data, sender, received)
        if not ciphered and sender.policy == "hls-gmac":
            raise PushRejected(f"meter {sender.serial} ciphers its traffic (HLS-GMAC) but this push is plain: "
                               f"refused as possibly forged")
        if counter is not None:
            self._check_replay(sender.serial, counter)
        events = tuple(self._grade(sender, log, code, when) for log, code, when in found)
        rows = [row for row, _ in events]
        with correlation(f"push:{sender.serial}"), storage_errors(self.registry.engine), \
                self.registry.engine.begin() as connection:
            stored = store_events(connection, rows)
            queue(connection, event_messages(connection, rows, source="push", catalog=self.catalog))
        return PushOutcome(sender.serial, events, stored, ciphered)

    def _grade(self, sender: _Sender, log: ObisCode, code: int, when: datetime) -> tuple[EventRow, EventDefinition]:
        definition = self.catalog.lookup_obis(str(log), code)
        return EventRow(sender.meter_id, str(log), code, when, definition.name), definition

    def _event_notification(self, notification: EventNotificationRequest,
                            received: datetime) -> list[tuple[ObisCode, int, datetime]]:
        d = notification.attribute_descriptor
        obis = d.instance_id
        when = _time(notification.time, received)
        value = notification.value()
        if obis == ALARM_REGISTER and d.attribute_id == 2:
            return self._alarm_events(_integer(value, "alarm register"), when)
        if d.class_id == 1 and d.attribute_id == 2 and (obis.a, obis.b, obis.c, obis.d, obis.f) == (0, 0, 96, 11, 255):
            log = ObisCode(0, 0, 99, 98, obis.e, 255)
            return [(log, _integer(value, f"event code of {obis}"), when)]
        raise PushRejected(f"EventNotification on {d.class_id}/{obis}/{d.attribute_id}: not an event code object "
                           f"or the alarm register")

    def _alarm_events(self, word: int, when: datetime) -> list[tuple[ObisCode, int, datetime]]:
        if not 0 <= word <= 0xFFFFFFFF:
            raise PushRejected(f"alarm register value {word} does not fit 32 bits")
        return [(ALARM_REGISTER, d.code, when) for d in decode_alarm_register(word, self.catalog)]

    def _data_notification(self, notification: DataNotification, sender: _Sender | None,
                           received: datetime) -> tuple[_Sender, list[tuple[ObisCode, int, datetime]]]:
        body = notification.value()
        if body.tag != DataTag.STRUCTURE or not isinstance(body.value, list | tuple) or len(body.value) < 2:
            raise PushRejected("DataNotification body is not a structure (logical device name, alarm register)")
        name, *rest = body.value
        if sender is None:
            if name.tag not in (DataTag.OCTET_STRING, DataTag.VISIBLE_STRING):
                raise PushRejected("DataNotification names no device (first element is not a string)")
            raw = name.value
            serial = raw.decode("ascii", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
            sender = self._meter(Meter.serial == serial.strip(), f"serial {serial.strip()!r}")
        words = [item for item in rest if item.tag == DataTag.DOUBLE_LONG_UNSIGNED]
        if not words:
            raise PushRejected("DataNotification carries no alarm register (double-long-unsigned)")
        if len(rest) > 2:
            # An IDIS alarm push is (logical device name, alarm register 1[, alarm register 2]). A longer one is
            # a meter-data push (a Landis+Gyr E450's energies and voltages): its first number is no alarm word.
            raise PushRejected(f"meter {sender.serial}: DataNotification of {len(body.value)} elements is a data "
                               "push, not an alarm push (logical device name, alarm register): not taken as events")
        return sender, self._alarm_events(_integer(words[0], "alarm register"), _time(notification.date_time,
                                                                                       received))


class PushIntake:
    """What a link delivers, made into the APDUs ``PushHandler.handle`` takes: the LLC header of a HAN port
    dropped, general-block-transfer streams reassembled per sender (``GbtReceiver``), within bounds.

    A sender is (address, wPort). Its stream is dropped, with a log line, when it stays incomplete for
    ``timeout`` seconds, grows past ``max_size`` bytes, or a new stream starts before it ended; at most
    ``max_streams`` senders are pending at once (the oldest goes). Pure but for ``clock``.
    """

    def __init__(self, *, timeout: float = _GBT_SECONDS, max_size: int = _MAX_PDU,
                 max_streams: int = _GBT_STREAMS, max_total: int = _GBT_TOTAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout, self.max_size, self.max_streams, self.clock = timeout, max_size, max_streams, clock
        self.max_total = max_total
        self._total = 0
        self._streams: collections.OrderedDict[tuple[str, int], tuple[GbtReceiver, float, int]] = \
            collections.OrderedDict()
        #: Streams dropped incomplete (timed out, too large, superseded, evicted).
        self.dropped = 0

    def pending(self) -> int:
        """Senders with a block stream open."""
        return len(self._streams)

    def last_block(self, host: str, wport: int) -> int | None:
        """The last block taken in sequence of the sender's open stream (None: it has none open)."""
        known = self._streams.get((host, wport))
        return None if known is None else known[0].last_received

    def _forget(self, key: tuple[str, int]) -> tuple[GbtReceiver, float, int] | None:
        known = self._streams.pop(key, None)
        if known is not None:
            self._total -= known[2]
        return known

    def _keep(self, key: tuple[str, int], receiver: GbtReceiver, size: int) -> None:
        self._forget(key)
        self._streams[key] = (receiver, self.clock(), size)
        self._total += size

    def _drop(self, key: tuple[str, int], why: str) -> None:
        known = self._forget(key)
        if known is None:
            return
        receiver, _, size = known
        self.dropped += 1
        logger.warning("push from %s wPort %d: general-block-transfer stream dropped at block %d (%d bytes): %s",
                       key[0], key[1], receiver.last_received, size, why)

    def expire(self) -> None:
        """Drop the streams that waited ``timeout`` seconds for their next block."""
        now = self.clock()
        for key, (_, last, _) in list(self._streams.items()):
            if now - last >= self.timeout:
                self._drop(key, f"no block for {self.timeout:g} s")

    def take(self, apdu: bytes, host: str, wport: int) -> bytes | None:
        """The whole APDU ``apdu`` completes, or None while a block stream is still open.

        ``DecodeError`` for a block that does not decode or comes out of sequence (the stream is dropped).
        """
        self.expire()
        if apdu[:3] in (LLC_RESPONSE, LLC_COMMAND):
            # HAN ports put the LLC header before the APDU; as a gateway request (0xE6) it would name no meter.
            apdu = apdu[3:]
        if not apdu or apdu[0] != XdlmsTag.GENERAL_BLOCK_TRANSFER:
            return apdu
        key = (host, wport)
        block = decode_general_block_transfer(apdu)
        known = self._forget(key)
        if known is not None and block.block_number == 1:
            self._keep(key, known[0], known[2])
            self._drop(key, "a new stream began at block 1")
            known = None
        if known is None:
            if block.block_number != 1:
                raise DecodeError(f"general-block-transfer block {block.block_number} without the blocks before it")
            receiver, size = GbtReceiver(), 0
        else:
            receiver, _, size = known
        if block.block_number <= receiver.last_received:
            self._keep(key, receiver, size)
            return None  # a block sent again: already taken
        expected = receiver.last_received + 1
        receiver.receive(block)  # the meter streams its push: nobody acknowledges
        if receiver.last_received != expected:
            self.dropped += 1
            raise DecodeError(f"general-block-transfer block {block.block_number} where {expected} was expected: "
                              "the stream is dropped")
        size += len(block.block_data)
        self._keep(key, receiver, size)
        if size > self.max_size:
            self._drop(key, f"larger than {self.max_size} bytes")
            return None
        if receiver.complete:
            self._forget(key)
            return receiver.apdu()
        while len(self._streams) > self.max_streams:
            self._drop(next(iter(self._streams)), f"more than {self.max_streams} streams pending")
        while self._total > self.max_total and len(self._streams) > 1:
            self._drop(next(iter(self._streams)), f"more than {self.max_total} bytes pending in all")
        return None


class _DatagramIntake(asyncio.DatagramProtocol):
    """Wrapper PDUs over UDP (IDIS pushes): one or more whole PDUs per datagram, each to the listener."""

    def __init__(self, listener: PushListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        host, where = str(addr[0]), f"{addr[0]}:{addr[1]} (UDP)"
        pos = 0
        while pos < len(data):
            try:
                frame, end = WrapperFrame.decode(data, pos)
            except DlmsError as exc:
                self.listener._drop(where, f"not a wrapper datagram: {exc}")
                return
            pos = end
            if len(self.listener._tasks) >= _UDP_IN_HAND:
                self.listener._drop(where, f"{_UDP_IN_HAND} pushes already in hand: datagram dropped")
                continue
            task = asyncio.get_running_loop().create_task(
                self.listener._pdu(frame.apdu, host, frame.source, f"{where} wPort {frame.source}"),
                name=f"push-udp-{where}")
            self.listener._tasks.add(task)
            task.add_done_callback(self.listener._tasks.discard)

    def error_received(self, exc: Exception) -> None:
        logger.info("push listener (UDP): %s", exc)


@dataclass
class PushListener:
    """The push intake of ``hes run`` in front of a ``PushHandler``: wrapper PDUs over TCP and over UDP on the
    same address and port, through one ``PushIntake``; counts what it took and dropped."""

    handler: PushHandler
    host: str = "127.0.0.1"
    port: int = 0
    idle_timeout: float = _IDLE_SECONDS
    on_outcome: Callable[[PushOutcome], Coroutine[Any, Any, None]] | None = None
    udp: bool = True
    accepted: int = 0
    rejected: int = 0
    intake: PushIntake = field(default_factory=PushIntake)
    _server: asyncio.Server | None = field(default=None, repr=False)
    _udp: asyncio.DatagramTransport | None = field(default=None, repr=False)
    _sweeper: asyncio.Task[None] | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the push listener is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        if self.udp:
            # The same port number for UDP (its own namespace): meters are configured with one address.
            try:
                self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: _DatagramIntake(self), local_addr=(self.host, self.bound_port))
            except OSError:
                await self.stop()
                raise
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="push-gbt-sweep")
        logger.info("push listener on %s:%d (TCP%s)", self.host, self.bound_port, " and UDP" if self.udp else "")

    async def _sweep(self) -> None:
        """Drop block streams whose sender went quiet, also when no other push comes to trigger it."""
        while True:
            await asyncio.sleep(max(0.05, min(5.0, self.intake.timeout / 4)))
            self.intake.expire()

    async def stop(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        udp, self._udp = self._udp, None
        if udp is not None:
            udp.close()
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _drop(self, sender: str, reason: str) -> None:
        self.rejected += 1
        logger.warning("push from %s dropped: %s", sender, reason)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        where = f"{host}:{peer[1]}" if isinstance(peer, tuple) else host
        connection = WrapperConnection(1, 1)
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(_MAX_PDU), self.idle_timeout)
                except TimeoutError:
                    self._drop(where, f"silent for {self.idle_timeout:g} s; connection closed")
                    return
                for event in connection.receive_data(data):
                    if isinstance(event, ApduReceived):
                        await self._pdu(event.apdu, host, event.source, f"{where} wPort {event.source}")
                    elif isinstance(event, WrapperError):
                        self._drop(where, f"not a wrapper stream: {event.reason} (at byte {event.offset})")
                        return
                    elif isinstance(event, ConnectionClosed):
                        if event.pending:
                            self._drop(where, f"closed in the middle of a wrapper PDU ({event.pending} bytes)")
                        return
                if not data:
                    return
        except (ConnectionError, OSError) as exc:
            logger.info("push connection from %s lost: %s", where, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: never let it take the listener down
            logger.exception("push from %s: unexpected error %s: %s", where, type(exc).__name__, exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _pdu(self, apdu: bytes, host: str, wport: int, sender: str) -> None:
        """One wrapper PDU's APDU, from TCP or UDP: through the intake (LLC, blocks), then the handler."""
        try:
            whole = self.intake.take(apdu, host, wport)
        except DlmsError as exc:
            self._drop(sender, f"{exc} (APDU {apdu[:16].hex()}{'...' if len(apdu) > 16 else ''})")
            return
        if whole is None:
            return  # a block of a stream still open
        await self._handle(whole, host, wport, sender)

    async def _handle(self, apdu: bytes, host: str, wport: int, sender: str) -> None:
        try:
            outcome = await asyncio.to_thread(self.handler.handle, apdu, host, wport)
        except StorageError as exc:
            self._drop(sender, f"not stored: {exc}")
            return
        except FAILURES as exc:
            head = f" (APDU {apdu[:16].hex()}{'...' if len(apdu) > 16 else ''})" if apdu else ""
            self._drop(sender, f"{exc}{head}")
            return
        except (ValueError, IndexError) as exc:  # a decoder that let one through: still a bad push
            self._drop(sender, f"malformed: {type(exc).__name__}: {exc}")
            return
        self.accepted += 1
        names = ", ".join(f"{d.name} ({d.criticality.label})" for _, d in outcome.events) or "nothing"
        logger.info("push from %s: meter %s: %s; %d new", sender, outcome.serial, names, outcome.stored)
        if self.on_outcome is not None:
            task = asyncio.create_task(self.on_outcome(outcome), name=f"push-outcome-{outcome.serial}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def tamper_policy(registry: Registry) -> Callable[[PushOutcome], Coroutine[Any, Any, None]]:
    """The disconnect-on-tamper policy: a pushed tamper event orders the meter's disconnection."""
    from hes.commands import Commands

    async def act(outcome: PushOutcome) -> None:
        if not outcome.tamper:
            return
        names = ", ".join(d.name for _, d in outcome.events if d.tamper)
        logger.warning("meter %s: %s; disconnect-on-tamper policy disconnects it", outcome.serial, names)
        result = await Commands(registry, who=_POLICY_USER).disconnect(outcome.serial)
        logger.warning("meter %s: policy disconnect %s %s", outcome.serial, result.order_number, result.state)

    return act


class PushComponent:
    """``hes run``'s push listener: listens on ``HES_PUSH_LISTEN`` until stopped."""

    name = "push-listener"

    async def run(self, context: DaemonContext) -> None:
        install()
        settings = context.settings
        catalog = load_catalog(settings.event_table)
        listener = PushListener(
            PushHandler(context.registry, catalog=catalog), settings.push_host, settings.push_port,
            udp=settings.push_udp,
            on_outcome=tamper_policy(context.registry) if settings.disconnect_on_tamper else None,
        )
        await listener.start()
        try:
            await context.stop.wait()
        finally:
            await listener.stop()


def component() -> PushComponent:
    return PushComponent()
