"""Simulated TCP transports: the DLMS wrapper and HDLC over TCP, serving logical devices on loopback.

Each accepted TCP connection gets one sans-IO connection object from ``protocols`` (a
``WrapperConnection``, or an ``HdlcConnection`` in the server role) and, lazily, one ``Session``
per client association it carries. Whole APDUs go to ``Session.handle``; its answers go back
framed. Byte-level faults of a ``FaultPlan`` (refused or silent connections, slow answers,
truncated frames, bad FCS, drops mid-transfer) are applied here, APDU-level faults by wrapping
each session in a ``FaultySession``. Bad bytes from a client close that connection (logged with
the peer's address); they never stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from protocols.hdlc import (
    ApduReceived as HdlcApduReceived,
)
from protocols.hdlc import (
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
from protocols.wrapper import ApduReceived, ConnectionClosed, WrapperConnection, WrapperError
from simulators.endpoint import LogicalDevice, Session
from simulators.faults import FaultInjector, FaultPlan, FaultySession

__all__ = [
    "DEFAULT_HDLC_PARAMETERS",
    "DEFAULT_IDLE_TIMEOUT",
    "HdlcDevices",
    "WrapperDevices",
    "close_connections",
    "serve_hdlc",
    "serve_wrapper",
    "stop_server",
]

logger = logging.getLogger(__name__)

#: Wall seconds a connection may stay quiet before the device hangs up (a modem's inactivity timer).
DEFAULT_IDLE_TIMEOUT = 120.0
#: What the simulated HDLC stations can do; the client's SNRM may only lower it.
DEFAULT_HDLC_PARAMETERS = HdlcParameters(max_info_tx=512, max_info_rx=512, window_tx=1, window_rx=1)

WrapperDevices = Callable[[int], LogicalDevice | None]
HdlcDevices = Callable[[int, int | None], LogicalDevice | None]

# One read takes at most this much: with the connection objects' own bounds it caps memory per peer.
_READ_CHUNK = 4096
# Bytes an HDLC peer may send before its first frame for a served address; more is garbage.
_MAX_UNBOUND = 8192
# Discarded HDLC frames in a row (no valid frame between) before the peer counts as sending garbage.
_MAX_DISCARDS_IN_ROW = 16

_live: weakref.WeakKeyDictionary[asyncio.Server, set[_Link]] = weakref.WeakKeyDictionary()


class _Dropped(Exception):
    """The fault plan dropped the connection mid-transfer (internal control flow)."""


class _Link:
    """What both transports share: the read loop, sessions, fault application and clean-up."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        injector: FaultInjector | None,
        idle_timeout: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.injector = injector
        self.idle_timeout = idle_timeout
        peer: Any = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        self.sessions: dict[tuple[int, int | None, int], Session] = {}
        self._aborted = False
        #: Set when the connection is fully handled (sessions closed, socket closed).
        self.finished = asyncio.Event()

    async def run(self) -> None:
        try:
            if self.injector is not None and self.injector.refuse_connection():
                logger.info("refusing connection from %s (fault: WAN outage)", self.peer)
                self.abort()
                return
            await self._loop()
        except _Dropped:
            logger.info("dropped connection from %s mid-transfer (fault)", self.peer)
        except (ConnectionError, OSError) as exc:
            logger.info("connection from %s failed: %s", self.peer, exc)
        except Exception:
            # A bug in a session must cost its connection only, never the server: logged in full.
            logger.exception("error serving %s; connection closed", self.peer)
        finally:
            self.close_sessions()
            await self.close()
            self.finished.set()

    async def _loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    data = await self.reader.read(_READ_CHUNK)
            except TimeoutError:
                logger.info("connection from %s idle for %.1f s; closing", self.peer, self.idle_timeout)
                return
            if self.injector is not None:
                if self.injector.refuse_connection():
                    logger.info("closing connection from %s (fault: WAN outage)", self.peer)
                    self.abort()
                    return
                if self.injector.silent():
                    # A dead modem: it takes the bytes and nothing comes back.
                    if not data:
                        return
                    continue
            if not data:
                self.feed_eof()
                return
            if not await self.feed(data):
                return

    async def feed(self, data: bytes) -> bool:
        """Process bytes from the peer; False closes the connection."""
        raise NotImplementedError

    def feed_eof(self) -> None:
        """The peer closed its side."""

    async def open_session(
        self, device: LogicalDevice | None, key: tuple[int, int | None, int], what: str
    ) -> Session | None:
        session = self.sessions.get(key)
        if session is not None:
            return session
        if device is None:
            logger.info("%s: no logical device at %s; APDU ignored", self.peer, what)
            return None
        opened = device.open_session(key[2])
        if opened is None:
            logger.info("%s: %s does not serve client SAP %d; APDU ignored", self.peer, what, key[2])
            return None
        if self.injector is not None:
            opened = FaultySession(opened, self.injector)
        self.sessions[key] = opened
        return opened

    def close_sessions(self) -> None:
        sessions, self.sessions = self.sessions, {}
        for session in sessions.values():
            session.close()

    async def send(self, frames: list[bytes], *, has_fcs: bool) -> None:
        """Write ``frames`` (each one frame or PDU) with the plan's byte-level faults applied."""
        if not frames:
            return
        injector = self.injector
        if injector is None:
            self.writer.write(b"".join(frames))
            await self.writer.drain()
            return
        delay = injector.answer_delay()
        if delay > 0:
            await asyncio.sleep(delay)
        wire = b"".join(injector.damage_frame(frame, has_fcs=has_fcs) for frame in frames)
        cut = injector.drop_point(len(wire))
        if cut is not None:
            self.writer.write(wire[:cut])
            await self.writer.drain()
            self.abort()
            raise _Dropped
        self.writer.write(wire)
        await self.writer.drain()

    def abort(self) -> None:
        """Close at once, without a clean shutdown (what a lost modem link looks like to the peer)."""
        self._aborted = True
        self.writer.transport.abort()

    async def close(self) -> None:
        if self._aborted:
            return
        self.writer.close()
        # The peer may already have reset the connection; there is nothing left to tell it then.
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class _WrapperLink(_Link):
    def __init__(self, devices: WrapperDevices, *args: Any) -> None:
        super().__init__(*args)
        self.devices = devices
        # The wPorts are given per PDU; the connection's defaults are never used.
        self.connection = WrapperConnection(local_port=1, remote_port=1)

    async def feed(self, data: bytes) -> bool:
        for event in self.connection.receive_data(data):
            if isinstance(event, WrapperError):
                logger.warning("garbage from %s (%s at offset %d); closing", self.peer, event.reason, event.offset)
                return False
            if isinstance(event, ConnectionClosed):
                return False
            if isinstance(event, ApduReceived):
                await self._serve(event)
        return True

    def feed_eof(self) -> None:
        for event in self.connection.receive_data(b""):
            if isinstance(event, ConnectionClosed) and event.pending:
                logger.info("%s closed with %d bytes of an unfinished PDU", self.peer, event.pending)

    async def _serve(self, event: ApduReceived) -> None:
        key = (event.destination, None, event.source)
        session = self.sessions.get(key)
        if session is None:
            session = await self.open_session(self.devices(event.destination), key, f"wPort {event.destination}")
            if session is None:
                return
        answers = await session.handle(event.apdu)
        frames = []
        for answer in answers:
            self.connection.send_apdu(answer, source=event.destination, destination=event.source)
            frames.append(self.connection.data_to_send())
        await self.send(frames, has_fcs=False)


class _HdlcLink(_Link):
    def __init__(self, devices: HdlcDevices, parameters: HdlcParameters, *args: Any) -> None:
        super().__init__(*args)
        self.devices = devices
        self.parameters = parameters
        self.connection: HdlcConnection | None = None
        self.device: LogicalDevice | None = None
        self.address: HdlcAddress | None = None
        self._unbound = bytearray()
        self._scan_from = 0
        self._discards = 0

    def _bind(self) -> bool | None:
        """Find the first frame for a served address: True bound, None need more, False garbage."""
        buf = self._unbound
        pos = buf.find(0x7E, self._scan_from)
        while pos >= 0:
            try:
                result = parse_frame(buf, pos)
            except FrameDecodeError:
                pos = buf.find(0x7E, pos + 1)
                continue
            if result is None:
                self._scan_from = pos
                break
            frame, end = result
            address = frame.destination
            device = self.devices(address.upper, address.lower)
            if device is not None:
                self.address, self.device = address, device
                self.connection = HdlcConnection(Role.SERVER, server_address=address, parameters=self.parameters)
                return True
            logger.info("%s: HDLC frame for unserved address %s ignored", self.peer, address)
            pos = buf.find(0x7E, end - 1)  # the closing flag may open the next frame
        else:
            self._scan_from = len(buf)
        return False if len(buf) > _MAX_UNBOUND else None

    async def feed(self, data: bytes) -> bool:
        if self.connection is None:
            self._unbound += data
            bound = self._bind()
            if bound is False:
                logger.warning("garbage from %s (%d bytes, no frame for a served address); closing",
                               self.peer, len(self._unbound))
                return False
            if bound is None:
                return True
            data, self._unbound = bytes(self._unbound), bytearray()
        connection = self.connection
        assert connection is not None  # bound above
        for event in connection.receive_data(data):
            if isinstance(event, FrameDiscarded):
                self._discards += 1
                logger.debug("%s: HDLC frame discarded: %s", self.peer, event.reason)
                if self._discards > _MAX_DISCARDS_IN_ROW:
                    logger.warning("garbage from %s (%d bad frames in a row); closing", self.peer, self._discards)
                    return False
                continue
            self._discards = 0
            if isinstance(event, Connected | Disconnected):
                # A new link (or none) means a new association: the old session ends with the old link.
                self.close_sessions()
            elif isinstance(event, HdlcApduReceived):
                await self._serve(connection, event.apdu)
        await self.send(_split_frames(connection.data_to_send()), has_fcs=True)
        return True

    async def _serve(self, connection: HdlcConnection, apdu: bytes) -> None:
        client = connection.peer_address
        if client is None or self.address is None:
            return
        key = (self.address.upper, self.address.lower, client.upper)
        session = self.sessions.get(key)
        if session is None:
            session = await self.open_session(self.device, key, f"HDLC address {self.address}")
            if session is None:
                return
        answers = await session.handle(apdu)
        for answer in answers:
            if connection.state is not HdlcState.CONNECTED:
                logger.info("%s: link went down before an answer could be sent", self.peer)
                return
            connection.send_apdu(answer)

    def feed_eof(self) -> None:
        if self.connection is not None:
            self.connection.receive_data(b"")


def _split_frames(data: bytes) -> list[bytes]:
    """Our own encoder's output, one frame per item (each with both flags), for per-frame faults."""
    frames: list[bytes] = []
    pos = 0
    while pos + 3 <= len(data):
        length = ((data[pos + 1] & 0x07) << 8) | data[pos + 2]
        end = pos + length + 2
        frames.append(data[pos:end])
        pos = end
    if pos < len(data):
        frames.append(data[pos:])
    return frames


async def serve_wrapper(
    devices: WrapperDevices,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultPlan | None = None,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    on_connections: Callable[[int], None] | None = None,
) -> asyncio.Server:
    """Serve logical devices over the TCP wrapper; ``devices(destination_wport)`` picks the device.

    Sessions are opened per (client wPort, destination wPort) with ``open_session(client_wport)``.
    Read the bound port from ``server.sockets[0].getsockname()[1]``. ``on_connections`` is told the
    number of open connections whenever it changes.
    """
    injector = FaultInjector(faults) if faults is not None else None
    links: set[_Link] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _WrapperLink(devices, reader, writer, injector, idle_timeout)
        links.add(link)
        if on_connections is not None:
            on_connections(len(links))
        try:
            await link.run()
        finally:
            links.discard(link)
            if on_connections is not None:
                on_connections(len(links))

    server = await asyncio.start_server(on_connect, host, port)
    _live[server] = links
    return server


async def serve_hdlc(
    devices: HdlcDevices,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultPlan | None = None,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    parameters: HdlcParameters = DEFAULT_HDLC_PARAMETERS,
) -> asyncio.Server:
    """Serve logical devices over HDLC on TCP; ``devices(upper, lower)`` picks the device by server address.

    ``upper`` is the logical device address, ``lower`` the physical device address (None with a
    one-byte address). Each TCP connection is one HDLC line bound to the first served address a
    frame is sent to; the client address (SAP) of the SNRM selects the session.
    """
    injector = FaultInjector(faults) if faults is not None else None
    links: set[_Link] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _HdlcLink(devices, parameters, reader, writer, injector, idle_timeout)
        links.add(link)
        try:
            await link.run()
        finally:
            links.discard(link)

    server = await asyncio.start_server(on_connect, host, port)
    _live[server] = links
    return server


def close_connections(server: asyncio.Server) -> int:
    """Abort every open connection of a server made here (``server.close()`` leaves them open); returns how many."""
    links = _live.get(server, set())
    count = 0
    for link in list(links):
        link.abort()
        count += 1
    return count


async def stop_server(server: asyncio.Server, timeout: float = 5.0) -> None:
    """Stop listening, abort open connections and wait (at most ``timeout`` s) until each is handled.

    Waiting matters on shutdown: a handler still running when the loop closes would be cancelled
    mid-way, with its sessions never closed.
    """
    server.close()
    links = list(_live.get(server, set()))
    close_connections(server)
    await server.wait_closed()
    if links:
        pending = [asyncio.ensure_future(link.finished.wait()) for link in links]
        _, not_done = await asyncio.wait(pending, timeout=timeout)
        for future in not_done:
            future.cancel()
        if not_done:
            logger.warning("%d connection(s) still closing after %.1f s", len(not_done), timeout)
