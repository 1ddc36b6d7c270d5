"""The independent clients (gurux-dlms, dlms-cosem) read simulated meters over TCP: wrapper, HDLC, a DC's gateway.

The simulators run in an asyncio loop on a worker thread (``FieldThread``); the peers are blocking
clients driven from the test thread, every socket with a timeout and every call into the loop
bounded. Field time is frozen at ``NOW`` so every value read has one right answer, taken from
``simulators.energy`` (F1's deterministic functions), never from the meter object itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSGateway, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric, GXDLMSRegister
from gurux_dlms.secure import GXDLMSSecureClient

from protocols.cosem_datetime import CosemDateTime
from simulators.clock import FieldClock
from simulators.concentrator import ConcentratorConfig, SecurityConfig, SimulatedConcentrator
from simulators.counters import MemoryCounterStore
from simulators.energy import FIELD_EPOCH, INTERVAL, profile_intervals, registers_at
from simulators.links import LinkModel
from simulators.makes import MAKE_A, MAKE_B, DeviceType
from simulators.meter import MeterConfig, SimulatedMeter
from simulators.p2p import Interface, PointToPointMeter
from tests.fieldtime import EPOCH, utc_midnight
from tests.peers import GREEN_BOOK_AK, GREEN_BOOK_EK, GREEN_BOOK_SYSTEM_TITLE
from tests.peers.gurux_peer import decode_data as gurux_decode_data

T = TypeVar("T")

SEED = "peer-reads"
SERIAL = "PEER0000001"
NOW = EPOCH + timedelta(days=19, hours=10, minutes=7, seconds=30)  # 2024-03-20T10:07:30Z by default
DAY = utc_midnight(NOW) - timedelta(days=2)
CLIENT_TITLE = bytes.fromhex("4845530000000001")
TIMEOUT = 5.0
CLOCK_LN = "0.0.1.0.0.255"
PROFILE_LN = "1.0.99.1.0.255"
REGISTERS = {"1.0.1.8.0.255": "a_plus", "1.0.1.8.1.255": "a_plus_t1", "1.0.1.8.2.255": "a_plus_t2",
             "1.0.2.8.0.255": "a_minus"}


class FieldThread:
    """An event loop on a daemon thread for the simulators; ``call`` runs a coroutine there, bounded."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="field", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


@pytest.fixture
def field() -> Iterator[FieldThread]:
    thread = FieldThread()
    try:
        yield thread
    finally:
        thread.close()


def meter_config(serial: str, policy: str, physical_address: int = 0x11, device_type: DeviceType = MAKE_A
                 ) -> MeterConfig:
    if policy == "hls-gmac":
        return MeterConfig(serial, SEED, physical_address, policy="hls-gmac", system_title=GREEN_BOOK_SYSTEM_TITLE,
                           ek=GREEN_BOOK_EK, ak=GREEN_BOOK_AK, device_type=device_type)
    return MeterConfig(serial, SEED, physical_address, device_type=device_type)


@contextlib.contextmanager
def p2p_meter(field: FieldThread, interface: Interface, policy: str, device_type: DeviceType = MAKE_A
              ) -> Iterator[int]:
    """A point-to-point meter on 127.0.0.1; yields its port."""
    clock = FieldClock(NOW, scale=0)
    meter = SimulatedMeter(meter_config(SERIAL, policy, device_type=device_type), clock, MemoryCounterStore())

    async def start() -> PointToPointMeter:
        p2p = PointToPointMeter(meter, interface=interface)
        await p2p.start()
        return p2p

    p2p = field.call(start())
    try:
        yield p2p.port
    finally:
        field.call(p2p.stop())


# ------------------------------------------------------------------------------------ expected values


def expected_registers(serial: str) -> dict[str, int]:
    registers = registers_at(SEED, serial, NOW)
    return {ln: getattr(registers, name) for ln, name in REGISTERS.items()}


def expected_day(serial: str) -> list[tuple[datetime, int, int, int]]:
    first = (DAY - FIELD_EPOCH) // INTERVAL
    return [(FIELD_EPOCH + (row.interval + 1) * INTERVAL, row.status, row.a_plus, row.a_minus)
            for row in profile_intervals(SEED, serial, first, first + 95)]


def profile_rows(rows: list[list[Any]]) -> list[tuple[datetime | None, int, int, int]]:
    """Rows as plain values (octet-string time, status, A+, A-) made comparable with ``expected_day``."""
    out = []
    for stamp, status, a_plus, a_minus in rows:
        out.append((CosemDateTime.decode(bytes(stamp)).to_datetime(), status, a_plus, a_minus))
    return out


# ------------------------------------------------------------------------------------ gurux-dlms


class GuruxSession:
    """A GXDLMSSecureClient on a blocking socket, the way gurux's own reader example drives it."""

    def __init__(self, port: int, client: GXDLMSSecureClient) -> None:
        self.client = client
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

    def close(self) -> None:
        self.sock.close()

    def _packet(self, data: bytes | None, reply: GXReplyData) -> None:
        if data:
            self.sock.sendall(bytes(data))
        received = GXByteBuffer()
        notify = GXReplyData()
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the simulator closed the connection")
            received.set(chunk)
            if self.client.getData(received, reply, notify):
                return

    def exchange(self, messages: Any) -> GXReplyData:
        """Send each request (gurux may split one into several) and read until the reply is complete."""
        reply = GXReplyData()
        if isinstance(messages, (bytes, bytearray)):
            messages = [messages]
        for message in messages:
            reply.clear()
            self._packet(message, reply)
            while reply.isMoreData():
                self._packet(self.client.receiverReady(reply), reply)
        return reply

    def open(self) -> None:
        snrm = self.client.snrmRequest()
        if snrm:
            self.client.parseUAResponse(self.exchange(snrm).data)
        with contextlib.redirect_stdout(None):  # gurux prints on every ciphered APDU
            self.client.parseAareResponse(self.exchange(self.client.aarqRequest()).data)
            if self.client.authentication > Authentication.LOW:
                reply = self.exchange(self.client.getApplicationAssociationRequest())
                self.client.parseApplicationAssociationResponse(reply.data)

    def read(self, item: Any, attribute: int) -> Any:
        with contextlib.redirect_stdout(None):
            reply = self.exchange(self.client.read(item, attribute))
        return reply.value

    def read_range(self, start: datetime, end: datetime, ln: str = PROFILE_LN) -> list[Any]:
        profile = GXDLMSProfileGeneric(ln)
        with contextlib.redirect_stdout(None):
            reply = self.exchange(self.client.readRowsByRange(profile, GXDateTime(start), GXDateTime(end)))
        return list(reply.value)

    def release(self) -> None:
        with contextlib.redirect_stdout(None):
            self.exchange(self.client.releaseRequest())
            request = self.client.disconnectRequest()
            if request:
                self.exchange(request)


def gurux_client(interface: str, policy: str, *, gateway: GXDLMSGateway | None = None) -> GXDLMSSecureClient:
    hls = policy == "hls-gmac"
    client = GXDLMSSecureClient(True, 1 if hls else 16, 1, Authentication.HIGH_GMAC if hls else Authentication.NONE,
                                None, InterfaceType.WRAPPER if interface == "wrapper" else InterfaceType.HDLC)
    if interface == "hdlc":
        # The p2p meter answers any physical address; gurux sends a 4-byte address with this set.
        client.serverAddress = GXDLMSSecureClient.getServerAddress(1, 0x11, 4)
        client.serverAddressSize = 4
    if hls:
        client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        client.ciphering.systemTitle = CLIENT_TITLE
        client.ciphering.blockCipherKey = GREEN_BOOK_EK
        client.ciphering.authenticationKey = GREEN_BOOK_AK
        client.ciphering.invocationCounter = 1
        # Release both ways: ciphered RLRQ over the wrapper, gurux's default plain RLRQ over HDLC
        # (a meter must answer that too; see tests/peers/README.md).
        client.useProtectedRelease = interface == "wrapper"
    if gateway is not None:
        client.gateway = gateway
    return client


def gurux_read_all(session: GuruxSession) -> tuple[Any, dict[str, int], list[Any]]:
    session.open()
    clock = session.read(GXDLMSClock(CLOCK_LN), 2)
    registers = {ln: session.read(GXDLMSRegister(ln), 2) for ln in REGISTERS}
    rows = session.read_range(DAY + INTERVAL, DAY + timedelta(days=1))
    session.release()
    return clock, registers, rows


def gurux_time(value: Any) -> datetime | None:
    """gurux gives the clock as a GXDateTime, or raw octets; either way back to an aware datetime."""
    if isinstance(value, GXDateTime):
        moment: datetime = value.value
        return moment.astimezone(UTC)
    return CosemDateTime.decode(bytes(value)).to_datetime()


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
@pytest.mark.parametrize("policy", ["none", "hls-gmac"])
def test_gurux_reads_clock_registers_and_a_day_of_profile(field: FieldThread, interface: str, policy: str) -> None:
    with p2p_meter(field, interface, policy) as port:  # type: ignore[arg-type]
        session = GuruxSession(port, gurux_client(interface, policy))
        try:
            clock, registers, rows = gurux_read_all(session)
        finally:
            session.close()
    assert gurux_time(clock) == NOW
    assert registers == expected_registers(SERIAL)
    assert profile_rows([[gurux_decode_data(b"\x09\x0c" + bytes(r[0])), *r[1:]] for r in rows]) == expected_day(SERIAL)
    assert len(rows) == 96


def test_gurux_reads_a_meter_through_a_concentrators_gateway(field: FieldThread) -> None:
    clock = FieldClock(NOW, scale=0)
    dc = SimulatedConcentrator(ConcentratorConfig("DC-PEER-1", SEED, SecurityConfig()), clock)
    serials = [f"PEERDC{index:05d}" for index in range(3)]
    for index, serial in enumerate(serials):
        meter = SimulatedMeter(meter_config(serial, "hls-gmac", 0x40 + index), clock, MemoryCounterStore())
        dc.add_meter(serial, 0x40 + index, meter, LinkModel(latency=0.0))
    field.call(dc.start(schedule=False))
    try:
        gateway = GXDLMSGateway()
        gateway.networkId = 0
        gateway.physicalDeviceAddress = (0x41).to_bytes(2, "big")
        # The meter is HLS-GMAC; gurux reads it as the public client (no security): gurux 1.0.203 drops
        # the gateway header from ciphered requests (test_gurux_defect_ciphered_requests_lose_the_gateway).
        session = GuruxSession(dc.port, gurux_client("wrapper", "none", gateway=gateway))
        try:
            clock_value, registers, rows = gurux_read_all(session)
        finally:
            session.close()
    finally:
        field.call(dc.stop())
    assert gurux_time(clock_value) == NOW
    assert registers == expected_registers(serials[1])
    assert profile_rows([[gurux_decode_data(b"\x09\x0c" + bytes(r[0])), *r[1:]] for r in rows]) == \
        expected_day(serials[1])


def test_gurux_defect_ciphered_requests_lose_the_gateway_header() -> None:
    """gurux 1.0.203 wraps an AARQ and plain requests in a gateway-request (E6), but not glo-ciphered ones."""
    requests = {}
    for policy in ("none", "hls-gmac"):
        gateway = GXDLMSGateway()
        gateway.networkId = 0
        gateway.physicalDeviceAddress = b"\x00\x41"
        client = gurux_client("wrapper", policy, gateway=gateway)
        client.settings.sourceSystemTitle = GREEN_BOOK_SYSTEM_TITLE  # as learnt from the AARE
        with contextlib.redirect_stdout(None):
            requests[policy] = bytes(client.read(GXDLMSClock(CLOCK_LN), 2)[0])[8:]  # wrapper header off
    assert requests["none"][:5] == b"\xe6\x00\x02\x00\x41"
    assert requests["none"][5] == 0xC0  # get-request inside
    assert requests["hls-gmac"][0] == 0xC8  # glo-get-request, sent bare: the DC cannot route it


# ------------------------------------------------------------------------------------ dlms-cosem


def recording_io(port: int, timeout: int) -> Any:
    """dlms-cosem's own BlockingTcpIO, keeping what each ``recv_until`` returned (observation only)."""
    from dlms_cosem.io import BlockingTcpIO

    class RecordingTcpIO(BlockingTcpIO):  # type: ignore[misc]
        received: list[bytes]

        def recv_until(self, end: bytes) -> bytes:
            data: bytes = super().recv_until(end)
            self.received.append(bytes(data))
            return data

    io = RecordingTcpIO("127.0.0.1", port, timeout=timeout)
    io.received = []
    return io


def dlms_cosem_client(io: Any, interface: str, policy: str) -> Any:
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.io import HdlcTransport, TcpTransport
    from dlms_cosem.security import HighLevelSecurityGmacAuthentication, NoSecurityAuthentication

    hls = policy == "hls-gmac"
    client_sap = 1 if hls else 16
    transport: Any
    if interface == "wrapper":
        transport = TcpTransport(client_logical_address=client_sap, server_logical_address=1, io=io,
                                 timeout=io.timeout)
    else:
        transport = HdlcTransport(client_logical_address=client_sap, server_logical_address=1, io=io,
                                  server_physical_address=0x11, extended_addressing=True, timeout=io.timeout)
    if not hls:
        return DlmsClient(transport=transport, authentication=NoSecurityAuthentication(), timeout=io.timeout)
    return DlmsClient(
        transport=transport,
        authentication=HighLevelSecurityGmacAuthentication(challenge_length=16),
        encryption_key=GREEN_BOOK_EK,
        authentication_key=GREEN_BOOK_AK,
        security_suite=0,
        client_system_title=CLIENT_TITLE,
        client_initial_invocation_counter=1,
        timeout=io.timeout,
    )


def cut_at_an_inner_flag(chunk: bytes) -> bool:
    """A chunk dlms-cosem took for a frame that its own length field says is longer (0x7E inside it)."""
    frame = chunk if chunk[:1] == b"\x7e" else b"\x7e" + chunk  # the opening flag went with the previous read
    if len(frame) < 3 or frame[1] & 0xF0 != 0xA0:
        return False
    length = ((frame[1] & 0x07) << 8) | frame[2]
    return len(frame) < length + 2


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
@pytest.mark.parametrize("policy", ["none", "hls-gmac"])
def test_dlms_cosem_reads_clock_registers_and_a_day_of_profile(
        field: FieldThread, interface: str, policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import dlms_cosem.security
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.cosem.capture_object import CaptureObject
    from dlms_cosem.cosem.selective_access import RangeDescriptor as PeerRange
    from dlms_cosem.exceptions import CommunicationError

    from tests.peers.dlms_cosem_peer import decode_data

    def attribute(interface_class: int, ln: str, index: int) -> Any:
        return cosem.CosemAttribute(interface=enumerations.CosemInterface(interface_class),
                                    instance=cosem.Obis.from_string(ln), attribute=index)

    selection = PeerRange(restricting_object=CaptureObject(cosem_attribute=attribute(8, CLOCK_LN, 2)),
                          from_value=DAY + INTERVAL, to_value=DAY + timedelta(days=1))
    # dlms-cosem draws its HLS challenge from os.urandom; a fixed one makes every byte of the exchange
    # the same on each run, so whether one of its frames holds a 0x7E (its HDLC defect) is not left to chance.
    monkeypatch.setattr(dlms_cosem.security, "make_client_to_server_challenge", lambda length=8: bytes(range(length)))
    with p2p_meter(field, interface, policy) as port:  # type: ignore[arg-type]
        io = recording_io(port, 2)
        client = dlms_cosem_client(io, interface, policy)
        try:
            client.connect()
            client.associate()
            clock = decode_data(client.get(attribute(8, CLOCK_LN, 2)))
            registers = {ln: decode_data(client.get(attribute(3, ln, 2))) for ln in REGISTERS}
            try:
                rows = decode_data(client.get(attribute(7, PROFILE_LN, 2), access_descriptor=selection))
            except CommunicationError:
                # dlms-cosem splits HDLC frames on 0x7E (tests/peers/README.md): a frame whose FCS or
                # data holds 0x7E is cut short and the read stalls. Only that may make it fail here.
                assert interface == "hdlc"
                assert any(cut_at_an_inner_flag(chunk) for chunk in io.received)
                rows = None
            else:
                client.release_association()
        finally:
            io.disconnect()
    assert CosemDateTime.decode(clock).to_datetime() == NOW
    assert registers == expected_registers(SERIAL)
    if rows is not None:
        assert profile_rows(rows) == expected_day(SERIAL)
        assert len(rows) == 96


def test_dlms_cosem_reads_a_make_b_meters_profile(field: FieldThread) -> None:
    """Make B's load profile sits at 1.0.99.2.0.255 with its columns in another order: clock, A-, A+, status."""
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.client import DataResultError
    from dlms_cosem.cosem.capture_object import CaptureObject
    from dlms_cosem.cosem.selective_access import RangeDescriptor as PeerRange

    from tests.peers.dlms_cosem_peer import decode_data

    def attribute(interface_class: int, ln: str, index: int) -> Any:
        return cosem.CosemAttribute(interface=enumerations.CosemInterface(interface_class),
                                    instance=cosem.Obis.from_string(ln), attribute=index)

    selection = PeerRange(restricting_object=CaptureObject(cosem_attribute=attribute(8, CLOCK_LN, 2)),
                          from_value=DAY + INTERVAL, to_value=DAY + timedelta(days=1))
    with p2p_meter(field, "wrapper", "none", MAKE_B) as port:
        io = recording_io(port, 2)
        client = dlms_cosem_client(io, "wrapper", "none")
        try:
            client.connect()
            client.associate()
            rows = decode_data(client.get(attribute(7, "1.0.99.2.0.255", 2), access_descriptor=selection))
            with pytest.raises(DataResultError, match="OBJECT_UNDEFINED"):  # make A's profile is not there
                client.get(attribute(7, PROFILE_LN, 2), access_descriptor=selection)
            client.release_association()
        finally:
            io.disconnect()
    expected = expected_day(SERIAL)
    assert len(rows) == 96
    assert [(CosemDateTime.decode(bytes(r[0])).to_datetime(), r[1], r[2], r[3]) for r in rows] == [
        (at, a_minus, a_plus, status) for at, status, a_plus, a_minus in expected
    ]
