"""The optical port of a simulated meter or concentrator: IEC 62056-21 mode E, then HDLC, on a pty pair.

A field tool opens ``OpticalPort.client_path`` (the pty's slave side, in raw mode) the way it
opens a USB optical head. The port holds the master side and serves one logical device (a
meter, or a concentrator's management logical device):

1. Sign-on phase, 300 Bd 7E1: ``protocols.iec62056_21.ModeEHandshake`` in the server role
   answers ``/?[address]!`` with the identification and takes the option select ``ACK 2 Z 2``.
   A pty has no UART, so 7E1 is emulated byte by byte: each character carries its even parity
   bit in bit 7; the port checks and strips it on input and adds it to its own answers. A parity
   error or a garbled message fails that sign-on (logged, kept in ``failures``) and the port
   waits for the next one.
2. HDLC phase, 8N1 at the agreed rate: plain 8-bit bytes into ``protocols.hdlc.HdlcConnection``
   (server role, bound to the first frame addressed to ``server_sap``); each client SAP gets its
   own ``Session`` of the device. DISC, too much garbage, or ``inactivity_timeout`` without a
   byte ends the link and the port falls back to the sign-on phase, as a meter's optical port does
   when the head is taken away.

Line timing follows the field clock: the reaction time before an answer and the time characters
take at the current baud rate are slept as ``clock.wall_seconds``, so a test with a fast clock
pays almost nothing. Timeouts are field seconds too, but never shorter than ``min_wall_timeout``
wall seconds: the client on the other side of the pty runs on wall time (a thread, a process) and
must get a chance to answer however fast field time runs. With a frozen clock nothing times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from enum import Enum

from protocols.hdlc import (
    ApduReceived,
    Connected,
    Disconnected,
    FrameDecodeError,
    FrameDiscarded,
    HdlcAddress,
    HdlcConnection,
    HdlcParameters,
    HdlcState,
    Role,
)
from protocols.hdlc.frame import parse_frame
from protocols.iec62056_21 import (
    HandshakeFailed,
    IdentificationMessage,
    ModeEHandshake,
    ModeERole,
    ModeEState,
    SwitchToHdlc,
)
from simulators.clock import FieldClock
from simulators.endpoint import LogicalDevice, Session

__all__ = [
    "DEFAULT_OPTICAL_HDLC_PARAMETERS",
    "SIGN_ON_BAUD_RATE",
    "OpticalPort",
    "OpticalPortStateError",
    "PortPhase",
    "check_even_parity",
    "with_even_parity",
]

logger = logging.getLogger(__name__)

#: Every IEC 62056-21 exchange starts at 300 Bd.
SIGN_ON_BAUD_RATE = 300
#: What the optical port's HDLC station can do (optical heads are slow: short frames, window 1).
DEFAULT_OPTICAL_HDLC_PARAMETERS = HdlcParameters(max_info_tx=128, max_info_rx=128, window_tx=1, window_rx=1)
# Start bit + 7 data bits + parity + stop bit, and start + 8 data + stop: ten bit times per character either way.
_BITS_PER_CHAR = 10
_READ_CHUNK = 4096
# Bytes in front of the first frame for the served address before the port gives up on the line.
_MAX_UNBOUND = 8192
# Discarded HDLC frames in a row (no valid frame between) before the link counts as garbage.
_MAX_DISCARDS_IN_ROW = 16


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class OpticalPortStateError(RuntimeError):
    """``start``/``client_path`` used in the wrong order (a local mistake, not a line fault)."""


class PortPhase(Enum):
    SIGN_ON = "sign-on"  # 300 Bd 7E1, waiting for / answering IEC 62056-21 messages
    HDLC = "hdlc"  # 8N1 at the agreed rate, HDLC frames


def _odd_bits(byte: int) -> bool:
    return bin(byte).count("1") % 2 == 1


def with_even_parity(data: bytes) -> bytes:
    """7-bit characters as a 7E1 line carries them: bit 7 set where needed to make the bit count even."""
    if any(b > 0x7F for b in data):
        raise ValueError("7E1 characters are 7-bit; got a byte above 0x7F")
    return bytes(b | 0x80 if _odd_bits(b) else b for b in data)


def check_even_parity(data: bytes) -> tuple[bytes, int | None]:
    """The 7-bit characters of 7E1 bytes and the index of the first with bad parity (None when all are good).

    The characters are returned up to, not including, the first bad one.
    """
    out = bytearray()
    for index, byte in enumerate(data):
        if _odd_bits(byte):
            return bytes(out), index
        out.append(byte & 0x7F)
    return bytes(out), None


class OpticalPort:
    """IEC 62056-21 mode E and HDLC served on a pty pair for one logical device.

    ``identification`` is what the device answers a sign-on with (manufacturer, highest baud rate
    character, ``\\2`` for mode E, identification); ``device_address`` the address a sign-on may
    name (empty: the device answers only sign-ons without an address, or naming it).
    HDLC frames must be addressed to logical device ``server_sap`` and, when
    ``physical_address`` is given, that physical address (optical ports usually accept any).
    """

    def __init__(
        self,
        device: LogicalDevice,
        identification: IdentificationMessage,
        clock: FieldClock,
        *,
        device_address: str = "",
        server_sap: int = 1,
        physical_address: int | None = None,
        hdlc_parameters: HdlcParameters = DEFAULT_OPTICAL_HDLC_PARAMETERS,
        reaction_time: float = 0.2,
        handshake_timeout: float = 1.5,
        inactivity_timeout: float = 120.0,
        min_wall_timeout: float = 1.0,
    ) -> None:
        if not identification.supports_mode_e:
            raise ValueError("the identification must offer mode E (enhanced identification \\2)")
        self.device = device
        self.identification = identification
        self.clock = clock
        self.device_address = device_address
        self.server_sap = server_sap
        self.physical_address = physical_address
        self.hdlc_parameters = hdlc_parameters
        self.reaction_time = reaction_time
        self.handshake_timeout = handshake_timeout
        self.inactivity_timeout = inactivity_timeout
        self.min_wall_timeout = min_wall_timeout
        #: Why sign-ons or links failed, oldest first (one line each), for operators and tests.
        self.failures: list[str] = []
        #: Completed mode E handshakes (each one switched the line to HDLC).
        self.sign_ons = 0
        self.phase = PortPhase.SIGN_ON
        self.baud_rate = SIGN_ON_BAUD_RATE
        self._master: int | None = None
        self._slave: int | None = None
        self._path: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._handshake = self._new_handshake()
        self._partial = False  # a sign-on phase message has begun but not ended (no LF yet)
        self._hdlc: HdlcConnection | None = None
        self._address: HdlcAddress | None = None
        self._unbound = bytearray()
        self._discards = 0
        self._sessions: dict[int, Session] = {}

    # ----------------------------------------------------------------- life cycle

    @property
    def client_path(self) -> str:
        """The tty a client opens (e.g. with pyserial), available after ``start``."""
        if self._path is None:
            raise OpticalPortStateError("the optical port is not started")
        return self._path

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        if self._task is not None:
            raise OpticalPortStateError("the optical port is already started")
        master, slave = os.openpty()
        # Raw: no echo, no CR/LF translation, no signals, 8-bit clean; a client's pyserial does the same.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._path = os.ttyname(slave)
        self._incoming = asyncio.Queue()
        self._reset_to_sign_on()
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._on_readable)
        self._task = asyncio.create_task(self._run(), name=f"optical-port {self._path}")

    async def stop(self) -> None:
        """Stop serving, close every session and both ends of the pty."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        master, slave = self._master, self._slave
        self._master = self._slave = None
        if master is not None:
            asyncio.get_running_loop().remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)
        self._close_sessions()

    async def __aenter__(self) -> OpticalPort:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- reading and writing the pty

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            # The port holds the slave open, so this is not a client hanging up: the pty itself failed.
            logger.error("optical port %s: reading the pty failed (%s); port stops", self._path, exc)
            asyncio.get_running_loop().remove_reader(self._master)
            self._incoming.put_nowait(None)
            return
        if data:
            self._incoming.put_nowait(data)

    async def _write(self, data: bytes) -> None:
        # The characters take time on the line at the current speed (field time, scaled).
        await self._sleep_field(len(data) * _BITS_PER_CHAR / self.baud_rate)
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        while view:
            master = self._master
            if master is None:
                return
            try:
                written = os.write(master, view)
            except BlockingIOError:
                # The client is not reading and the pty's buffer is full: wait until it drains.
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_writer(master, _resolve, ready)
                try:
                    async with asyncio.timeout(self._wall_timeout(self.inactivity_timeout)):
                        await ready
                except TimeoutError:
                    self._fail("client stopped reading; answer dropped")
                    self._reset_to_sign_on()
                    return
                finally:
                    loop.remove_writer(master)
                continue
            view = view[written:]

    async def _sleep_field(self, field_seconds: float) -> None:
        wall = self.clock.wall_seconds(field_seconds)
        if wall > 0:
            await asyncio.sleep(wall)

    def _wall_timeout(self, field_seconds: float) -> float | None:
        if self.clock.scale == 0:
            return None
        return max(self.clock.wall_seconds(field_seconds), self.min_wall_timeout)

    async def _run(self) -> None:
        while True:
            # Mid-message or awaiting the option select, the handshake must finish soon; idle, never.
            waiting_for_message = self.phase is PortPhase.SIGN_ON and (
                self._partial or self._handshake.state is not ModeEState.IDLE)
            limit = self.handshake_timeout if waiting_for_message else self.inactivity_timeout
            try:
                async with asyncio.timeout(self._wall_timeout(limit)):
                    data = await self._incoming.get()
            except TimeoutError:
                self._on_timeout(waiting_for_message)
                continue
            if data is None:
                self._close_sessions()
                return
            try:
                await self._feed(data)
            except Exception:
                # A bug behind one exchange must cost that link only, never the port: logged in full.
                logger.exception("optical port %s: error serving the link; back to sign-on", self._path)
                self._fail("internal error while serving the link")
                self._reset_to_sign_on()

    def _on_timeout(self, waiting_for_message: bool) -> None:
        if self.phase is PortPhase.HDLC:
            logger.info("optical port %s: no byte for %.0f field s; back to sign-on", self._path,
                        self.inactivity_timeout)
            self._reset_to_sign_on()
        elif waiting_for_message:
            self._fail(f"sign-on not completed within {self.handshake_timeout} field s")
            self._reset_to_sign_on()

    # ----------------------------------------------------------------- phases

    def _new_handshake(self) -> ModeEHandshake:
        return ModeEHandshake(ModeERole.SERVER, device_address=self.device_address,
                              identification=self.identification)

    def _reset_to_sign_on(self) -> None:
        self._close_sessions()
        self.phase = PortPhase.SIGN_ON
        self.baud_rate = SIGN_ON_BAUD_RATE
        self._handshake = self._new_handshake()
        self._partial = False
        self._hdlc = None
        self._address = None
        self._unbound = bytearray()
        self._discards = 0

    def _fail(self, reason: str) -> None:
        logger.warning("optical port %s: %s", self._path, reason)
        self.failures.append(reason)

    async def _feed(self, data: bytes) -> None:
        if self.phase is PortPhase.SIGN_ON:
            data = await self._feed_sign_on(data)
            if not data:
                return
        await self._feed_hdlc(data)

    async def _feed_sign_on(self, data: bytes) -> bytes:
        """Handle 7E1 characters message by message; returns the bytes that follow the switch to HDLC."""
        pos = 0
        while pos < len(data):
            # One message at a time, so nothing that follows the option select is taken for 7E1.
            newline = data.find(b"\n", pos)
            end = len(data) if newline < 0 else newline + 1
            raw, pos = data[pos:end], end
            self._partial = newline < 0
            chars, bad = check_even_parity(raw)
            if bad is not None:
                self._fail(f"parity error in sign-on phase: byte {raw[bad]:#04x} has odd parity; message dropped")
                self._handshake = self._new_handshake()
                self._partial = False
                continue
            events = self._handshake.receive_data(chars)
            answer = self._handshake.data_to_send()
            if answer:
                await self._sleep_field(self.reaction_time)
                await self._write(with_even_parity(answer))
            for event in events:
                if isinstance(event, HandshakeFailed):
                    self._fail(f"sign-on failed: {event.reason}")
                    self._handshake = self._new_handshake()
                elif isinstance(event, SwitchToHdlc):
                    self.sign_ons += 1
                    self.phase = PortPhase.HDLC
                    self.baud_rate = event.baud_rate
                    logger.info("optical port %s: mode E agreed, HDLC at %d Bd", self._path, event.baud_rate)
                    return data[pos:]
        return b""

    def _bind(self) -> bool | None:
        """Find the first frame for the served address: True bound, None need more, False garbage."""
        buf = self._unbound
        pos = buf.find(0x7E)
        while pos >= 0:
            try:
                result = parse_frame(buf, pos)
            except FrameDecodeError:
                pos = buf.find(0x7E, pos + 1)
                continue
            if result is None:
                break
            frame, end = result
            address = frame.destination
            if address.upper == self.server_sap and (self.physical_address is None
                                                     or address.lower == self.physical_address):
                self._address = address
                self._hdlc = HdlcConnection(Role.SERVER, server_address=address, parameters=self.hdlc_parameters)
                return True
            logger.info("optical port %s: HDLC frame for unserved address %s ignored", self._path, address)
            pos = buf.find(0x7E, end - 1)  # the closing flag may open the next frame
        return False if len(buf) > _MAX_UNBOUND else None

    async def _feed_hdlc(self, data: bytes) -> None:
        if self._hdlc is None:
            self._unbound += data
            bound = self._bind()
            if bound is False:
                self._fail(f"{len(self._unbound)} bytes without an HDLC frame for this device; back to sign-on")
                self._reset_to_sign_on()
                return
            if bound is None:
                return
            data, self._unbound = bytes(self._unbound), bytearray()
        connection = self._hdlc
        assert connection is not None  # bound just above
        back_to_sign_on = False
        for event in connection.receive_data(data):
            if isinstance(event, FrameDiscarded):
                self._discards += 1
                logger.debug("optical port %s: HDLC frame discarded: %s", self._path, event.reason)
                if self._discards > _MAX_DISCARDS_IN_ROW:
                    self._fail(f"{self._discards} bad HDLC frames in a row; back to sign-on")
                    back_to_sign_on = True
                    break
                continue
            self._discards = 0
            if isinstance(event, Connected):
                # A new link means a new association: the old sessions end with the old link.
                self._close_sessions()
            elif isinstance(event, Disconnected):
                back_to_sign_on = True
            elif isinstance(event, ApduReceived):
                await self._serve(connection, event.apdu)
        out = connection.data_to_send()
        if out:
            await self._write(out)
        if back_to_sign_on:
            logger.info("optical port %s: HDLC link ended; back to sign-on", self._path)
            self._reset_to_sign_on()

    async def _serve(self, connection: HdlcConnection, apdu: bytes) -> None:
        # The client SAP that sent SNRM selects the association.
        client = connection.peer_address
        if client is None:
            return
        session = self._sessions.get(client.upper)
        if session is None:
            session = self.device.open_session(client.upper)
            if session is None:
                logger.info("optical port %s: device does not serve client SAP %d; APDU ignored",
                            self._path, client.upper)
                return
            self._sessions[client.upper] = session
        for answer in await session.handle(apdu):
            if connection.state is not HdlcState.CONNECTED:
                return
            connection.send_apdu(answer)

    def _close_sessions(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.close()
