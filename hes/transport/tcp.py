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
from typing import Any, NoReturn, Protocol

import serial

from protocols.errors import ConnectionLost, ConnectTimeout, ReadTimeout, TransportError

__all__ = [
    "DEFAULT_READ_SIZE",
    "Phase",
    "SerialStream",
    "Stream",
    "TcpStream",
    "map_errors",
    "mapped_error",
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


def mapped_error(phase: Phase, peer: str, exc: BaseException, timeout: float | None = None) -> TransportError | None:
    """The transport error ``exc`` means in ``phase`` (None: not a transport matter, let it through)."""
    if isinstance(exc, TransportError):
        return None
    if isinstance(exc, TimeoutError):
        if phase is Phase.CONNECT:
            return ConnectTimeout(f"no connection to {peer} within {timeout:.3g} s")
        if phase is Phase.READ:
            return ReadTimeout(f"{peer} did not answer within {timeout:.3g} s")
        return ConnectionLost(f"{phase.value} to {peer} timed out after {timeout:.3g} s")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionLost(f"connection refused by {peer} (device or its WAN down)")
    if isinstance(exc, OSError | serial.SerialException):
        # socket.gaierror, ECONNRESET, EPIPE, EIO on a serial line that went away...: the link is gone.
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return ConnectionLost(f"{phase.value} {'to' if phase is Phase.CONNECT else 'on'} {peer} failed: {detail}")
    return None


@contextlib.contextmanager
def map_errors(phase: Phase, peer: str, timeout: float | None = None) -> Iterator[None]:
    """Translate OS errors and expired deadlines into ``ConnectTimeout``/``ReadTimeout``/``ConnectionLost``."""
    try:
        yield
    except Exception as exc:
        error = mapped_error(phase, peer, exc, timeout)
        if error is None:
            raise
        raise error from exc


def _raise(phase: Phase, peer: str, exc: BaseException, timeout: float | None = None) -> NoReturn:
    error = mapped_error(phase, peer, exc, timeout)
    if error is None:
        raise exc
    raise error from exc


#: Received bytes held before the socket stops being read (the peer then waits: TCP flow control).
_READ_BUFFER_LIMIT = 256 * 1024


class TcpStream(asyncio.Protocol):
    """An asyncio TCP connection: the protocol object itself, with no StreamReader/StreamWriter between.

    Bytes received wait in one buffer; a ``read`` that finds it empty waits on one future. Its
    deadline is one timer per stream, not per read: the timer stays armed across reads and is only
    moved earlier (or re-armed when it fires before the current deadline), so a session whose
    reads all have the same timeout schedules it about once. ``write`` awaits only when the
    transport asks the protocol to pause (its buffer is full) or the write broke the connection.
    """

    def __init__(self, peer: str) -> None:
        self._peer = peer
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._exception: BaseException | None = None
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None  # a read waiting for bytes
        self._drain_waiter: asyncio.Future[None] | None = None  # a write waiting for resume_writing
        self._close_waiter: asyncio.Future[None] | None = None
        self._deadline: float | None = None  # of the read now waiting
        # The read deadline's timer and when it fires (kept here: uvloop's handle for a delay that rounds
        # to 0 ms is a plain Handle, without ``when()``).
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def reusable(self) -> bool:
        """Whether another user could start on this stream as on a new connection (what a pool keeps).

        Open at both ends with no error, nothing received and not read, no read or write waiting,
        nothing queued to send, neither direction paused: the next bytes in either direction belong
        to whoever takes the stream next. A peer that closed an idle stream shows here once the loop
        has seen its FIN or RST; until then only the next exchange can tell.
        """
        transport = self._transport
        return (transport is not None and not self._closed and not self._eof and not self._lost
                and self._exception is None and not self._buffer and self._waiter is None
                and self._drain_waiter is None and not self._reading_paused and not self._writing_paused
                and not transport.is_closing() and transport.get_write_buffer_size() == 0)

    def park(self) -> None:
        """The stream waits unused (in a pool): drop the read timer its last user left armed.

        The timer outlives reads on purpose (see the class docstring); between users it would only
        fire for nobody and keep the stream referenced from the loop.
        """
        self._cancel_timer()
        self._deadline = None

    # --- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any transport with the Transport methods (uvloop's is not an asyncio.Transport subclass).
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake(None)
        if len(self._buffer) > _READ_BUFFER_LIMIT and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake(None)
        return True  # keep the transport open for writing (half-close), as asyncio's streams do

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is None:
            self._eof = True
        else:
            self._exception = exc
        self._wake(exc)
        for waiter in (self._drain_waiter, self._close_waiter):
            if waiter is not None and not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        self._drain_waiter = None
        self._cancel_timer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the read deadline ----------------------------------------------------------------------------

    def _wake(self, exc: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        timer = self._timer
        if timer is None or self._timer_at > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        timer, self._timer = self._timer, None
        deadline = self._deadline
        if deadline is None or timer is None:
            return
        if deadline <= self._timer_at:
            self._wake(TimeoutError())
        else:
            self._arm(deadline)  # the read that set the timer is over; this one ends later

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- Stream -----------------------------------------------------------------------------------

    async def read(self, max_bytes: int, timeout: float | None) -> bytes:
        if self._exception is not None:
            _raise(Phase.READ, self._peer, self._exception, timeout)
        buffer = self._buffer
        if not buffer and not self._eof:
            if self._waiter is not None:
                raise RuntimeError(f"read on {self._peer} while another read is waiting")
            waiter = self._waiter = self._loop.create_future()
            if timeout is not None:
                self._arm(self._loop.time() + timeout)
            try:
                await waiter
            except (TimeoutError, OSError) as exc:
                _raise(Phase.READ, self._peer, exc, timeout)
            finally:
                self._waiter = self._deadline = None
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        if self._reading_paused and len(buffer) <= _READ_BUFFER_LIMIT // 2 and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._closed:
            raise ConnectionLost(f"write on {self._peer} after the stream was closed")
        if self._exception is not None:
            _raise(Phase.WRITE, self._peer, self._exception)
        transport = self._transport
        assert transport is not None
        transport.write(data)
        if not self._writing_paused and not transport.is_closing():
            return
        try:
            if transport.is_closing():
                await asyncio.sleep(0)  # a failed send: let connection_lost run (as StreamWriter.drain does)
            if self._lost:
                raise ConnectionResetError("Connection lost")
            if self._writing_paused:
                self._drain_waiter = self._loop.create_future()
                await self._drain_waiter
        except OSError as exc:
            _raise(Phase.WRITE, self._peer, exc)

    def close(self) -> None:
        """Start closing without waiting: the loop sends what is queued, then closes the socket.

        For callers that cannot await (a pool dropping a stream); ``aclose`` also waits for the flush.
        """
        self._close()

    def _close(self) -> int:
        """Close the transport; returns the bytes still queued to send (0: nothing to wait for)."""
        if self._closed:
            return 0
        self._closed = True
        self._cancel_timer()
        transport = self._transport
        if transport is None or self._lost:
            return 0
        pending = transport.get_write_buffer_size()
        transport.close()
        return pending

    async def aclose(self) -> None:
        """Close the transport; wait for the socket to close only when queued bytes are still to go."""
        if self._close():
            # The peer may have reset the connection already: there is nothing left to tell it.
            self._close_waiter = self._loop.create_future()
            with contextlib.suppress(OSError):
                await self._close_waiter


async def open_tcp(host: str, port: int, *, timeout: float | None) -> TcpStream:
    """Connect within ``timeout`` seconds (``ConnectTimeout``; refused or unreachable: ``ConnectionLost``)."""
    peer = f"{host}:{port}"
    stream = TcpStream(peer)
    try:
        async with asyncio.timeout(timeout):
            await stream._loop.create_connection(lambda: stream, host, port)
    except (OSError, serial.SerialException) as exc:
        _raise(Phase.CONNECT, peer, exc, timeout)
    return stream


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
