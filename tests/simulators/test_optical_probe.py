"""A small optical-probe client for the tests (IEC 62056-21 sign-on with parity, then HDLC), and its own checks.

``OpticalProbe`` is blocking (pyserial), like a field tool on a USB optical head; async tests run it
with ``asyncio.to_thread`` while the port runs in the event loop. The real ``hes probe`` comes in a
later issue. A pty has no UART: it passes 8-bit bytes whatever the termios character size and
parity say (checked below; on some kernels changing them even fails with EINVAL), so the probe
keeps the tty at 8 bits, no parity, changes only the speed, and does 7E1 in software during the
sign-on phase: it adds and checks the even parity bit itself, as the UART would. After the switch
the bytes are plain 8N1.
"""

from __future__ import annotations

import os
import threading
import time
import tty

import pytest
import serial

from protocols.association import (
    Associated,
    ClientAssociation,
    ClientConfig,
    Event,
    GetResult,
    Released,
)
from protocols.axdr import Data, decode_data_exact
from protocols.errors import DlmsError
from protocols.hdlc import (
    ApduReceived,
    Disconnected,
    HdlcConnection,
    HdlcParameters,
    HdlcState,
    Role,
    client_address,
    server_address,
)
from protocols.iec62056_21 import (
    HandshakeFailed,
    IdentificationMessage,
    ModeEHandshake,
    ModeERole,
    SwitchToHdlc,
)
from protocols.obis import ObisCode
from protocols.xdlms.common import CosemAttributeDescriptor, DataAccessResult, SelectiveAccessDescriptor
from simulators.optical import check_even_parity, with_even_parity

__all__ = ["OpticalProbe", "OpticalProbeError"]

_PROBE_HDLC = HdlcParameters(max_info_tx=128, max_info_rx=128, window_tx=1, window_rx=1)


class OpticalProbeError(Exception):
    """The sign-on or the read over the optical port failed; the message is one clear line."""


class OpticalProbe:
    """Sign on to an optical port at ``path``, switch to HDLC, associate and read."""

    def __init__(self, path: str, *, timeout: float = 3.0) -> None:
        self.timeout = timeout
        self.port = serial.Serial(path, 300, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                                  stopbits=serial.STOPBITS_ONE, timeout=0.05)
        self.identification: IdentificationMessage | None = None
        self.baud_rate = 300
        self.link: HdlcConnection | None = None
        self.association: ClientAssociation | None = None
        self._events: list[Event] = []

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> OpticalProbe:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- sign-on phase (7E1)

    def send_raw(self, data: bytes) -> None:
        """Bytes exactly as given (no parity added): for garbled or wrong-parity tests."""
        self.port.write(data)
        self.port.flush()

    def _read_line(self) -> bytes:
        """One 7E1 message up to CR LF, parity checked and stripped."""
        deadline = time.monotonic() + self.timeout
        raw = bytearray()
        while not raw.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise OpticalProbeError(f"no answer to the sign-on within {self.timeout} s"
                                        + (f" (got {bytes(raw)!r})" if raw else ""))
            raw += self.port.read(1)
        chars, bad = check_even_parity(bytes(raw))
        if bad is not None:
            raise OpticalProbeError(f"parity error in the device's answer at byte {bad}")
        return chars

    def sign_on(self, device_address: str = "", *, max_baud_rate: int = 19200, parity: bool = True,
                settle: float = 0.05) -> IdentificationMessage:
        """``/?address!``, the identification, ``ACK 2 Z 2``, then the line at the agreed speed, 8N1.

        ``parity=False`` sends the sign-on as plain 8-bit ASCII (a probe set to 8N1 by mistake).
        """
        self.port.reset_input_buffer()
        handshake = ModeEHandshake(ModeERole.CLIENT, device_address=device_address, max_baud_rate=max_baud_rate)
        handshake.start()
        request = handshake.data_to_send()
        self.send_raw(with_even_parity(request) if parity else request)
        line = self._read_line()
        try:
            self.identification = IdentificationMessage.decode(line)
        except DlmsError as exc:
            raise OpticalProbeError(f"bad identification message {line!r}: {exc}") from exc
        for event in handshake.receive_data(line):
            if isinstance(event, HandshakeFailed):
                raise OpticalProbeError(f"sign-on failed: {event.reason}")
            if isinstance(event, SwitchToHdlc):
                self.send_raw(with_even_parity(handshake.data_to_send()))
                # The device switches once the option select is in; give it that moment (IEC 62056-21 tr).
                time.sleep(settle)
                self.port.baudrate = event.baud_rate
                self.baud_rate = event.baud_rate
                return self.identification
        raise OpticalProbeError("the identification did not complete the sign-on")

    # --------------------------------------------------------------- HDLC phase (8N1)

    def connect(self, config: ClientConfig, *, client_sap: int = 16, server_sap: int = 1,
                physical_address: int = 0x11, address_size: int = 4) -> None:
        """SNRM/UA, ready to associate."""
        physical = None if address_size == 1 else physical_address
        self.link = HdlcConnection(Role.CLIENT, server_address=server_address(server_sap, physical, address_size),
                                   client_address=client_address(client_sap), parameters=_PROBE_HDLC)
        self.association = ClientAssociation(config)
        self._events = []
        self.link.connect()
        self._write(self.link.data_to_send())
        deadline = time.monotonic() + self.timeout
        while self.link.state is not HdlcState.CONNECTED:
            self._feed(self._read(deadline, "UA"))
            if self.link.state is HdlcState.DISCONNECTED:
                raise OpticalProbeError("the device refused the HDLC link (DM)")

    def _write(self, data: bytes) -> None:
        if data:
            self.port.write(data)
            self.port.flush()

    def _read(self, deadline: float, what: str) -> bytes:
        while time.monotonic() < deadline:
            data = self.port.read(self.port.in_waiting or 1)
            if data:
                return bytes(data)
        raise OpticalProbeError(f"no {what} from the device within {self.timeout} s")

    def _feed(self, data: bytes) -> None:
        assert self.link is not None and self.association is not None
        for event in self.link.receive_data(data):
            if isinstance(event, ApduReceived):
                self._events += self.association.receive_apdu(event.apdu)
            elif isinstance(event, Disconnected) and self.link.state is not HdlcState.DISCONNECTED:
                raise OpticalProbeError(f"HDLC link down: {event.reason}")

    def _exchange(self, what: str) -> Event:
        link, association = self.link, self.association
        if link is None or association is None:
            raise OpticalProbeError("connect() first")
        deadline = time.monotonic() + self.timeout
        while True:
            # Datablocks need our GET-Request-Next, HDLC segments our RR: send whatever is queued.
            for apdu in association.data_to_send():
                link.send_apdu(apdu)
            self._write(link.data_to_send())
            if self._events:
                return self._events.pop(0)
            self._feed(self._read(deadline, what))

    def associate(self) -> Associated:
        assert self.association is not None
        self.association.associate()
        event = self._exchange("AARE")
        if not isinstance(event, Associated):
            raise OpticalProbeError(f"association failed: {event!r}")
        return event

    def get(self, class_id: int, obis: ObisCode, attribute: int,
            selection: SelectiveAccessDescriptor | None = None) -> Data:
        assert self.association is not None
        self.association.get(CosemAttributeDescriptor(class_id, obis, attribute), selection)
        event = self._exchange(f"GET response for {obis}")
        if not isinstance(event, GetResult):
            raise OpticalProbeError(f"GET {obis}: {event!r}")
        if isinstance(event.data, DataAccessResult):
            raise OpticalProbeError(f"GET {obis}: {event.data.name.lower()}")
        return decode_data_exact(event.data)

    def get_raw(self, class_id: int, obis: ObisCode, attribute: int,
                selection: SelectiveAccessDescriptor | None = None) -> bytes:
        """The encoded ``Data`` (for the profile fast path)."""
        assert self.association is not None
        self.association.get(CosemAttributeDescriptor(class_id, obis, attribute), selection)
        event = self._exchange(f"GET response for {obis}")
        if not isinstance(event, GetResult) or isinstance(event.data, DataAccessResult):
            raise OpticalProbeError(f"GET {obis}: {event!r}")
        return event.data

    def release(self) -> None:
        assert self.association is not None
        self.association.release()
        event = self._exchange("RLRE")
        if not isinstance(event, Released):
            raise OpticalProbeError(f"release failed: {event!r}")

    def disconnect(self) -> None:
        """DISC/UA: the port goes back to waiting for a sign-on at 300 Bd."""
        link = self.link
        if link is None or link.state is not HdlcState.CONNECTED:
            return
        link.disconnect()
        self._write(link.data_to_send())
        deadline = time.monotonic() + self.timeout
        while _state(link) is HdlcState.AWAITING_DISCONNECTION:
            self._feed(self._read(deadline, "UA to DISC"))
        self.port.baudrate = 300


def _state(link: HdlcConnection) -> HdlcState:
    """The link's state now (read through a call, so mypy does not keep an earlier narrowing)."""
    return link.state


# --------------------------------------------------------------------------------------- checks


def test_a_pty_ignores_termios_parity_so_the_probe_must_add_it() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        port = serial.Serial(os.ttyname(slave), 300, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN,
                             timeout=1.0)
        try:
            port.write(b"/?!\r\n")
            port.flush()
            # '/' (0x2F) has five one-bits: a real UART would send 0xAF; the pty passes 0x2F unchanged.
            assert os.read(master, 16) == b"/?!\r\n"
        finally:
            port.close()
    finally:
        os.close(master)
        os.close(slave)


def test_sign_on_to_a_silent_line_fails_with_one_clear_line() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with OpticalProbe(os.ttyname(slave), timeout=0.3) as probe, \
                pytest.raises(OpticalProbeError, match=r"^no answer to the sign-on within 0.3 s$"):
            probe.sign_on()
        assert os.read(master, 16) == with_even_parity(b"/?!\r\n")
    finally:
        os.close(master)
        os.close(slave)


def test_an_answer_with_bad_parity_is_refused() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with OpticalProbe(os.ttyname(slave), timeout=2.0) as probe:
            # No parity bits ('/' has odd parity as it is); written once the probe has sent its sign-on.
            answer = threading.Timer(0.2, os.write, (master, b"/HES5\\2SIM\r\n"))
            answer.start()
            with pytest.raises(OpticalProbeError, match="parity error in the device's answer at byte 0"):
                probe.sign_on()
            answer.join()
    finally:
        os.close(master)
        os.close(slave)
