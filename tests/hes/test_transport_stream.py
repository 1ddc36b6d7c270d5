"""The protocol-based TCP stream under peers that misbehave: reset, close mid-PDU, never answer, do not read."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from hes.transport import WrapperLink, open_tcp
from protocols.errors import ConnectionLost, ReadTimeout
from protocols.wrapper import WrapperFrame
from tests.hes.test_transport import run, server, silent


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the first request with a few bytes, then reset the connection (RST, no FIN)."""
    await reader.read(4096)
    writer.write(b"\x00\x01")
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def test_peer_reset_is_connection_lost_for_reads_and_writes() -> None:
    async def body() -> None:
        async with server(reset) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            await stream.write(b"request")
            with pytest.raises(ConnectionLost, match=rf"read on 127\.0\.0\.1:{port} failed: Connection reset"):
                while await stream.read(4096, 2.0):
                    pass
            with pytest.raises(ConnectionLost, match=rf"write on 127\.0\.0\.1:{port} failed: Connection reset"):
                await stream.write(b"more")
            await stream.aclose()
            await stream.aclose()  # twice: nothing left to do
            with pytest.raises(ConnectionLost, match="after the stream was closed"):
                await stream.write(b"late")

    run(body)


def test_peer_closing_mid_pdu_ends_the_wrapper_link() -> None:
    async def half_pdu(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(WrapperFrame(1, 0x10, b"\xc4" + bytes(99)).encode()[:50])
        await writer.drain()
        writer.close()

    async def body() -> None:
        async with server(half_pdu) as port:
            link = WrapperLink(await open_tcp("127.0.0.1", port, timeout=2.0), client_wport=0x10, server_wport=1)
            await link.send([b"\xc0\x01"])
            with pytest.raises(ConnectionLost, match=r"inside a PDU \(50 bytes lost\)"):
                await link.receive(2.0)
            await link.aclose()

    run(body)


def test_read_timeout_leaves_the_stream_usable_and_keeps_each_reads_deadline() -> None:
    async def late_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(4096):
            if request == b"now":
                writer.write(b"answer now")
            elif request == b"later":
                await asyncio.sleep(0.2)
                writer.write(b"answer later")
            await writer.drain()

    async def body() -> None:
        async with server(late_answers) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            # A long deadline, then a short one: the short one still ends its read.
            await stream.write(b"now")
            assert await stream.read(4096, 10.0) == b"answer now"
            await stream.write(b"silence")
            with pytest.raises(ReadTimeout, match=rf"127\.0\.0\.1:{port} did not answer within 0\.05 s"):
                await stream.read(4096, 0.05)
            # A short deadline left behind by an answered read does not end a later, longer one.
            await stream.write(b"now")
            assert await stream.read(4096, 0.05) == b"answer now"
            await stream.write(b"later")
            assert await stream.read(4096, 10.0) == b"answer later"
            # No deadline at all.
            await stream.write(b"now")
            assert await stream.read(4096, None) == b"answer now"
            await stream.aclose()

    run(body)


def test_a_cancelled_read_leaves_the_stream_usable() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()

    async def body() -> None:
        async with server(echo) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            reading = asyncio.ensure_future(stream.read(4096, 10.0))
            await asyncio.sleep(0)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            await stream.write(b"ping")
            assert await stream.read(4096, 10.0) == b"ping"
            await stream.aclose()

    run(body)


def test_reads_split_a_large_answer_and_the_peer_closing_reads_empty() -> None:
    payload = bytes(range(256)) * 1024  # 256 kB: more than one read, more than the socket buffers

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(payload)
        await writer.drain()
        writer.close()

    async def body() -> None:
        async with server(flood) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            await stream.write(b"send")
            received = bytearray()
            while data := await stream.read(8192, 5.0):
                assert len(data) <= 8192
                received += data
            assert received == payload
            assert await stream.read(8192, 5.0) == b""
            await stream.aclose()

    run(body)


def test_writes_wait_for_a_slow_reader_and_close_delivers_everything() -> None:
    payload = bytes(range(251)) * 16_000  # 4 MB: the transport pauses the writer
    received = bytearray()
    finished = asyncio.Event()

    async def slow_reader(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        while data := await reader.read(65536):
            received.extend(data)
        finished.set()

    async def body() -> None:
        async with server(slow_reader) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            for offset in range(0, len(payload), 1 << 20):
                await stream.write(payload[offset:offset + (1 << 20)])
            await stream.aclose()
            await finished.wait()
            assert received == payload

    run(body)


def test_a_silent_peer_and_a_refused_port() -> None:
    async def body() -> None:
        async with server(silent) as port:
            link = WrapperLink(await open_tcp("127.0.0.1", port, timeout=2.0), client_wport=1, server_wport=1)
            await link.send([b"\xc0\x01"])
            with pytest.raises(ReadTimeout, match="did not answer within"):
                await link.receive(0.05)
            await link.aclose()
        with pytest.raises(ConnectionLost, match=rf"connection refused by 127\.0\.0\.1:{port}"):
            await open_tcp("127.0.0.1", port, timeout=2.0)

    run(body)
