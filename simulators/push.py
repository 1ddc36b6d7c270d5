"""Pushes from the simulated field: meters send EventNotification and DataNotification to a push destination.

A ``PushSender`` hooks every meter of a ``Fleet`` (``SimulatedMeter.on_event``): when a meter
logs an event whose code is in ``codes`` (tamper, power and relay events by default), it pushes an
EventNotificationRequest for the event code object of that log (1, 0.0.96.11.E.255, attribute 2:
the code as the meter's make numbers and types it: make A's IDIS code as unsigned, make B's vendor
code as long-unsigned; with the event's time). ``push_alarm`` sends a DataNotification carrying
the IDIS alarm register (structure of the logical device name, i.e. the serial as an octet string,
and the 32-bit register 0.0.97.98.0.255), as an IDIS alarm push does.

Transport: a new TCP connection to the destination per push, one wrapper PDU, closed, as a
meter's modem dials up. A point-to-point meter sends from wPort 1 (its management logical
device); a meter behind a DC has its push forwarded by the DC, from the meter's wPort at the DC,
unchanged (end-to-end security). A meter with HLS-GMAC ciphers its pushes as
general-glo-ciphering (its system title, EK/AK, security control 0x30, authenticated and
encrypted) with its own invocation counter kept per (serial, ``PUSH_COUNTER_SAP``); other meters
push in the clear. ``send_raw`` sends any bytes (tests of malformed pushes). Other ways real meters push
are options: over UDP (a datagram per wrapper PDU), as general-block-transfer blocks, behind a HAN
port's LLC header, ciphered encryption-only (security control 0x20).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from protocols.axdr import Data, encode_data
from protocols.cosem_datetime import CosemDateTime
from protocols.hdlc import LLC_RESPONSE
from protocols.obis import ObisCode
from protocols.security import GeneralGloCiphering, SecurityControlField, cipher
from protocols.wrapper import WrapperFrame
from protocols.xdlms.common import CosemAttributeDescriptor, LongInvokeIdAndPriority
from protocols.xdlms.gbt import split_into_blocks
from protocols.xdlms.notification import DataNotification, EventNotificationRequest
from simulators.counters import Counters
from simulators.energy import LOCAL_DEVIATION
from simulators.events import EventCode, MeterEvent
from simulators.fleet import Fleet
from simulators.meter import SimulatedMeter

__all__ = [
    "ALARM_REGISTER",
    "DEFAULT_PUSHED_CODES",
    "PUSH_COUNTER_SAP",
    "PUSH_DESTINATION_WPORT",
    "PushSender",
    "alarm_notification",
    "event_notification",
]

logger = logging.getLogger(__name__)

#: The IDIS alarm register 1 (IC 1), pushed with the logical device name.
ALARM_REGISTER = ObisCode(0, 0, 97, 98, 0, 255)
#: The push's destination wPort (the head-end's push client).
PUSH_DESTINATION_WPORT = 1
#: The key under which a meter's push invocation counter is kept in its counter store.
PUSH_COUNTER_SAP = 0x66
#: Events a meter pushes the moment it logs them.
DEFAULT_PUSHED_CODES = frozenset({
    EventCode.POWER_DOWN, EventCode.POWER_UP,
    EventCode.TERMINAL_COVER_REMOVED, EventCode.METER_COVER_REMOVED,
    EventCode.DECRYPTION_OR_AUTHENTICATION_FAILURE, EventCode.REPLAY_ATTACK,
    EventCode.REMOTE_DISCONNECTION, EventCode.REMOTE_CONNECTION,
    EventCode.MANUAL_DISCONNECTION, EventCode.LOCAL_DISCONNECTION,
})
_SECURED = SecurityControlField(authenticated=True, encrypted=True)
_ENCRYPTED_ONLY = SecurityControlField(authenticated=False, encrypted=True)


def event_notification(event: MeterEvent, value: Data | None = None) -> bytes:
    """The plain EventNotificationRequest for one event (the code object of its log, with its time).

    ``value`` is the code as the meter's make carries it (``SimulatedMeter.event_code_value``); by
    default the IDIS code as unsigned, what make A sends.
    """
    return EventNotificationRequest(
        CosemAttributeDescriptor(1, event.log.code_obis, 2),
        encode_data(Data.unsigned(int(event.code)) if value is None else value),
        CosemDateTime.from_datetime(event.when, deviation=LOCAL_DEVIATION),
    ).encode()


def alarm_notification(serial: str, word: int, when: datetime, invoke_id: int = 1) -> bytes:
    """The plain DataNotification of an IDIS alarm push: (logical device name, alarm register)."""
    body = Data.structure((Data.octet_string(serial.encode("ascii")), Data.double_long_unsigned(word)))
    return DataNotification(
        LongInvokeIdAndPriority(invoke_id & 0xFFFFFF),
        CosemDateTime.from_datetime(when, deviation=LOCAL_DEVIATION),
        encode_data(body),
    ).encode()


class PushSender:
    """Pushes of one fleet to ``host:port`` (see the module docstring); ``attach`` hooks the meters."""

    def __init__(self, fleet: Fleet, host: str, port: int, *, codes: Iterable[EventCode] = DEFAULT_PUSHED_CODES,
                 destination_wport: int = PUSH_DESTINATION_WPORT, transport: Literal["tcp", "udp"] = "tcp",
                 block_size: int | None = None, llc: bool = False, encryption_only: bool = False) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"push transport {transport!r}: tcp or udp")
        if block_size is not None and block_size < 1:
            raise ValueError(f"GBT block size {block_size} must be positive")
        self.fleet = fleet
        self.host = host
        self.port = port
        self.codes = frozenset(codes)
        self.destination_wport = destination_wport
        #: How pushes travel: ``tcp`` (a connection per push) or ``udp`` (a datagram per wrapper PDU, IDIS);
        #: ``block_size`` cuts each APDU into general-block-transfer blocks of that many bytes, one wrapper PDU
        #: each (as the Landis+Gyr E450 pushes); ``llc`` puts a HAN port's LLC header (E6 E7 00) before each
        #: APDU; ``encryption_only`` ciphers with security control 0x20 (encrypted, not authenticated).
        self.transport = transport
        self.block_size = block_size
        self.llc = llc
        self.security_control = _ENCRYPTED_ONLY if encryption_only else _SECURED
        #: Pushes sent, and pushes that could not be delivered (destination down).
        self.sent = 0
        self.failed = 0
        self._pending: set[asyncio.Task[None]] = set()
        self._invoke_id = 0

    # --- hooks ---------------------------------------------------------------------------------------

    def attach(self) -> None:
        """Push from every meter of the fleet, and every meter that joins it, when it logs one of ``codes``."""
        self.fleet.meter_event_hook = self._hook
        for serial in self.fleet.meters():
            self.fleet.meter(serial).on_event = self._hook

    def detach(self) -> None:
        if self.fleet.meter_event_hook == self._hook:
            self.fleet.meter_event_hook = None
        for serial in self.fleet.meters():
            meter = self.fleet.meter(serial)
            if meter.on_event == self._hook:
                meter.on_event = None

    def _hook(self, meter: SimulatedMeter, event: MeterEvent) -> None:
        if event.code not in self.codes:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # logged outside the field's loop (a test poking the model): nothing to send with
            return
        apdu = self._ciphered(meter, event_notification(event, meter.event_code_value(event.code)))
        task = loop.create_task(self._deliver(meter.serial, apdu),
                                name=f"push-{meter.serial}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait until every push scheduled so far was sent (or failed)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # --- what a test triggers --------------------------------------------------------------------------

    async def tamper(self, serial: str, code: EventCode = EventCode.METER_COVER_REMOVED) -> MeterEvent:
        """The meter detects tampering (meter cover removed by default), logs it and pushes it."""
        event = self.fleet.meter(serial).record_event(code)
        await self.drain()
        return event

    async def push_event(self, serial: str, event: MeterEvent) -> bytes:
        """Push ``event`` from meter ``serial`` now (without logging it); returns the APDU sent."""
        meter = self.fleet.meter(serial)
        apdu = self._ciphered(meter, event_notification(event, meter.event_code_value(event.code)))
        await self._deliver(serial, apdu)
        return apdu

    async def push_alarm(self, serial: str, word: int) -> bytes:
        """Push the alarm register value ``word`` from meter ``serial`` (IDIS alarm push); returns the APDU."""
        meter = self.fleet.meter(serial)
        self._invoke_id += 1
        apdu = self._ciphered(meter, alarm_notification(serial, word, meter.clock.now(), self._invoke_id))
        await self._deliver(serial, apdu)
        return apdu

    async def send_raw(self, data: bytes, *, wrapped: bool = True, source_wport: int = 1) -> None:
        """Send ``data`` as one push (in a wrapper PDU unless ``wrapped`` is false): malformed pushes for tests."""
        payload = WrapperFrame(source_wport, self.destination_wport, data).encode() if wrapped else data
        await self._send(payload)

    # --- sending ---------------------------------------------------------------------------------------

    def _ciphered(self, meter: SimulatedMeter, apdu: bytes) -> bytes:
        config = meter.config
        if config.policy != "hls-gmac" or config.system_title is None or config.ek is None or config.ak is None:
            return apdu
        stored = meter.counters.get(config.serial, PUSH_COUNTER_SAP)
        counter = stored.server_next
        meter.counters.put(config.serial, PUSH_COUNTER_SAP, Counters(counter + 1, stored.client_last))
        content = cipher(apdu, security_control=self.security_control, system_title=config.system_title,
                         invocation_counter=counter, encryption_key=config.ek, authentication_key=config.ak)
        return GeneralGloCiphering(config.system_title, content).encode()

    def _source_wport(self, serial: str) -> int:
        for dc in self.fleet.concentrators.values():
            entry = dc.by_serial.get(serial)
            if entry is not None:
                return entry.wport  # forwarded by the DC from the meter's logical device there
        return 1

    def frames(self, serial: str, apdu: bytes) -> list[bytes]:
        """The wrapper PDUs that carry ``apdu`` from meter ``serial`` (blocks and LLC header as configured)."""
        pieces = [apdu] if self.block_size is None else [
            block.encode() for block in split_into_blocks(apdu, self.block_size, window=63, receive_window=0)]
        if self.llc:
            pieces = [LLC_RESPONSE + piece for piece in pieces]
        source = self._source_wport(serial)
        return [WrapperFrame(source, self.destination_wport, piece).encode() for piece in pieces]

    async def _deliver(self, serial: str, apdu: bytes) -> None:
        frames = self.frames(serial, apdu)
        if self.transport == "udp":
            for frame in frames:
                await self.send_datagram(frame)
            return
        await self._send(b"".join(frames))

    async def send_datagram(self, payload: bytes) -> None:
        """Send ``payload`` as one UDP datagram to the destination (nothing comes back: UDP pushes are unconfirmed)."""
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                               remote_addr=(self.host, self.port))
        except OSError as exc:
            self.failed += 1
            logger.warning("push to %s:%d (UDP) not sent: %s", self.host, self.port, exc)
            return
        try:
            transport.sendto(payload)
        finally:
            transport.close()
        self.sent += 1

    async def _send(self, payload: bytes) -> None:
        try:
            async with asyncio.timeout(5.0):
                _reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(payload)
                    await writer.drain()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except (OSError, TimeoutError) as exc:
            self.failed += 1
            logger.warning("push to %s:%d not delivered: %s", self.host, self.port, exc)
            return
        self.sent += 1
