"""The asyncio transports: error mapping, the wrapper and HDLC drivers on loopback, serial over a pty."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import tty
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
import serial

from hes.model import CounterReservation, DirectRoute, MeterSecurity, MeterTarget
from hes.session import Timeouts, open_session
from hes.transport import HdlcOptions, WrapperLink, open_hdlc, open_serial, open_tcp
from hes.transport.tcp import Phase, map_errors
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import ConnectionLost, ConnectTimeout, ReadTimeout
from protocols.hdlc import ApduReceived, HdlcConnection, HdlcParameters, HdlcState, Role, server_address
from protocols.iec62056_21 import IdentificationMessage
from protocols.wrapper import WrapperFrame
from simulators.clock import FieldClock
from simulators.counters import MemoryCounterStore
from simulators.meter import CLOCK, SERIAL_NUMBER, MeterConfig, SimulatedMeter
from simulators.optical import OpticalPort
from tests.fieldtime import EPOCH
from tests.simulators.test_optical_probe import OpticalProbe
from tests.vectors.hdlc_vectors import HDLC_FRAMES


def run(body: Callable[[], Awaitable[None]], limit: float = 15.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(limit):
            await body()

    asyncio.run(main())


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    """A loopback TCP server on a free port running ``handler`` per connection."""
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    srv = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.wait_closed()


async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    while await reader.read(4096):
        pass


# --- the one place errors are mapped ---------------------------------------------------------------


@pytest.mark.parametrize(("phase", "raised", "expected"), [
    (Phase.CONNECT, TimeoutError(), ConnectTimeout),
    (Phase.READ, TimeoutError(), ReadTimeout),
    (Phase.WRITE, TimeoutError(), ConnectionLost),
    (Phase.CONNECT, ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ConnectionLost),
    (Phase.READ, ConnectionResetError(errno.ECONNRESET, "reset by peer"), ConnectionLost),
    (Phase.WRITE, BrokenPipeError(errno.EPIPE, "broken pipe"), ConnectionLost),
    (Phase.CONNECT, socket.gaierror(-2, "Name or service not known"), ConnectionLost),
    (Phase.READ, serial.SerialException("device reports readiness to read but returned no data"), ConnectionLost),
])
def test_os_errors_and_deadlines_map_to_transport_errors(phase: Phase, raised: Exception,
                                                         expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught, map_errors(phase, "127.0.0.1:4059", 1.5):
        raise raised
    assert caught.value.__cause__ is raised
    assert "127.0.0.1:4059" in str(caught.value)
    assert getattr(caught.value, "retryable", False)


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), map_errors(Phase.READ, "x"):
        raise KeyError("a bug is not a transport error")


def test_refused_connection_and_read_timeout_on_tcp() -> None:
    async def body() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(ConnectionLost, match="refused"):
            await open_tcp("127.0.0.1", port, timeout=2.0)
        async with server(silent) as live:
            stream = await open_tcp("127.0.0.1", live, timeout=2.0)
            with pytest.raises(ReadTimeout, match=r"within 0\.05 s"):
                await stream.read(10, 0.05)
            await stream.aclose()
            with pytest.raises(ConnectionLost):
                await stream.write(b"late")

    run(body)


# --- the wrapper driver ---------------------------------------------------------------------------------


def test_wrapper_link_filters_wports_and_reads_only_when_needed() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        # One write: a PDU for another client, then two for us.
        writer.write(WrapperFrame(1, 0x20, b"\xc4other").encode() + WrapperFrame(1, 0x10, b"\xc4one").encode()
                     + WrapperFrame(1, 0x10, b"\xc4two").encode())
        await writer.drain()
        await reader.read(4096)

    async def body() -> None:
        async with server(answer) as port:
            link = WrapperLink(await open_tcp("127.0.0.1", port, timeout=2.0), client_wport=0x10, server_wport=1)
            await link.send([b"\xc0\x01"])
            assert await link.receive(2.0) == b"\xc4one"
            assert await link.receive(0.01) == b"\xc4two"  # already queued: no read, no wait
            assert link.ignored == 1
            with pytest.raises(ReadTimeout):
                await link.receive(0.05)
            await link.aclose()

    run(body)


@pytest.mark.parametrize(("garbage", "match"), [
    (b"\x00\x02\x00\x01\x00\x10\x00\x01\xc4", "wrapper version"),
    (b"", "closed the connection"),
    (b"\x00\x01\x00\x01", "closed the connection inside a PDU"),
])
def test_wrapper_link_broken_stream_is_connection_lost(garbage: bytes, match: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(garbage)
        await writer.drain()

    async def body() -> None:
        async with server(answer) as port:
            link = WrapperLink(await open_tcp("127.0.0.1", port, timeout=2.0), client_wport=1, server_wport=1)
            await link.send([b"\xc0\x01"])
            with pytest.raises(ConnectionLost, match=match):
                await link.receive(2.0)
            with pytest.raises(ConnectionLost):
                await link.send([b"\xc0\x01"])
            await link.aclose()

    run(body)


# --- the HDLC driver ------------------------------------------------------------------------------------


def hdlc_station(*, drop_first_reads: int = 0, lose_first_answer: bool = False, refuse: bool = False) -> Handler:
    """A small HDLC server (our own connection object, server role) that echoes APDUs, with losses."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = HdlcConnection(Role.SERVER, server_address=server_address(1, 0x11, 4))
        dropped = 0
        answered = 0
        while data := await reader.read(4096):
            if dropped < drop_first_reads:
                dropped += 1
                continue
            if refuse:
                link.disconnect()  # not connected: the next frame gets DM
            for event in link.receive_data(data):
                if isinstance(event, ApduReceived):
                    link.send_apdu(b"\xaa" + event.apdu)
                    answered += 1
                    if lose_first_answer and answered == 1:
                        link.data_to_send()  # the answer is lost on the line
            writer.write(link.data_to_send())
            await writer.drain()

    return handle


def test_hdlc_link_repeats_a_lost_snrm_and_polls_for_a_lost_answer() -> None:
    async def body() -> None:
        async with server(hdlc_station(drop_first_reads=1, lose_first_answer=True)) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            link = await open_hdlc(stream, HdlcOptions(server_physical=0x11, retries=2), timeout=0.1)
            assert link.state is HdlcState.CONNECTED and link.repeats == 1
            await link.send([b"\xc0\x01" + bytes(600)])  # two I-frames (segmented) each way
            assert await link.receive(0.1) == b"\xaa\xc0\x01" + bytes(600)
            assert link.repeats == 2  # one RR poll
            await link.aclose()
            assert link.state.value == "disconnected"  # the DISC was answered

    run(body)


def test_hdlc_link_gives_up_after_the_retries() -> None:
    async def body() -> None:
        async with server(silent) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            with pytest.raises(ReadTimeout, match="no UA after 3 SNRM"):
                await open_hdlc(stream, HdlcOptions(server_physical=0x11, retries=2), timeout=0.05)
        async with server(hdlc_station(refuse=True)) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            with pytest.raises(ConnectionLost, match=r"refused the HDLC link \(DM\)"):
                await open_hdlc(stream, HdlcOptions(server_physical=0x11), timeout=1.0)

    run(body)


def test_hdlc_link_peer_closing_is_connection_lost() -> None:
    async def close_after_ua(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = HdlcConnection(Role.SERVER, server_address=server_address(1, 0x11, 4))
        link.receive_data(await reader.read(4096))
        writer.write(link.data_to_send())
        await writer.drain()
        await reader.read(4096)

    async def body() -> None:
        async with server(close_after_ua) as port:
            link = await open_hdlc(await open_tcp("127.0.0.1", port, timeout=2.0),
                                   HdlcOptions(server_physical=0x11, retries=1), timeout=1.0)
            await link.send([b"\xc0\x01"])
            with pytest.raises(ConnectionLost, match="link down"):
                await link.receive(1.0)
            await link.aclose()

    run(body)


# --- serial -----------------------------------------------------------------------------------------------


def test_serial_stream_over_a_pty() -> None:
    async def body() -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        try:
            stream = await open_serial(path, 9600, timeout=2.0)
            await stream.write(b"\x7e\xa0")
            assert os.read(master, 16) == b"\x7e\xa0"
            with pytest.raises(ReadTimeout):
                await stream.read(16, 0.05)
            os.write(master, b"answer")
            assert await stream.read(16, 1.0) == b"answer"
            await stream.aclose()
            assert await stream.read(16, 1.0) == b""
        finally:
            os.close(master)
            os.close(slave)
        with pytest.raises(ConnectionLost, match="/nonexistent/tty"):
            await open_serial("/nonexistent/tty", timeout=2.0)

    run(body)


def test_session_over_the_optical_port_after_the_sign_on() -> None:
    now = EPOCH + timedelta(days=19, hours=10, minutes=7, seconds=30)
    clock = FieldClock(now, scale=0.0)
    meter = SimulatedMeter(MeterConfig(serial="OPT00000001", seed="optical", physical_address=0x11), clock,
                           MemoryCounterStore())

    async def body() -> None:
        async with OpticalPort(meter, IdentificationMessage("HES", "6", "SIM00000001"), clock) as port:
            def sign_on() -> int:
                with OpticalProbe(port.client_path) as probe:
                    probe.sign_on()
                    return probe.baud_rate

            baud = await asyncio.to_thread(sign_on)
            route = DirectRoute(host="", port=0, interface="serial", serial_device=port.client_path, baud_rate=baud,
                                physical_address=0x11)
            target = MeterTarget("OPT00000001", route, MeterSecurity())
            async with open_session(target, CounterReservation(1, 100), timeouts=Timeouts(read=2.0)) as s:
                assert (await s.get(1, SERIAL_NUMBER, 2)).value == "OPT00000001"
                assert CosemDateTime.decode((await s.get(8, CLOCK, 2)).value).to_datetime() == now
            assert port.sign_ons == 1 and not port.failures

    run(body)


def test_hdlc_link_comes_up_on_gurux_servers_odd_ua_and_logs_what_was_odd(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The UA of gurux-dlms's meter server (group length 0, then 18 bytes): one SNRM, link up, one INFO line."""
    ua = dict((n, h) for n, _, h, _ in HDLC_FRAMES)["ua-gurux-server-group-length-0"]

    async def gurux_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(bytes.fromhex(ua))
        await writer.drain()
        await reader.read(4096)

    async def body() -> None:
        async with server(gurux_like) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            link = await open_hdlc(stream, HdlcOptions(client_sap=16, retries=3), timeout=1.0)
            assert link.state is HdlcState.CONNECTED and link.repeats == 0
            assert link.parameters == HdlcParameters(128, 128, 1, 1)
            assert link.parameter_notes[0] == "the group length says 0 bytes but 18 follow: read the 18"
            await link.aclose()

    with caplog.at_level(logging.INFO, logger="hes.transport.hdlc"):
        run(body)
    (line,) = [r.getMessage() for r in caplog.records if "read leniently" in r.getMessage()]
    assert "group length says 0 bytes but 18 follow" in line and "window size receive 131073" in line
