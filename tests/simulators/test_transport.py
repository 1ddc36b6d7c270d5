"""The simulated transports: wrapper and HDLC over TCP on loopback, sessions, garbage, idle and clean-up.

``DoubleMeter`` (a small ``LogicalDevice`` on our ``ServerAssociation``) stands in for the simulated
meter in the transport, fault and point-to-point tests: its values are a pure function of the
interval index, so every read can be checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from protocols.acse import Aarq, ApplicationContextName, MechanismName
from protocols.association import (
    DEFAULT_CONFORMANCE,
    CipheringMode,
    ClientConfig,
    GetRequested,
    SecurityPolicy,
    ServerAssociation,
    ServerConfig,
)
from protocols.axdr import Data, DataTag, encode_data
from protocols.cosem import ProfileColumn, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import ConnectionLost, ReadTimeout
from protocols.hdlc import FrameType, HdlcFrame, client_address, server_address
from protocols.obis import ObisCode
from protocols.wrapper import WrapperFrame
from protocols.xdlms.common import DataAccessResult, SelectiveAccessDescriptor
from protocols.xdlms.initiate import InitiateRequest
from protocols.xdlms.selective_access import CaptureObjectDefinition, RangeDescriptor
from simulators.endpoint import LogicalDevice, Session
from simulators.transport import close_connections, serve_hdlc, serve_wrapper, stop_server
from tests.simulators.netclient import HdlcTarget, NetClient

CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
A_PLUS = ObisCode(1, 0, 1, 8, 0, 255)
A_MINUS = ObisCode(1, 0, 2, 8, 0, 255)
PROFILE = ObisCode(1, 0, 99, 1, 0, 255)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HISTORY_START = datetime(2026, 3, 1, tzinfo=UTC)
EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
METER_TITLE = bytes.fromhex("4D4D4D0000BC614E")
HES_TITLE = bytes.fromhex("4845530000000001")
CAPTURE = (CaptureObjectDefinition(8, CLOCK, 2), CaptureObjectDefinition(3, A_PLUS, 2),
           CaptureObjectDefinition(3, A_MINUS, 2))


def interval_energy(index: int) -> tuple[int, int]:
    """Wh imported and exported in 15-minute interval ``index`` after HISTORY_START."""
    return 40 + (index * 37) % 91, (index * 11) % 13


def cumulative(count: int) -> tuple[int, int]:
    imported = exported = 0
    for index in range(count):
        a, b = interval_energy(index)
        imported += a
        exported += b
    return imported, exported


def expected_rows(since: datetime, until: datetime) -> list[tuple[datetime, int, int]]:
    rows: list[tuple[datetime, int, int]] = []
    imported = exported = 0
    index = 0
    while True:
        end = HISTORY_START + timedelta(minutes=15 * (index + 1))
        if end > NOW or end > until:
            return rows
        a, b = interval_energy(index)
        imported += a
        exported += b
        if end >= since:
            rows.append((end, imported, exported))
        index += 1


def hls_policy(title: bytes) -> SecurityPolicy:
    return SecurityPolicy(mechanism=MechanismName.HLS_GMAC, ciphering=CipheringMode.SERVICE_SPECIFIC,
                          system_title=title, encryption_key=EK, authentication_key=AK)


def client_config(secure: bool, *, counter: int = 1, pdu: int = 512) -> ClientConfig:
    if not secure:
        return ClientConfig(max_receive_pdu_size=pdu)
    return ClientConfig(policy=hls_policy(HES_TITLE), client_challenge=b"HES-CtoS-0001",
                        invocation_counter=counter, max_receive_pdu_size=pdu)


def day_selection(day: datetime) -> SelectiveAccessDescriptor:
    """Range of one day of 15-minute rows: (day 00:15 .. next day 00:00], 96 rows."""
    return RangeDescriptor(
        CaptureObjectDefinition(8, CLOCK, 2),
        Data.octet_string(CosemDateTime.from_datetime(day + timedelta(minutes=15), deviation=0).encode()),
        Data.octet_string(CosemDateTime.from_datetime(day + timedelta(days=1), deviation=0).encode()),
    ).to_access_selection()


class DoubleSession:
    def __init__(self, meter: DoubleMeter, association: ServerAssociation) -> None:
        self.meter = meter
        self.association = association

    async def handle(self, apdu: bytes) -> list[bytes]:
        self.meter.handled += 1
        for event in self.association.receive_apdu(apdu):
            if isinstance(event, GetRequested):
                self.association.respond_get(event.invoke_id, self.meter.attribute(event))
        return self.association.data_to_send()

    def close(self) -> None:
        self.meter.closed += 1


class DoubleMeter:
    """A test double of the simulated meter: clock, A+/A-, a 15-minute profile; none or HLS-GMAC."""

    def __init__(self, *, secure: bool = False, saps: tuple[int, ...] = (1, 16)) -> None:
        self.secure = secure
        self.saps = saps
        self.next_counter = 1000
        self.opened: list[int] = []
        self.handled = 0
        self.closed = 0
        self._challenges = random.Random("double:challenge")

    def _used(self, value: int) -> None:
        self.next_counter = value + 1

    def open_session(self, client_sap: int) -> Session | None:
        if client_sap not in self.saps:
            return None
        self.opened.append(client_sap)
        if self.secure:
            config = ServerConfig(policy=hls_policy(METER_TITLE), server_challenge=self._challenges.randbytes(16),
                                  invocation_counter=self.next_counter, counter_used=self._used,
                                  max_receive_pdu_size=1024)
        else:
            config = ServerConfig(max_receive_pdu_size=1024)
        return DoubleSession(self, ServerAssociation(config))

    def attribute(self, request: GetRequested) -> bytes | DataAccessResult:
        d = request.descriptor
        key = (d.class_id, d.instance_id, d.attribute_id)
        if key == (8, CLOCK, 2):
            return encode_data(Data(DataTag.DATE_TIME, CosemDateTime.from_datetime(NOW, deviation=0)))
        intervals = int((NOW - HISTORY_START) / timedelta(minutes=15))
        if key == (3, A_PLUS, 2):
            return encode_data(Data.double_long_unsigned(cumulative(intervals)[0]))
        if key == (7, PROFILE, 2) and request.access_selection is not None:
            selection = RangeDescriptor.from_data(request.access_selection.parameters())
            since = CosemDateTime.decode(selection.from_value.value).to_datetime()
            until = CosemDateTime.decode(selection.to_value.value).to_datetime()
            if since is None or until is None:
                return DataAccessResult.OBJECT_UNAVAILABLE
            return encode_data(Data.array(
                Data.structure([Data.octet_string(CosemDateTime.from_datetime(end, deviation=0).encode()),
                                Data.double_long_unsigned(imported), Data.double_long_unsigned(exported)])
                for end, imported, exported in expected_rows(since, until)))
        return DataAccessResult.OBJECT_UNDEFINED


def run(coro: Callable[[], Awaitable[None]], seconds: float = 10.0) -> None:
    """Run one async test body on a fresh loop, bounded in time."""

    async def bounded() -> None:
        async with asyncio.timeout(seconds):
            await coro()

    asyncio.run(bounded())


async def wait_for(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    """Wait until ``condition()`` holds (the server side runs in its own tasks)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def serving(server: asyncio.Server) -> AsyncIterator[asyncio.Server]:
    """Use a server and stop it cleanly: connections aborted and their handlers finished."""
    try:
        yield server
    finally:
        await stop_server(server)


def port_of(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def read_day(client: NetClient) -> list[tuple[datetime, int, int]]:
    """Read one day of profile through ``client``; decoded as (end, A+, A-)."""
    raw = await client.get(7, PROFILE, 2, day_selection(datetime(2026, 3, 5, tzinfo=UTC)))
    rows = parse_profile_buffer(raw, [ProfileColumn.of(c) for c in CAPTURE], 900)
    return [(row.time, *row.values[1:]) for row in rows]


# --------------------------------------------------------------------------------------- tests


def test_wrapper_serves_sessions_per_client_and_closes_them_on_disconnect() -> None:
    meter = DoubleMeter()

    async def body() -> None:
        server = await serve_wrapper(lambda wport: meter if wport == 1 else None)
        async with serving(server):
            client = await NetClient.open_wrapper("127.0.0.1", port_of(server), client_config(False))
            await client.associate()
            value = await client.get_data(3, A_PLUS, 2)
            assert value.value == cumulative(int((NOW - HISTORY_START) / timedelta(minutes=15)))[0]
            await client.release()
            await client.close()
            await wait_for(lambda: meter.closed == 1)
            assert meter.opened == [1]

    run(body)


def test_wrapper_unknown_wport_or_sap_is_ignored_not_answered() -> None:
    meter = DoubleMeter(saps=(1,))

    async def body() -> None:
        server = await serve_wrapper(lambda wport: meter if wport == 1 else None)
        async with serving(server):
            for client_sap, server_sap in ((1, 7), (5, 1)):
                client = await NetClient.open_wrapper("127.0.0.1", port_of(server), client_config(False),
                                                      client_sap=client_sap, server_sap=server_sap, timeout=0.3)
                client.association.associate()
                with pytest.raises(ReadTimeout):
                    await client.exchange()
                await client.close()
            assert meter.opened == []

    run(body)


def test_wrapper_garbage_closes_that_connection_and_the_server_keeps_serving(
        caplog: pytest.LogCaptureFixture) -> None:
    meter = DoubleMeter()

    async def body() -> None:
        server = await serve_wrapper(lambda wport: meter)
        async with serving(server):
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"\x47\x11" + bytes(30))  # wrong wrapper version
            await writer.drain()
            assert await reader.read(100) == b""  # closed by the server
            writer.close()
            client = await NetClient.open_wrapper("127.0.0.1", port_of(server), client_config(False))
            await client.associate()
            await client.close()

    with caplog.at_level("WARNING", logger="simulators.transport"):
        run(body)
    assert any("garbage from 127.0.0.1:" in r.getMessage() for r in caplog.records)


def test_idle_connection_is_closed_after_the_idle_timeout() -> None:
    async def body() -> None:
        server = await serve_wrapper(lambda wport: DoubleMeter(), idle_timeout=0.2)
        async with serving(server):
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            started = asyncio.get_running_loop().time()
            assert await reader.read(100) == b""
            assert 0.15 < asyncio.get_running_loop().time() - started < 2.0
            writer.close()

    run(body)


def test_hdlc_link_binds_to_the_served_address_and_serves_sap() -> None:
    meter = DoubleMeter()
    seen: list[tuple[int, int | None]] = []

    def devices(upper: int, lower: int | None) -> LogicalDevice | None:
        seen.append((upper, lower))
        return meter if (upper, lower) == (1, 0x11) else None

    async def body() -> None:
        server = await serve_hdlc(devices)
        async with serving(server):
            # A frame for an unserved address first: ignored, then the real client binds the line.
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(HdlcFrame(FrameType.SNRM, server_address(9, 0x11), client_address(1)).encode())
            await writer.drain()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await reader.read(100)
            writer.close()
            client = await NetClient.open_hdlc("127.0.0.1", port_of(server), client_config(False),
                                               target=HdlcTarget(client_sap=16))
            await client.associate()
            assert (await client.get_data(8, CLOCK, 2)).value.to_datetime() == NOW
            await client.release()
            # Same TCP connection, another client SAP: DISC ends the first session, SNRM opens the next.
            await client.relink(HdlcTarget(client_sap=1))
            assert meter.closed == 1
            await client.associate()
            assert (await client.get_data(8, CLOCK, 2)).value.to_datetime() == NOW
            await client.close()
            await wait_for(lambda: meter.closed == 2)
        assert (9, 0x11) in seen and (1, 0x11) in seen
        assert meter.opened == [16, 1]

    run(body)


def test_hdlc_garbage_closes_the_connection() -> None:
    async def body() -> None:
        server = await serve_hdlc(lambda upper, lower: DoubleMeter())
        async with serving(server):
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(bytes(range(256)) * 40)  # no frame at all, 10 kB
            await writer.drain()
            assert await reader.read(100) == b""
            writer.close()

    run(body)


def test_close_connections_drops_live_connections_and_closes_sessions() -> None:
    meter = DoubleMeter()

    async def body() -> None:
        server = await serve_wrapper(lambda wport: meter)
        client = await NetClient.open_wrapper("127.0.0.1", port_of(server), client_config(False))
        await client.associate()
        server.close()
        assert close_connections(server) == 1
        await server.wait_closed()
        with pytest.raises(ConnectionLost):
            await client.get(8, CLOCK, 2)
        await client.close()
        await wait_for(lambda: meter.closed == 1)

    run(body)


def test_wrapper_frames_carry_swapped_wports() -> None:
    meter = DoubleMeter()

    async def body() -> None:
        server = await serve_wrapper(lambda wport: meter if wport == 1 else None)
        async with serving(server):
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            aarq = Aarq(application_context_name=ApplicationContextName.LOGICAL_NAME,
                        user_information=InitiateRequest(DEFAULT_CONFORMANCE, client_max_receive_pdu_size=512))
            writer.write(WrapperFrame(16, 1, aarq.encode()).encode())
            await writer.drain()
            async with asyncio.timeout(2):
                header = await reader.readexactly(8)
            frame_header = WrapperFrame.decode(header + bytes(int.from_bytes(header[6:], "big")))[0]
            assert (frame_header.source, frame_header.destination) == (1, 16)
            writer.close()

    run(body)


@pytest.mark.parametrize("kind", ["wrapper", "hdlc"])
def test_random_bytes_never_break_the_server(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(f"garbage:{kind}")
    meter = DoubleMeter()
    good_snrm = HdlcFrame(FrameType.SNRM, server_address(1, 0x11), client_address(16)).encode()

    async def body() -> None:
        if kind == "wrapper":
            server = await serve_wrapper(lambda wport: meter, idle_timeout=0.1)
        else:
            server = await serve_hdlc(lambda upper, lower: meter, idle_timeout=0.1)
        async with serving(server):
            for index in range(12):
                blob = rng.randbytes(rng.randrange(1, 3000))
                if kind == "wrapper" and index % 2:
                    blob = WrapperFrame(16, 1, blob[:200]).encode()  # well framed, nonsense APDU
                if kind == "hdlc" and index % 2:
                    blob = good_snrm + blob  # a bound link, then noise
                reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
                writer.write(blob)
                await writer.drain()
                with contextlib.suppress(ConnectionError):
                    async with asyncio.timeout(1.0):
                        while await reader.read(4096):
                            pass  # whatever the server answers, until it hangs up or goes idle
                writer.close()
            if kind == "wrapper":
                client = await NetClient.open_wrapper("127.0.0.1", port_of(server), client_config(False))
            else:
                client = await NetClient.open_hdlc("127.0.0.1", port_of(server), client_config(False))
            await client.associate()
            await client.close()

    with caplog.at_level("INFO", logger="simulators.transport"):
        run(body, 30)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
