"""A small byte-stream interface (read with a deadline, write, close) over asyncio TCP streams and pyserial.

The drivers in ``hes.transport.wrapper`` and ``hes.transport.hdlc`` only see ``Stream``. Every OS
error and every expired deadline is translated into the protocol stack's transport errors in ONE
place, ``map_errors`` (httpcore's ``map_exceptions``): ``ConnectTimeout`` while connecting,
``ReadTimeout`` while waiting for bytes, ``ConnectionLost`` for anything else that breaks the link.
The peer closing the stream is an empty ``read``, as with sockets; the drivers decide what it means.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Iterator
from enum import Enum
from typing import Any, Protocol

import serial

from protocols.errors import ConnectionLost, ConnectTimeout, ReadTimeout, TransportError

__all__ = [
    "DEFAULT_READ_SIZE",
    "Phase",
    "SerialStream",
    "Stream",
    "TcpStream",
    "map_errors",
    "open_serial",
    "open_tcp",
]

#: Bytes asked for per read: a whole 2.5 kB profile answer, or several HDLC frames, in one call.
DEFAULT_READ_SIZE = 8192


class Phase(Enum):
    """What the stream was doing when an error happened: it decides which error the caller sees."""

    CONNECT = "connect"
    READ = "read"
    WRITE = "write"
    CLOSE = "close"


class Stream(Protocol):
    """Bytes to and from one peer. ``read`` returns b"" when the peer closed the stream."""

    @property
    def peer(self) -> str:
        """Where the stream goes, for messages (host:port or the serial device)."""
        ...

    async def read(self, max_bytes: int, timeout: float | None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def aclose(self) -> None: ...


@contextlib.contextmanager
def map_errors(phase: Phase, peer: str, timeout: float | None = None) -> Iterator[None]:
    """Translate OS errors and expired deadlines into ``ConnectTimeout``/``ReadTimeout``/``ConnectionLost``."""
    try:
        yield
    except TransportError:
        raise
    except TimeoutError as exc:
        if phase is Phase.CONNECT:
            raise ConnectTimeout(f"no connection to {peer} within {timeout:.3g} s") from exc
        if phase is Phase.READ:
            raise ReadTimeout(f"{peer} did not answer within {timeout:.3g} s") from exc
        raise ConnectionLost(f"{phase.value} to {peer} timed out after {timeout:.3g} s") from exc
    except ConnectionRefusedError as exc:
        raise ConnectionLost(f"connection refused by {peer} (device or its WAN down)") from exc
    except (OSError, serial.SerialException) as exc:
        # socket.gaierror, ECONNRESET, EPIPE, EIO on a serial line that went away...: the link is gone.
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ConnectionLost(f"{phase.value} {'to' if phase is Phase.CONNECT else 'on'} {peer} failed: "
                             f"{detail}") from exc


class TcpStream:
    """An asyncio TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        self._reader = reader
        self._writer = writer
        self._peer = peer
        self._closed = False

    @property
    def peer(self) -> str:
        return self._peer

    async def read(self, max_bytes: int, timeout: float | None) -> bytes:
        with map_errors(Phase.READ, self._peer, timeout):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._closed:
            raise ConnectionLost(f"write on {self._peer} after the stream was closed")
        with map_errors(Phase.WRITE, self._peer):
            self._writer.write(data)
            await self._writer.drain()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        # The peer may have reset the connection already: there is nothing left to tell it.
        with contextlib.suppress(OSError, TransportError), map_errors(Phase.CLOSE, self._peer):
            await self._writer.wait_closed()


async def open_tcp(host: str, port: int, *, timeout: float | None) -> TcpStream:
    """Connect within ``timeout`` seconds (``ConnectTimeout``; refused or unreachable: ``ConnectionLost``)."""
    peer = f"{host}:{port}"
    with map_errors(Phase.CONNECT, peer, timeout):
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
    return TcpStream(reader, writer, peer)


class SerialStream:
    """A serial line (RS-232/485 modem, optical head, pty) driven without blocking the event loop.

    pyserial opens and configures the port; bytes then move through its file descriptor with the
    event loop's reader/writer callbacks, so a read with a deadline costs no thread and is cancelled
    cleanly. POSIX only (what the head-end and the field tool run on).
    """

    def __init__(self, port: Any, peer: str) -> None:
        self._port = port
        self._fd: int = port.fileno()
        self._peer = peer
        self._closed = False
        os.set_blocking(self._fd, False)

    @property
    def peer(self) -> str:
        return self._peer

    async def _wait(self, writable: bool, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        add, remove = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
        add(self._fd, wake)
        try:
            async with asyncio.timeout(timeout):
                await ready
        finally:
            remove(self._fd)

    async def read(self, max_bytes: int, timeout: float | None) -> bytes:
        if self._closed:
            return b""
        woke = False
        with map_errors(Phase.READ, self._peer, timeout):
            while True:
                try:
                    data: bytes | None = os.read(self._fd, max_bytes)
                except BlockingIOError:
                    data = None
                except OSError as exc:
                    # A pty whose other side is gone reports EIO: for us that is the peer hanging up.
                    if exc.errno == errno.EIO:
                        return b""
                    raise
                if data:
                    return data
                # A tty in non-canonical mode with VMIN 0 reads b"" when nothing is there; b"" right after
                # the port said it was readable is pyserial's "device disconnected" case.
                if data == b"" and woke:
                    return b""
                await self._wait(False, timeout)
                woke = True

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionLost(f"write on {self._peer} after the port was closed")
        view = memoryview(data)
        with map_errors(Phase.WRITE, self._peer):
            while view:
                try:
                    written = os.write(self._fd, view)
                except BlockingIOError:
                    # The line is slower than we write: wait for the driver's buffer to drain.
                    await self._wait(True, None)
                    continue
                view = view[written:]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, serial.SerialException):
            self._port.close()


async def open_serial(device: str, baud_rate: int = 9600, *, timeout: float | None = None) -> SerialStream:
    """Open a serial device 8N1 at ``baud_rate`` (``ConnectionLost`` when it cannot be opened)."""
    with map_errors(Phase.CONNECT, device, timeout):
        async with asyncio.timeout(timeout):
            # Opening a tty can block (modem control lines); keep it off the event loop.
            port = await asyncio.to_thread(
                serial.Serial, device, baud_rate, bytesize=serial.EIGHTBITS, parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE, timeout=0, write_timeout=None,
            )
    return SerialStream(port, device)
