"""The HDLC driver: ``protocols.hdlc.HdlcConnection`` (client role) over a ``Stream``, with SNRM/RR/DISC retries.

HDLC over TCP (a meter's modem or router) and over a serial line (RS-485, optical head after the
IEC 62056-21 sign-on) are the same driver over a different ``Stream``. The connection object
answers link frames itself (RR for segments); this driver moves bytes, keeps the read deadline,
and when the deadline passes repeats what was lost: SNRM while connecting, an RR poll (the server
then repeats its unacknowledged I-frames, or we repeat ours) while awaiting an answer, DISC while
closing, each a bounded number of times. Frames failing their checksum are dropped by the
connection and counted here (``discarded``); the poll is what recovers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from hes.transport.tcp import DEFAULT_READ_SIZE, Stream
from hes.transport.wrapper import remaining
from protocols.errors import ConnectionLost, ReadTimeout, TransportError
from protocols.hdlc import (
    ApduReceived,
    Connected,
    Disconnected,
    FrameDiscarded,
    FrameRejected,
    HdlcConnection,
    HdlcParameters,
    HdlcState,
    Role,
    client_address,
    server_address,
)

__all__ = ["DEFAULT_PARAMETERS", "HdlcLink", "HdlcOptions", "open_hdlc"]

logger = logging.getLogger(__name__)

#: What the head-end proposes: 512-byte information fields (a 2.5 kB profile in five frames), window 1
#: (what most meters do; a larger one is only taken when the meter offers it too).
DEFAULT_PARAMETERS = HdlcParameters(max_info_tx=512, max_info_rx=512, window_tx=1, window_rx=1)


@dataclass(frozen=True, slots=True)
class HdlcOptions:
    """Addresses and link settings of one HDLC link.

    ``server_physical`` None means a one-byte server address (logical device only), unless
    ``address_size`` says otherwise. ``retries`` bounds the SNRM repeats, the RR polls per
    answer, and the DISC repeats. ``disc_timeout`` bounds each wait for the DISC's answer.
    """

    client_sap: int = 1
    server_logical: int = 1
    server_physical: int | None = None
    address_size: int | None = None
    parameters: HdlcParameters = field(default=DEFAULT_PARAMETERS)
    retries: int = 3
    disc_timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"HDLC retries {self.retries} cannot be negative")
        if self.address_size not in (None, 1, 2, 4):
            raise ValueError(f"HDLC server address size {self.address_size}: 1, 2 or 4")


class HdlcLink:
    """One HDLC link (client, primary station) to one server address over one stream."""

    def __init__(self, stream: Stream, options: HdlcOptions, *, read_size: int = DEFAULT_READ_SIZE) -> None:
        size = options.address_size or (1 if options.server_physical is None else 4)
        physical = options.server_physical if size != 1 else None
        self._stream = stream
        self._options = options
        self._read_size = read_size
        self._connection = HdlcConnection(
            Role.CLIENT,
            server_address=server_address(options.server_logical, physical, size),
            client_address=client_address(options.client_sap),
            parameters=options.parameters,
        )
        self._apdus: deque[bytes] = deque()
        self._broken: str | None = None
        self._closing = False  # our own DISC: its Disconnected is the expected end, not a failure
        #: Frames dropped by the connection (bad HCS/FCS, truncated, out of sequence, not for us).
        self.discarded = 0
        #: SNRM, RR or DISC repeated after a read timed out.
        self.repeats = 0
        #: What was odd in the server's UA parameters (read leniently; empty when they were sound).
        self.parameter_notes: tuple[str, ...] = ()

    @property
    def peer(self) -> str:
        return f"{self._stream.peer} HDLC {self._connection.server_address}"

    @property
    def state(self) -> HdlcState:
        return self._connection.state

    @property
    def parameters(self) -> HdlcParameters:
        """The negotiated parameters (after ``connect``)."""
        return self._connection.parameters

    # --- bytes in and out ----------------------------------------------------------------------

    async def _flush(self) -> None:
        await self._stream.write(self._connection.data_to_send())

    async def _read_some(self, deadline: float | None, timeout: float | None) -> None:
        """Read once and feed the connection; raise when the link broke, ``ReadTimeout`` past the deadline."""
        if self._broken is not None:
            raise ConnectionLost(f"{self.peer}: {self._broken}")
        left = remaining(deadline)
        if left == 0.0:
            raise ReadTimeout(f"{self.peer} did not answer within {timeout:.3g} s")
        data = await self._stream.read(self._read_size, left)
        events = self._connection.receive_data(data)
        if not data and self._broken is None:
            self._broken = "the peer closed the connection"
        for event in events:
            if isinstance(event, ApduReceived):
                self._apdus.append(event.apdu)
            elif isinstance(event, Connected) and event.notes:
                # The link is up on a UA (or SNRM) read leniently: say what was odd, once per link.
                self.parameter_notes = event.notes
                logger.info("%s: HDLC parameters read leniently: %s", self.peer, "; ".join(event.notes))
            elif isinstance(event, FrameDiscarded):
                self.discarded += 1
                logger.debug("%s: frame discarded: %s", self.peer, event.reason)
            elif isinstance(event, Disconnected) and not self._closing:
                self._broken = f"HDLC link down: {event.reason}"
            elif isinstance(event, FrameRejected):
                self._broken = f"the server rejected a frame (FRMR {event.information.hex()})"
        # Segment acknowledgements (RR) the connection queued while receiving.
        await self._flush()

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else asyncio.get_running_loop().time() + timeout

    # --- link set-up and tear-down ------------------------------------------------------------------

    async def connect(self, timeout: float | None) -> None:
        """SNRM until UA (repeated after each ``timeout`` up to ``retries`` times); DM: ``ConnectionLost``."""
        for attempt in range(self._options.retries + 1):
            self._connection.connect()
            if attempt:
                self.repeats += 1
            await self._flush()
            deadline = self._deadline(timeout)
            try:
                while self._connection.state is HdlcState.AWAITING_CONNECTION:
                    await self._read_some(deadline, timeout)
            except ReadTimeout:
                continue
            if self._connection.state is not HdlcState.CONNECTED:
                raise ConnectionLost(f"{self.peer} refused the HDLC link (DM)")
            return
        garbled = f" ({self.discarded} corrupted frames discarded)" if self.discarded else ""
        raise ReadTimeout(
            f"{self.peer}: no UA after {self._options.retries + 1} SNRM, {timeout:.3g} s each{garbled}"
        )

    async def aclose(self) -> None:
        """DISC (bounded, best effort: the link may already be gone), then close the stream."""
        try:
            if self._broken is None and self._connection.state is HdlcState.CONNECTED:
                with contextlib.suppress(TransportError):
                    await self._disconnect()
        finally:
            await self._stream.aclose()

    async def _disconnect(self) -> None:
        timeout = self._options.disc_timeout
        self._closing = True
        for attempt in range(min(self._options.retries, 1) + 1):
            self._connection.disconnect()
            if attempt:
                self.repeats += 1
            await self._flush()
            deadline = self._deadline(timeout)
            try:
                while self._connection.state is HdlcState.AWAITING_DISCONNECTION:
                    await self._read_some(deadline, timeout)
                return
            except ReadTimeout:
                continue

    # --- APDUs -------------------------------------------------------------------------------------

    async def send(self, apdus: Sequence[bytes]) -> None:
        if self._broken is not None:
            raise ConnectionLost(f"{self.peer}: {self._broken}")
        if self._connection.state is not HdlcState.CONNECTED:
            raise ConnectionLost(f"{self.peer}: the HDLC link is not connected ({self._connection.state.value})")
        for apdu in apdus:
            self._connection.send_apdu(apdu)
        await self._flush()

    async def receive(self, timeout: float | None) -> bytes:
        """The next whole APDU; after each ``timeout`` without one, poll (RR) up to ``retries`` times."""
        polls = 0
        deadline = self._deadline(timeout)
        while not self._apdus:
            try:
                await self._read_some(deadline, timeout)
            except ReadTimeout:
                if polls >= self._options.retries or self._connection.state is not HdlcState.CONNECTED:
                    raise
                # The answer (or our request) was lost or damaged: the poll makes whichever side
                # holds unacknowledged I-frames send them again.
                polls += 1
                self.repeats += 1
                self._connection.poll()
                await self._flush()
                deadline = self._deadline(timeout)
        return self._apdus.popleft()


async def open_hdlc(stream: Stream, options: HdlcOptions, *, timeout: float | None) -> HdlcLink:
    """An ``HdlcLink`` over ``stream``, connected (the stream is closed if the link cannot be set up)."""
    link = HdlcLink(stream, options)
    try:
        await link.connect(timeout)
    except BaseException:
        await stream.aclose()
        raise
    return link
