"""The TCP wrapper driver: ``protocols.wrapper.WrapperConnection`` over a ``Stream``, one APDU per receive."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence

from hes.transport.tcp import DEFAULT_READ_SIZE, Stream
from protocols.errors import ConnectionLost, ReadTimeout
from protocols.wrapper import HEADER_LENGTH, ApduReceived, ConnectionClosed, WrapperConnection, WrapperError

__all__ = ["WrapperLink", "remaining"]

logger = logging.getLogger(__name__)


def remaining(deadline: float | None) -> float | None:
    """Seconds left until a loop-time ``deadline`` (None: no deadline); 0 when it has passed."""
    if deadline is None:
        return None
    return max(0.0, deadline - asyncio.get_running_loop().time())


class WrapperLink:
    """One association's wPorts over one stream: ``client_wport`` (our SAP) to ``server_wport``.

    ``receive`` reads only while no whole APDU is queued (the connection object says when one is
    complete), so one read may serve several APDUs. A PDU between other wPorts (a concentrator
    answering someone else) is dropped and counted in ``ignored``. The wrapper has no checksum and
    no resync: a bad header or the peer closing ends the link with ``ConnectionLost``.

    ``detach`` ends the link without closing the stream, for the next association on the same
    connection (a pool): the wrapper addresses each association by its wPorts, so one TCP
    connection can carry consecutive ones.
    """

    def __init__(self, stream: Stream, *, client_wport: int, server_wport: int,
                 read_size: int = DEFAULT_READ_SIZE) -> None:
        self._stream = stream
        self._connection = WrapperConnection(local_port=client_wport, remote_port=server_wport)
        self._read_size = read_size
        self._apdus: deque[bytes] = deque()
        self._broken: str | None = None
        self._detached = False
        self.client_wport = client_wport
        self.server_wport = server_wport
        #: PDUs received for other wPorts, dropped.
        self.ignored = 0
        #: Bytes read from the stream by this link (0: the peer has sent nothing since it took the stream).
        self.received = 0
        # Bytes of the whole PDUs among them: ``received - _framed`` is an unfinished PDU's start.
        self._framed = 0

    @property
    def peer(self) -> str:
        return f"{self._stream.peer} wPort {self.server_wport}"

    async def send(self, apdus: Sequence[bytes]) -> None:
        if self._broken is not None:
            raise ConnectionLost(f"{self.peer}: {self._broken}")
        for apdu in apdus:
            self._connection.send_apdu(apdu)
        await self._stream.write(self._connection.data_to_send())

    async def receive(self, timeout: float | None) -> bytes:
        """The next whole APDU from the server within ``timeout`` seconds (``ReadTimeout`` otherwise)."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while not self._apdus:
            if self._broken is not None:
                raise ConnectionLost(f"{self.peer}: {self._broken}")
            left = remaining(deadline)
            if left == 0.0:
                raise ReadTimeout(f"{self.peer} did not answer within {timeout:.3g} s")
            self._feed(await self._stream.read(self._read_size, left))
        return self._apdus.popleft()

    def _feed(self, data: bytes) -> None:
        self.received += len(data)
        for event in self._connection.receive_data(data):
            if isinstance(event, ApduReceived):
                self._framed += HEADER_LENGTH + len(event.apdu)
                if (event.source, event.destination) != (self.server_wport, self.client_wport):
                    self.ignored += 1
                    logger.debug("%s: PDU from wPort %d to %d ignored", self._stream.peer, event.source,
                                 event.destination)
                    continue
                self._apdus.append(event.apdu)
            elif isinstance(event, WrapperError):
                self._broken = f"wrapper stream broken ({event.reason} at offset {event.offset})"
            elif isinstance(event, ConnectionClosed):
                self._broken = "the peer closed the connection" + (
                    f" inside a PDU ({event.pending} bytes lost)" if event.pending else "")

    def detach(self) -> Stream | None:
        """End the link and hand its stream over instead of closing it; None when the stream must be closed.

        The stream is handed over only at a PDU boundary with nothing of this link left on it: no
        APDU received and not taken, no start of an unfinished PDU, no wrapper error, the peer not
        gone. The caller owns the stream then; this link is closed (``aclose`` does nothing).
        """
        if (self._detached or self._apdus or self._broken is not None or self.received != self._framed
                or self._connection.failed or self._connection.closed):
            return None
        self._detached = True
        self._broken = "the link handed its stream over"
        return self._stream

    async def aclose(self) -> None:
        if self._detached:
            return
        await self._stream.aclose()
