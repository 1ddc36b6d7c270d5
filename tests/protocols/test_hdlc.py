"""HDLC (IEC 62056-46): CRC, frames against public vectors, the link state machine, fuzzing."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import DecodeError, EncodeError, StateError
from protocols.hdlc import (
    TRANSITIONS,
    ApduReceived,
    Connected,
    Disconnected,
    FrameDiscarded,
    FrameRejected,
    FrameType,
    HdlcAddress,
    HdlcConnection,
    HdlcFrame,
    HdlcParameters,
    HdlcState,
    LocalAction,
    PeerBusy,
    Role,
    UnexpectedFrame,
    client_address,
    crc16,
    crc16_bytes,
    server_address,
)
from protocols.hdlc.frame import parse_frame
from tests.vectors.hdlc_vectors import HDLC_FRAMES, UA_PARAMETERS

CLIENT = client_address(16)
SERVER = server_address(1, 17, 2)
JUNK = b"\x00\x7e\xa0\x13junk"


def _crc_bitwise(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


# ---------------------------------------------------------------------------- CRC


def test_crc_check_value() -> None:
    # The catalogue check value of CRC-16/X.25 (a.k.a. CRC-16/IBM-SDLC) over "123456789".
    assert crc16(b"123456789") == 0x906E
    # HCS example of u9n/dlms-cosem tests (TestCrc): 03 3F -> 5B EC on the wire.
    assert crc16_bytes(bytes.fromhex("033f")) == bytes.fromhex("5bec")


@given(st.binary(max_size=300))
def test_crc_table_matches_bitwise(data: bytes) -> None:
    assert crc16(data) == _crc_bitwise(data)


# ---------------------------------------------------------------------------- frames


@pytest.mark.parametrize(("name", "source", "hexa", "expected"), HDLC_FRAMES, ids=[v[0] for v in HDLC_FRAMES])
def test_vector_both_ways(name: str, source: str, hexa: str, expected: HdlcFrame) -> None:
    raw = bytes.fromhex(hexa)
    assert source
    frame, end = HdlcFrame.decode(raw)
    assert frame == expected
    assert end == len(raw)
    assert expected.encode() == raw
    # HCS (when there is an information field) and FCS check out on the bytes themselves.
    assert crc16(raw[1:-3]) == int.from_bytes(raw[-3:-1], "little")
    # Trailing junk is left alone.
    frame2, end2 = HdlcFrame.decode(raw + JUNK)
    assert (frame2, end2) == (expected, len(raw))
    # One byte at a time: every strict prefix needs more data, never an error.
    for cut in range(len(raw)):
        assert parse_frame(raw[:cut], 0) is None
    with pytest.raises(DecodeError):
        HdlcFrame.decode(raw[:-1])


def test_vectors_match_independent_implementations() -> None:
    from dlms_cosem.hdlc import address, frames
    from gurux_dlms import GXByteBuffer, GXDLMSClient
    from gurux_dlms.enums import InterfaceType
    from gurux_dlms.objects import GXDLMSClock

    by_name = {name: bytes.fromhex(h) for name, _, h, _ in HDLC_FRAMES}
    gx = GXDLMSClient(True, 16, 1)
    gx.interfaceType = InterfaceType.HDLC
    assert bytes(gx.snrmRequest()) == by_name["snrm-no-parameters"]
    ua = HdlcFrame(FrameType.UA, HdlcAddress(16), HdlcAddress(1), HdlcParameters().encode()).encode()
    gx.parseUAResponse(GXByteBuffer(ua[11:-3]))
    gx.aarqRequest()
    assert bytes(gx.read(GXDLMSClock("0.0.1.0.0.255"), 2)[0]) == by_name["i-frame-get-request-clock"]
    assert bytes(gx.disconnectRequest()) == by_name["disc-one-byte-server-address"]

    srv = address.HdlcAddress(logical_address=1, physical_address=17, address_type="server")
    cli = address.HdlcAddress(logical_address=16, physical_address=None, address_type="client")
    assert frames.ReceiveReadyFrame(srv, cli, receive_sequence_number=1).to_bytes() == by_name["rr-nr1"]
    assert frames.DisconnectFrame(srv, cli).to_bytes() == by_name["disc"]
    assert frames.SetNormalResponseModeFrame(srv, cli).to_bytes() == by_name["snrm-two-byte-server-address"]


def test_four_byte_server_address() -> None:
    # SNRM to logical 1 / physical 17 in four bytes from client 120, as commented in a public C
    # HDLC implementation ("SNRM example without any parameter negotiation").
    raw = bytes.fromhex("7ea00a00020023f193232e7e")
    frame, _ = HdlcFrame.decode(raw)
    assert frame.destination == server_address(1, 17, 4) == HdlcAddress(1, 17, 4)
    assert frame.source == client_address(120)
    assert frame.frame_type is FrameType.SNRM
    assert frame.encode() == raw
    assert server_address(0x3FFF, 0x3FFF, 4).encode() == bytes.fromhex("fefefeff")
    assert server_address(1, None, 1).encode() == b"\x03"
    with pytest.raises(EncodeError):
        server_address(128, 1, 2)
    with pytest.raises(EncodeError):
        HdlcAddress(1, 1, 3)


def test_parameters_both_ways() -> None:
    params = HdlcParameters(max_info_tx=512, max_info_rx=154, window_tx=3, window_rx=1)
    raw = params.encode()
    assert raw.hex() == "8180130502020006019a070400000003080400000001"
    assert HdlcParameters.decode(raw) == params
    assert HdlcParameters.decode(b"") == HdlcParameters(128, 128, 1, 1)
    # Parameters left out take their defaults; 1/2/4-byte values all accepted.
    assert HdlcParameters.decode(bytes.fromhex("81800405020100")) == HdlcParameters(256, 128, 1, 1)
    for bad in ("8180", "81810105", "818003050301", "8180020501"):
        with pytest.raises(DecodeError):
            HdlcParameters.decode(bytes.fromhex(bad))


@pytest.mark.parametrize(
    "hexa",
    [
        "7eb0070321930f017e",  # not format type 3
        "7ea0070321930f027e",  # FCS
        "7ea0070321930f0100",  # no closing flag
        "7ea00603930f017e",  # length too short
        "7ea0080202022193bd647e",  # three-byte address
        "7ea00a0321100000ffff0000ff7e",  # HCS
    ],
)
def test_bad_frames_raise_decode_error(hexa: str) -> None:
    with pytest.raises(DecodeError):
        HdlcFrame.decode(bytes.fromhex(hexa))


def test_unknown_control_field_has_known_extent() -> None:
    body = bytes.fromhex("a007032199")  # control 0x99: SREJ, not used by DLMS
    raw = b"\x7e" + body + crc16_bytes(body) + b"\x7e"
    with pytest.raises(DecodeError) as info:
        HdlcFrame.decode(raw)
    assert getattr(info.value, "end", None) == len(raw)


frame_types = st.sampled_from(list(FrameType))
addresses = st.one_of(
    st.builds(HdlcAddress, st.integers(0, 0x7F)),
    st.builds(HdlcAddress, st.integers(0, 0x7F), st.integers(0, 0x7F), st.just(2)),
    st.builds(HdlcAddress, st.integers(0, 0x3FFF), st.integers(0, 0x3FFF), st.just(4)),
)


@st.composite
def hdlc_frames(draw: st.DrawFn) -> HdlcFrame:
    kind = draw(frame_types)
    info = b"" if kind in (FrameType.RR, FrameType.RNR) else draw(st.binary(max_size=200))
    return HdlcFrame(
        kind, draw(addresses), draw(addresses), info, draw(st.booleans()),
        draw(st.integers(0, 7)) if kind is FrameType.I else 0,
        draw(st.integers(0, 7)) if kind in (FrameType.I, FrameType.RR, FrameType.RNR) else 0,
        draw(st.booleans()),
    )


@given(hdlc_frames())
def test_frame_round_trip(frame: HdlcFrame) -> None:
    raw = frame.encode()
    assert HdlcFrame.decode(raw + b"\x7e\xa0") == (frame, len(raw))


@given(st.binary(max_size=300))
def test_fuzz_decode_random(data: bytes) -> None:
    try:
        frame, end = HdlcFrame.decode(data)
    except DecodeError:
        return
    assert 9 <= end <= len(data)
    assert frame.encode() == data[:end]


@given(hdlc_frames(), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4))
def test_fuzz_decode_mutated(frame: HdlcFrame, edits: list[tuple[int, int]]) -> None:
    raw = bytearray(frame.encode())
    for index, value in edits:
        raw[index % len(raw)] = value
    try:
        frame2, end = HdlcFrame.decode(bytes(raw))
    except DecodeError:
        return
    assert frame2.encode() == bytes(raw[:end])


# ---------------------------------------------------------------------------- helpers for links


def make_pair(
    client_params: HdlcParameters | None = None, server_params: HdlcParameters | None = None
) -> tuple[HdlcConnection, HdlcConnection]:
    client = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=SERVER,
                            parameters=client_params)
    server = HdlcConnection(Role.SERVER, server_address=SERVER, parameters=server_params)
    client.connect()
    assert [type(e) for e in server.receive_data(client.data_to_send())] == [Connected]
    assert [type(e) for e in client.receive_data(server.data_to_send())] == [Connected]
    return client, server


def split_frames(data: bytes) -> list[HdlcFrame]:
    out, pos = [], 0
    while pos < len(data):
        frame, end = HdlcFrame.decode(data, pos)
        out.append(frame)
        pos = end
    return out


def pump(
    a: HdlcConnection, b: HdlcConnection, log: list[tuple[str, HdlcFrame]] | None = None
) -> list[object]:
    """Move bytes both ways until both are quiet; returns all events in order."""
    events: list[object] = []
    for _ in range(1000):
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.data_to_send()
            if data:
                moved = True
                if log is not None:
                    log.extend((src.role.value, f) for f in split_frames(data))
                events.extend(dst.receive_data(data))
        if not moved:
            return events
    raise AssertionError("link never went quiet")


# ---------------------------------------------------------------------------- link behaviour


def test_client_snrm_is_the_classic_frame_and_fed_byte_by_byte() -> None:
    client = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=HdlcAddress(1))
    server = HdlcConnection(Role.SERVER, server_address=HdlcAddress(1))
    client.connect()
    snrm = client.data_to_send()
    assert snrm == bytes.fromhex("7ea0070321930f017e")
    events = [e for byte in snrm for e in server.receive_data(bytes((byte,)))]
    assert events == [Connected(HdlcParameters())]
    ua = server.data_to_send()
    ua_frame, _ = HdlcFrame.decode(ua)
    assert ua_frame.frame_type is FrameType.UA
    assert HdlcParameters.decode(ua_frame.information) == HdlcParameters()
    events = [e for byte in ua for e in client.receive_data(bytes((byte,)))]
    assert events == [Connected(HdlcParameters())]
    assert client.state is HdlcState.CONNECTED and server.state is HdlcState.CONNECTED


def test_client_takes_ua_vector() -> None:
    client = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=SERVER,
                            parameters=HdlcParameters(512, 512, 1, 1))
    client.connect()
    snrm, _ = HdlcFrame.decode(client.data_to_send())
    assert HdlcParameters.decode(snrm.information) == HdlcParameters(512, 512, 1, 1)
    ua = dict((n, h) for n, _, h, _ in HDLC_FRAMES)["ua-with-parameters"]
    assert client.receive_data(bytes.fromhex(ua)) == [Connected(HdlcParameters(154, 154, 1, 1))]


def test_client_connects_on_gurux_servers_ua_and_says_what_was_odd() -> None:
    """gurux-dlms's meter server declares a group of 0 bytes and sends 18: the link comes up anyway."""
    client = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=HdlcAddress(1))
    client.connect()
    client.data_to_send()
    ua = dict((n, h) for n, _, h, _ in HDLC_FRAMES)["ua-gurux-server-group-length-0"]
    (event,) = client.receive_data(bytes.fromhex(ua))
    assert isinstance(event, Connected) and client.state is HdlcState.CONNECTED
    assert event.parameters == HdlcParameters(128, 128, 1, 1)
    assert event.notes == ("the group length says 0 bytes but 18 follow: read the 18",
                           "window size receive 131073 is not a window of 1 to 7: the default 1 used")


def test_every_ua_vector_has_its_parameters() -> None:
    uas = {name for name, _, _, frame in HDLC_FRAMES if frame.frame_type is FrameType.UA and frame.information}
    assert uas == {name for name, _, _ in UA_PARAMETERS}


@pytest.mark.parametrize(("name", "theirs", "odd"), UA_PARAMETERS, ids=[v[0] for v in UA_PARAMETERS])
def test_client_connects_on_each_ua_vector_fed_one_byte_at_a_time(
    name: str, theirs: HdlcParameters, odd: tuple[str, ...],
) -> None:
    """Real meters' UAs, gurux's and hand-written odd ones: the link comes up, with what was odd said."""
    hexa, ua = next((h, frame) for n, _, h, frame in HDLC_FRAMES if n == name)
    parameters, notes = HdlcParameters.read_lenient(ua.information)
    assert parameters == theirs
    assert len(notes) == len(odd) and all(part in note for part, note in zip(odd, notes))
    # Proposing more than any of them offers, the client ends with exactly what the server said (seen from it).
    client = HdlcConnection(Role.CLIENT, client_address=ua.destination, server_address=ua.source,
                            parameters=HdlcParameters(2000, 2000, 7, 7))
    client.connect()
    client.data_to_send()
    events = [event for byte in bytes.fromhex(hexa) for event in client.receive_data(bytes([byte]))]
    assert events == [Connected(theirs.reversed(), notes)]
    assert client.state is HdlcState.CONNECTED


@pytest.mark.parametrize(
    ("field", "expected", "odd"),
    [
        # A sound group: no note.
        ("81801205019a06019a070400000001080400000001", HdlcParameters(154, 154, 1, 1), []),
        # Parameters in another order, some missing: the standard's defaults, nothing odd.
        ("8180080802000306020200", HdlcParameters(128, 512, 1, 3), []),
        # The group length larger than what follows.
        ("81801405019a06019a", HdlcParameters(154, 154, 1, 1), ["group length says 20"]),
        # An unknown parameter, a parameter twice, a three-byte width.
        ("81800e09010105019a05010106030000c8", HdlcParameters(154, 200, 1, 1),
         ["unknown parameter 0x09", "given twice (154, then 1)"]),
        # A window of 0, an info length of 0, a length beyond a frame.
        ("81800d070100060100050210000801ff", HdlcParameters(0x7FF, 128, 1, 1),
         ["4096 exceeds a frame", "maximum information length receive 0", "window size transmit 0",
          "window size receive 255"]),
        # Cut inside a parameter: what came before is kept.
        ("81800805019a0604000001", HdlcParameters(154, 128, 1, 1), ["length 4 at byte 6 is unreadable"]),
        # The format identifier left out.
        ("800305019a", HdlcParameters(154, 128, 1, 1), ["format identifier 81 is missing"]),
        # Not a parameter group at all: defaults.
        ("0102030405", HdlcParameters(), ["no parameter group"]),
        ("8180", HdlcParameters(), ["group length is missing"]),
    ],
)
def test_parameters_read_leniently(field: str, expected: HdlcParameters, odd: list[str]) -> None:
    parameters, notes = HdlcParameters.read_lenient(bytes.fromhex(field))
    assert parameters == expected
    assert len(notes) == len(odd)
    for note, part in zip(notes, odd):
        assert part in note


@given(st.binary(max_size=40))
def test_reading_parameters_leniently_never_raises(field: bytes) -> None:
    parameters, notes = HdlcParameters.read_lenient(field)
    assert 1 <= parameters.window_tx <= 7 and 1 <= parameters.window_rx <= 7
    if field and not notes:  # a field read without a note is one the strict decoder accepts alike
        assert HdlcParameters.decode(field) == parameters


def test_negotiation_takes_the_minimum() -> None:
    client, server = make_pair(HdlcParameters(1000, 300, 7, 2), HdlcParameters(200, 500, 3, 5))
    assert client.parameters == HdlcParameters(max_info_tx=500, max_info_rx=200, window_tx=5, window_rx=2)
    assert server.parameters == HdlcParameters(max_info_tx=200, max_info_rx=500, window_tx=2, window_rx=5)
    assert client.parameters == server.parameters.reversed()


def test_request_response_with_llc() -> None:
    client, server = make_pair()
    client.send_apdu(b"\xc0\x01\xc1")
    raw = client.data_to_send()
    (frame,) = split_frames(raw)
    assert frame.information == b"\xe6\xe6\x00\xc0\x01\xc1" and frame.poll_final
    assert server.receive_data(raw) == [ApduReceived(b"\xc0\x01\xc1")]
    server.send_apdu(b"\xc4\x01\xc1\x00")
    raw = server.data_to_send()
    (frame,) = split_frames(raw)
    assert frame.information[:3] == b"\xe6\xe7\x00"
    assert (frame.send_sequence, frame.receive_sequence) == (0, 1)
    assert client.receive_data(raw) == [ApduReceived(b"\xc4\x01\xc1\x00")]


@pytest.mark.parametrize("window", [1, 3, 7])
def test_segmentation_both_ways(window: int) -> None:
    params = HdlcParameters(128, 128, window, window)
    client, server = make_pair(params, params)
    request = bytes(i % 251 for i in range(1000))
    response = bytes((i * 7) % 253 for i in range(1000))
    log: list[tuple[str, HdlcFrame]] = []
    client.send_apdu(request)
    assert pump(client, server, log) == [ApduReceived(request)]
    client_frames = [f for who, f in log if who == "client"]
    i_frames = [f for f in client_frames if f.frame_type is FrameType.I]
    assert len(i_frames) == 8  # 1003 bytes (LLC included) in 128-byte information fields
    assert all(len(f.information) <= 128 for f in i_frames)
    assert [f.segmented for f in i_frames] == [True] * 7 + [False]
    assert [f.send_sequence for f in i_frames] == [n % 8 for n in range(8)]
    server_rr = [f for who, f in log if who == "server" and f.frame_type is FrameType.RR]
    assert len(server_rr) == -(-8 // window) - 1  # one RR per full window, none after the last segment
    # The sender never had more than `window` frames unacknowledged.
    outstanding = 0
    for who, f in log:
        if who == "client" and f.frame_type is FrameType.I:
            outstanding += 1
            assert outstanding <= window
        elif who == "server":
            outstanding = 0

    log.clear()
    server.send_apdu(response)
    assert pump(client, server, log) == [ApduReceived(response)]
    polls = [f for who, f in log if who == "client" and f.frame_type is FrameType.RR]
    assert len(polls) == -(-8 // window) - 1 and all(f.poll_final for f in polls)
    assert client.is_idle and server.is_idle


def test_out_of_sequence_i_frame_is_ignored_and_answered_with_rr() -> None:
    client, server = make_pair()
    stray = HdlcFrame(FrameType.I, SERVER, CLIENT, b"\xe6\xe6\x00\x01", send_sequence=3).encode()
    events = server.receive_data(stray)
    assert len(events) == 1 and isinstance(events[0], FrameDiscarded)
    assert "out of sequence" in events[0].reason
    (rr,) = split_frames(server.data_to_send())
    assert rr.frame_type is FrameType.RR and rr.receive_sequence == 0 and rr.poll_final
    # The link still works afterwards.
    client.send_apdu(b"\x01\x02")
    assert server.receive_data(client.data_to_send()) == [ApduReceived(b"\x01\x02")]


def test_go_back_when_the_peer_did_not_take_a_window() -> None:
    params = HdlcParameters(16, 16, 3, 3)
    client, server = make_pair(params, params)
    client.send_apdu(bytes(40))
    frames = split_frames(client.data_to_send())
    assert len(frames) == 3 and [f.poll_final for f in frames] == [False, False, True]
    # The first frame is lost: the server ignores the others and says it still expects N(S)=0.
    events = server.receive_data(b"".join(f.encode() for f in frames[1:]))
    assert [type(e) for e in events] == [FrameDiscarded, FrameDiscarded]
    assert client.receive_data(server.data_to_send()) == []
    resent = split_frames(client.data_to_send())
    assert [f.send_sequence for f in resent] == [0, 1, 2]
    assert server.receive_data(b"".join(f.encode() for f in resent)) == [ApduReceived(bytes(40))]


def test_receive_not_ready_holds_sending() -> None:
    client, server = make_pair(HdlcParameters(16, 16, 1, 1), HdlcParameters(16, 16, 1, 1))
    client.send_apdu(bytes(30))
    first = client.data_to_send()
    assert split_frames(first)[0].segmented
    server.receive_data(first)
    server.data_to_send()
    rnr = HdlcFrame(FrameType.RNR, CLIENT, SERVER, receive_sequence=1).encode()
    assert client.receive_data(rnr) == [PeerBusy()]
    assert client.data_to_send() == b""
    client.poll()
    (poll,) = split_frames(client.data_to_send())
    assert poll.frame_type is FrameType.RR and poll.poll_final
    rr = HdlcFrame(FrameType.RR, CLIENT, SERVER, receive_sequence=1).encode()
    assert client.receive_data(rr) == []
    (second,) = split_frames(client.data_to_send())
    assert second.frame_type is FrameType.I and second.send_sequence == 1


def test_disconnect_and_dm() -> None:
    client, server = make_pair()
    client.disconnect()
    assert server.receive_data(client.data_to_send()) == [Disconnected("client sent DISC")]
    ua = server.data_to_send()
    assert split_frames(ua)[0].frame_type is FrameType.UA
    assert client.receive_data(ua) == [Disconnected("disconnect confirmed by UA")]
    # DISC to a disconnected server gets DM; I-frames too.
    disc = HdlcFrame(FrameType.DISC, SERVER, CLIENT).encode()
    assert server.receive_data(disc) == []
    assert split_frames(server.data_to_send())[0].frame_type is FrameType.DM
    with pytest.raises(StateError):
        client.send_apdu(b"\x01")


def test_frmr_and_dm_reach_the_client() -> None:
    client, _ = make_pair()
    frmr = HdlcFrame(FrameType.FRMR, CLIENT, SERVER, b"\x13\x00\x01").encode()
    assert client.receive_data(frmr) == [FrameRejected(b"\x13\x00\x01")]
    assert client.state is HdlcState.DISCONNECTED
    client2, _ = make_pair()
    dm = HdlcFrame(FrameType.DM, CLIENT, SERVER).encode()
    assert [type(e) for e in client2.receive_data(dm)] == [Disconnected]


def test_fcs_containing_flag_goes_through() -> None:
    _, server = make_pair()
    for n in itertools.count():
        apdu = n.to_bytes(3, "big")
        raw = HdlcFrame(FrameType.I, SERVER, CLIENT, b"\xe6\xe6\x00" + apdu).encode()
        if 0x7E in raw[-3:-1]:
            break
    assert server.receive_data(raw) == [ApduReceived(apdu)]


def test_corrupted_frame_then_good_one() -> None:
    for separator in (b"", b"\x7e"):  # shared flag, then two flags
        _, server = make_pair()
        bad = bytearray(HdlcFrame(FrameType.I, SERVER, CLIENT, b"\xe6\xe6\x00" + bytes(20)).encode())
        bad[15] ^= 0x55  # inside the information field: the FCS fails
        good = HdlcFrame(FrameType.I, SERVER, CLIENT, b"\xe6\xe6\x00\xaa\xbb").encode()
        stream = bytes(bad[:-1]) + separator + good
        events = server.receive_data(stream)
        assert len(events) == 2
        assert isinstance(events[0], FrameDiscarded) and "FCS" in events[0].reason
        assert events[1] == ApduReceived(b"\xaa\xbb")


def test_garbage_and_bad_header_resync() -> None:
    _, server = make_pair()
    already = len(HdlcFrame(FrameType.SNRM, SERVER, CLIENT).encode())
    good = HdlcFrame(FrameType.I, SERVER, CLIENT, b"\xe6\xe6\x00\x42").encode()
    noise = b"\x12\x7e\xa0\x99\x7e\xa8\x10\x01\x02\x03\x04\x05\x06"  # flags with bogus headers
    events = [e for byte in noise + good for e in server.receive_data(bytes((byte,)))]
    # Reported at the SNRM's closing flag, which the noise turned into a bogus opening flag.
    assert isinstance(events[0], FrameDiscarded) and events[0].offset == already - 1
    assert events[-1] == ApduReceived(b"\x42")
    assert all(isinstance(e, FrameDiscarded) for e in events[:-1])


def test_close_inside_a_frame() -> None:
    client, server = make_pair()
    client.send_apdu(b"\x01\x02\x03")
    raw = client.data_to_send()
    assert server.receive_data(raw[:6]) == []
    events = server.receive_data(b"")
    assert [type(e) for e in events] == [FrameDiscarded, Disconnected]
    assert server.state is HdlcState.CLOSED
    with pytest.raises(StateError):
        server.receive_data(b"\x7e")


def test_frame_for_another_address_is_discarded() -> None:
    _, server = make_pair()
    other = HdlcFrame(FrameType.I, server_address(2, 17, 2), CLIENT, b"\xe6\xe6\x00\x01").encode()
    events = server.receive_data(other)
    assert len(events) == 1 and isinstance(events[0], FrameDiscarded)
    assert server.data_to_send() == b""


# ---------------------------------------------------------------------------- every (state, event) pair


def _connection_in(role: Role, state: HdlcState) -> HdlcConnection:
    if role is Role.CLIENT:
        conn = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=SERVER)
    else:
        conn = HdlcConnection(Role.SERVER, server_address=SERVER)
    if state is HdlcState.DISCONNECTED:
        return conn
    if role is Role.CLIENT:
        conn.connect()
        conn.data_to_send()
        if state is HdlcState.AWAITING_CONNECTION:
            return conn
        conn.receive_data(HdlcFrame(FrameType.UA, CLIENT, SERVER).encode())
        if state is HdlcState.AWAITING_DISCONNECTION:
            conn.disconnect()
    else:
        conn.receive_data(HdlcFrame(FrameType.SNRM, SERVER, CLIENT).encode())
        if state in (HdlcState.AWAITING_CONNECTION, HdlcState.AWAITING_DISCONNECTION):
            conn.state = state  # states the server never enters by itself: forced to cover the table
    if state is HdlcState.CLOSED:
        conn.receive_data(b"")
    conn.data_to_send()
    assert conn.state is state
    return conn


def _frame_to(role: Role, frame_type: FrameType) -> bytes:
    dst, src = (CLIENT, SERVER) if role is Role.CLIENT else (SERVER, CLIENT)
    info = b"" if frame_type in (FrameType.RR, FrameType.RNR) else b"\xe6\xe6\x00\x01"
    return HdlcFrame(frame_type, dst, src, info).encode()


@pytest.mark.parametrize(("role", "state", "frame_type"), list(itertools.product(Role, HdlcState, FrameType)))
def test_every_state_and_frame(role: Role, state: HdlcState, frame_type: FrameType) -> None:
    conn = _connection_in(role, state)
    raw = _frame_to(role, frame_type)
    if state is HdlcState.CLOSED:
        with pytest.raises(StateError):
            conn.receive_data(raw)
        return
    events = conn.receive_data(raw)
    if (role, state, frame_type) in TRANSITIONS:
        assert not any(isinstance(e, UnexpectedFrame) for e in events)
    else:
        assert events == [UnexpectedFrame(frame_type, state)]
        assert conn.state is state


@pytest.mark.parametrize(("role", "state", "action"), list(itertools.product(Role, HdlcState, LocalAction)))
def test_every_state_and_local_action(role: Role, state: HdlcState, action: LocalAction) -> None:
    conn = _connection_in(role, state)
    call: Callable[[], None] = {
        LocalAction.CONNECT: conn.connect,
        LocalAction.DISCONNECT: conn.disconnect,
        LocalAction.POLL: conn.poll,
        LocalAction.SEND_APDU: lambda: conn.send_apdu(b"\x01"),
    }[action]
    if (role, state, action) in TRANSITIONS:
        call()
    else:
        with pytest.raises(StateError):
            call()


# ---------------------------------------------------------------------------- fuzzing the link


@given(st.lists(st.binary(max_size=64), max_size=8), st.sampled_from(list(Role)))
def test_fuzz_receive_random(chunks: list[bytes], role: Role) -> None:
    conn = _connection_in(role, HdlcState.CONNECTED)
    for chunk in chunks:
        if chunk:
            for event in conn.receive_data(chunk):
                assert isinstance(event, ApduReceived | Connected | Disconnected | FrameDiscarded
                                  | FrameRejected | UnexpectedFrame | PeerBusy)
        conn.data_to_send()


@given(st.lists(hdlc_frames(), min_size=1, max_size=5), st.lists(st.tuples(st.integers(0, 2000),
       st.integers(0, 255)), max_size=3), st.integers(1, 50))
def test_fuzz_receive_mutated(frames: list[HdlcFrame], edits: list[tuple[int, int]], step: int) -> None:
    stream = bytearray(b"".join(f.encode() for f in frames))
    for index, value in edits:
        stream[index % len(stream)] = value
    conn = _connection_in(Role.SERVER, HdlcState.CONNECTED)
    for pos in range(0, len(stream), step):
        if conn.state is HdlcState.CLOSED:
            break
        conn.receive_data(bytes(stream[pos:pos + step]))
        conn.data_to_send()
    conn.receive_data(b"")
    assert conn.state is HdlcState.CLOSED


def test_a_lost_snrm_or_ua_is_recovered_by_connecting_again() -> None:
    meter = server_address(1, 0x11, 4)
    client = HdlcConnection(Role.CLIENT, server_address=meter, client_address=client_address(0x10))
    server = HdlcConnection(Role.SERVER, server_address=meter)
    client.connect()
    client.data_to_send()  # the SNRM is lost on the line
    assert client.state is HdlcState.AWAITING_CONNECTION
    client.connect()  # the transport's timer fires
    server.receive_data(client.data_to_send())
    server.data_to_send()  # this time the UA is lost
    client.connect()
    server.receive_data(client.data_to_send())  # a repeated SNRM resets the server's link
    events = client.receive_data(server.data_to_send())
    assert any(isinstance(e, Connected) for e in events)
    assert client.state is HdlcState.CONNECTED and server.state is HdlcState.CONNECTED
    assert server.peer_address == client_address(0x10)
    assert client.peer_address == meter


def test_a_lost_ua_to_disc_is_recovered_by_disconnecting_again() -> None:
    meter = server_address(1, 0x11, 4)
    client = HdlcConnection(Role.CLIENT, server_address=meter, client_address=client_address(0x10))
    server = HdlcConnection(Role.SERVER, server_address=meter)
    client.connect()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.disconnect()
    server.receive_data(client.data_to_send())
    server.data_to_send()  # the UA is lost
    client.disconnect()
    server.receive_data(client.data_to_send())  # the server, already disconnected, answers DM
    events = client.receive_data(server.data_to_send())
    assert any(isinstance(e, Disconnected) for e in events)
    assert client.state is HdlcState.DISCONNECTED
