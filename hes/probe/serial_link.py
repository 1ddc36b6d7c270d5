"""The optical head on a serial port: IEC 62056-21 mode E sign-on at 300 Bd 7E1, then HDLC at the agreed speed.

``OpticalLine(device)`` opens the port with pyserial; ``sign_on()`` runs the client side of
``protocols.iec62056_21.ModeEHandshake`` (``/?!``, the identification, ``ACK 2 Z 2``), switches
the port to 8N1 at the agreed rate and gives back the identification; ``open_hdlc(options)``
then sets up the HDLC link (``hes.transport.hdlc``) over the same port. After the link's DISC the
device is back at 300 Bd waiting for a sign-on, so each HDLC link starts with a sign-on.

Parity: a real UART does 7E1 itself (``parity="uart"``: the port is set to 7 bits, even parity).
A pty (the simulated optical port, ``simulators.optical``) has no UART and passes 8-bit bytes
whatever termios says, so there the parity bit is added and checked in software, as the
simulator expects (``parity="software"``). ``"auto"`` picks software for a pty (``/dev/pts/*``)
and the UART otherwise.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Literal

import serial

from hes.transport.hdlc import HdlcLink, HdlcOptions, open_hdlc
from hes.transport.tcp import Phase, SerialStream, map_errors
from protocols.errors import ConnectionLost, ReadTimeout, TransportError
from protocols.iec62056_21 import (
    HandshakeFailed,
    IdentificationMessage,
    ModeEHandshake,
    ModeERole,
    SwitchToHdlc,
)

__all__ = [
    "SIGN_ON_BAUD_RATE",
    "OpticalLine",
    "ParityMode",
    "SignOn",
    "SignOnFailed",
    "add_even_parity",
    "strip_even_parity",
]

SIGN_ON_BAUD_RATE = 300
ParityMode = Literal["auto", "uart", "software"]
_MAX_IDENTIFICATION_LINE = 128


class SignOnFailed(TransportError):
    """The device did not complete the mode E sign-on (silent, garbled, parity errors): a retry can help."""

    retryable = True


@dataclass(frozen=True, slots=True)
class SignOn:
    """What a sign-on gave: the device's identification and the speed agreed for HDLC."""

    identification: IdentificationMessage
    baud_rate: int

    @property
    def text(self) -> str:
        """The identification as the device sent it (without CR LF)."""
        return self.identification.encode().decode("ascii").strip()


def _odd(byte: int) -> bool:
    return bin(byte).count("1") % 2 == 1


def add_even_parity(data: bytes) -> bytes:
    """7-bit characters as a 7E1 line carries them: bit 7 set where it makes the count of ones even."""
    return bytes(b | 0x80 if _odd(b & 0x7F) else b & 0x7F for b in data)


def strip_even_parity(data: bytes) -> tuple[bytes, int | None]:
    """The 7-bit characters of 7E1 bytes, and the index of the first byte with odd parity (None: all good)."""
    out = bytearray()
    for index, byte in enumerate(data):
        if _odd(byte):
            return bytes(out), index
        out.append(byte & 0x7F)
    return bytes(out), None


def _software_parity(device: str, mode: ParityMode) -> bool:
    if mode != "auto":
        return mode == "software"
    # A pty slave has no UART behind it (see the module docstring).
    return os.path.realpath(device).startswith("/dev/pts/")


class OpticalLine:
    """One serial port with an optical head (or the simulated port's pty).

    ``timeout`` bounds each wait for the identification; ``retries`` is how many times a sign-on
    is sent again before ``SignOnFailed``; ``settle`` is the pause after the option select before
    the speed changes (the device switches once it has received the acknowledgement).
    """

    def __init__(self, device: str, *, parity: ParityMode = "auto", max_baud_rate: int = 19200,
                 timeout: float = 3.0, retries: int = 2, settle: float = 0.3, device_address: str = "") -> None:
        if retries < 0:
            raise ValueError(f"sign-on retries {retries} cannot be negative")
        self.device = device
        self.software_parity = _software_parity(device, parity)
        self.max_baud_rate = max_baud_rate
        self.timeout = timeout
        self.retries = retries
        self.settle = settle
        self.device_address = device_address
        self._port: Any = None
        self._stream: SerialStream | None = None
        #: Sign-ons sent again after a silent or garbled answer, for the operator's summary.
        self.sign_on_repeats = 0
        #: Every completed sign-on, oldest first (the identification says which device answered).
        self.sign_ons: list[SignOn] = []

    # --- the port ------------------------------------------------------------------------------------------

    async def _open(self) -> SerialStream:
        if self._stream is not None:
            return self._stream
        bits, parity = ((serial.EIGHTBITS, serial.PARITY_NONE) if self.software_parity
                        else (serial.SEVENBITS, serial.PARITY_EVEN))
        with map_errors(Phase.CONNECT, self.device, self.timeout):
            async with asyncio.timeout(self.timeout):
                # Opening a tty can block on modem lines: off the event loop.
                self._port = await asyncio.to_thread(
                    serial.Serial, self.device, SIGN_ON_BAUD_RATE, bytesize=bits, parity=parity,
                    stopbits=serial.STOPBITS_ONE, timeout=0, write_timeout=None)
        self._stream = SerialStream(self._port, self.device)
        return self._stream

    def _configure(self, baud_rate: int, *, sign_on: bool) -> None:
        port = self._port
        with map_errors(Phase.WRITE, self.device):
            if sign_on and not self.software_parity:
                port.bytesize, port.parity = serial.SEVENBITS, serial.PARITY_EVEN
            else:
                port.bytesize, port.parity = serial.EIGHTBITS, serial.PARITY_NONE
            port.baudrate = baud_rate

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        self._port = None
        if stream is not None:
            await stream.aclose()

    # --- mode E ---------------------------------------------------------------------------------------------

    def _encode(self, text: bytes) -> bytes:
        return add_even_parity(text) if self.software_parity else text

    async def _read_identification(self, stream: SerialStream, handshake: ModeEHandshake) -> SignOn | None:
        """Feed the answer to the handshake; the sign-on when it completed, None when the device stayed silent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        line = bytearray()
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                raw = await stream.read(256, left)
            except ReadTimeout:
                return None
            if not raw:
                raise ConnectionLost(f"{self.device}: the port closed during the sign-on")
            if self.software_parity:
                chars, bad = strip_even_parity(raw)
                if bad is not None:
                    raise SignOnFailed(f"{self.device}: parity error in the device's answer "
                                       f"(byte {raw[bad]:#04x}); is the head on a mode E device?")
            else:
                chars = bytes(b & 0x7F for b in raw)
            line += chars
            if len(line) > 4 * _MAX_IDENTIFICATION_LINE:
                raise SignOnFailed(f"{self.device}: no identification in {len(line)} characters of answer")
            for event in handshake.receive_data(chars):
                if isinstance(event, HandshakeFailed):
                    raise SignOnFailed(f"{self.device}: sign-on failed: {event.reason}")
                if isinstance(event, SwitchToHdlc):
                    start = line.find(b"/")
                    end = line.find(b"\r\n", start)
                    identification = IdentificationMessage.decode(bytes(line[start:end + 2]))
                    return SignOn(identification, event.baud_rate)

    async def sign_on(self) -> SignOn:
        """Mode E: sign-on (repeated up to ``retries`` times when unanswered), option select, switch to 8N1."""
        stream = await self._open()
        attempts = self.retries + 1
        for attempt in range(attempts):
            if attempt:
                self.sign_on_repeats += 1
            self._configure(SIGN_ON_BAUD_RATE, sign_on=True)
            with map_errors(Phase.WRITE, self.device):
                self._port.reset_input_buffer()
            handshake = ModeEHandshake(ModeERole.CLIENT, device_address=self.device_address,
                                       max_baud_rate=self.max_baud_rate)
            handshake.start()
            await stream.write(self._encode(handshake.data_to_send()))
            try:
                done = await self._read_identification(stream, handshake)
            except SignOnFailed:
                if attempt + 1 == attempts:
                    raise
                # Line noise from a head put on mid-way: wait for it to pass, then sign on again.
                await asyncio.sleep(min(self.timeout, 1.0))
                continue
            if done is None:
                continue
            await stream.write(self._encode(handshake.data_to_send()))
            with map_errors(Phase.WRITE, self.device):
                await asyncio.to_thread(self._port.flush)  # tcdrain: the acknowledgement is out at 300 Bd
            await asyncio.sleep(self.settle)
            self._configure(done.baud_rate, sign_on=False)
            self.sign_ons.append(done)
            return done
        raise SignOnFailed(f"{self.device}: no answer to the sign-on ({attempts} tries, {self.timeout:.3g} s each): "
                           "is the head on the device's optical port?")

    async def open_hdlc(self, options: HdlcOptions, *, timeout: float) -> HdlcLink:
        """Sign on, then SNRM/UA at the agreed speed. The link's ``aclose`` sends DISC and closes the port."""
        await self.sign_on()
        stream = self._stream
        assert stream is not None  # opened by sign_on
        self._stream = None  # the link owns the port from here on
        return await open_hdlc(stream, options, timeout=timeout)
