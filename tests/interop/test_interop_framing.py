"""HDLC frames and wrapper PDUs: ours against gurux and dlms-cosem, byte for byte and decoded."""

from __future__ import annotations

import pytest

from protocols.hdlc import (
    LLC_COMMAND,
    LLC_RESPONSE,
    Connected,
    FrameType,
    HdlcAddress,
    HdlcConnection,
    HdlcFrame,
    HdlcParameters,
    HdlcState,
    Role,
)
from protocols.wrapper import ApduReceived, WrapperConnection, WrapperFrame
from tests.peers import dlms_cosem_peer as dc
from tests.peers import gurux_peer as gx
from tests.vectors.hdlc_vectors import HDLC_FRAMES

CLIENT = HdlcAddress(16)
SERVER = HdlcAddress(1)  # one-byte server address, as both peers send it by default


def _client_frame(kind: FrameType, **fields: object) -> HdlcFrame:
    return HdlcFrame(kind, SERVER, CLIENT, **fields)  # type: ignore[arg-type]


def _server_frame(kind: FrameType, **fields: object) -> HdlcFrame:
    return HdlcFrame(kind, CLIENT, SERVER, **fields)  # type: ignore[arg-type]


def test_snrm_and_disc_are_byte_identical_to_both_peers() -> None:
    snrm = _client_frame(FrameType.SNRM).encode()
    assert snrm == gx.hdlc_snrm() == dc.hdlc_snrm() == bytes.fromhex("7ea0070321930f017e")
    disc = _client_frame(FrameType.DISC).encode()
    assert disc == gx.hdlc_disc() == dc.hdlc_disc()
    for frame in (snrm, disc):
        decoded, end = HdlcFrame.decode(frame + b"\x7e\x00")  # trailing junk is left alone
        assert end == len(frame)
        assert decoded.encode() == frame


@pytest.mark.parametrize("rsn", range(8))
def test_rr_from_dlms_cosem_decodes_in_ours(rsn: int) -> None:
    sent = dc.hdlc_rr(rsn)
    decoded, _ = HdlcFrame.decode(sent)
    assert decoded.frame_type is FrameType.RR
    assert (decoded.receive_sequence, decoded.destination, decoded.source) == (rsn, SERVER, CLIENT)
    assert _client_frame(FrameType.RR, receive_sequence=rsn).encode() == sent


def test_i_frame_with_aarq_matches_gurux_and_dlms_cosem() -> None:
    sent = gx.hdlc_aarq()
    decoded, end = HdlcFrame.decode(sent)
    assert end == len(sent)
    assert decoded.frame_type is FrameType.I
    assert (decoded.send_sequence, decoded.receive_sequence, decoded.segmented) == (0, 0, False)
    assert decoded.information.startswith(LLC_COMMAND)
    aarq = decoded.information[len(LLC_COMMAND):]
    assert aarq == gx.aarq()
    ours = _client_frame(FrameType.I, information=LLC_COMMAND + aarq).encode()
    assert ours == sent == dc.hdlc_i_frame(LLC_COMMAND + aarq, 0, 0)


def test_frames_parse_one_byte_at_a_time() -> None:
    from protocols.hdlc.frame import parse_frame

    sent = gx.hdlc_aarq()
    for cut in range(1, len(sent)):
        assert parse_frame(sent[:cut], 0) is None
    frame, end = HdlcFrame.decode(sent)
    assert end == len(sent) and frame.information.endswith(gx.aarq())


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (_server_frame(FrameType.UA), {"type": "UA", "ssn": None, "rsn": None, "information": b""}),
        (_server_frame(FrameType.RR, receive_sequence=3), {"type": "RR", "ssn": None, "rsn": 3, "information": b""}),
        (_server_frame(FrameType.DISC), {"type": "DISC", "ssn": None, "rsn": None, "information": b""}),
        (
            _server_frame(FrameType.I, send_sequence=2, receive_sequence=5, information=LLC_RESPONSE + b"\xc4\x01"),
            {"type": "I", "ssn": 2, "rsn": 5, "information": LLC_RESPONSE + b"\xc4\x01"},
        ),
    ],
    ids=["UA", "RR", "DISC", "I"],
)
def test_server_frames_from_ours_decode_in_dlms_cosem(frame: HdlcFrame, expected: dict[str, object]) -> None:
    theirs = dc.decode_hdlc_frame(frame.encode())
    assert {key: theirs[key] for key in expected} == expected
    assert theirs["destination"] == 16
    assert theirs["source"] == (1, None)
    if expected["type"] != "RR":  # dlms-cosem's ReceiveReadyFrame has no `final` value (an unbound name)
        assert theirs["final"] is True


def test_ua_with_parameters_decodes_in_dlms_cosem() -> None:
    from protocols.hdlc import HdlcParameters

    info = HdlcParameters(max_info_tx=128, max_info_rx=128, window_tx=1, window_rx=1).encode()
    theirs = dc.decode_hdlc_frame(_server_frame(FrameType.UA, information=info).encode())
    assert theirs["type"] == "UA"
    assert theirs["information"] == info


def test_wrapper_both_ways() -> None:
    aarq = gx.aarq()
    sent = gx.wrapper_aarq()
    assert sent == WrapperFrame(16, 1, aarq).encode() == dc.wrapper(aarq)
    frame, end = WrapperFrame.decode(sent + b"\x00\x01")
    assert (frame.source, frame.destination, frame.apdu, end) == (16, 1, aarq, len(sent))
    assert dc.decode_wrapper(WrapperFrame(1, 16, b"\xc4\x01\xc1\x00\x06\x00\x00\x04\xd2").encode()) == {
        "version": 1,
        "source_wport": 1,
        "destination_wport": 16,
        "apdu": b"\xc4\x01\xc1\x00\x06\x00\x00\x04\xd2",
    }


def test_wrapper_connection_takes_peer_bytes_one_at_a_time() -> None:
    sent = dc.wrapper(gx.aarq(), source_wport=16, destination_wport=1)
    connection = WrapperConnection(local_port=1, remote_port=16)
    events = []
    for byte in sent:
        events.extend(connection.receive_data(bytes((byte,))))
    received = [event for event in events if isinstance(event, ApduReceived)]
    assert len(received) == 1
    assert received[0].apdu == gx.aarq()


@pytest.mark.parametrize("proposed", [HdlcParameters(), HdlcParameters(1024, 1024, 1, 1)])
def test_our_client_connects_to_gurux_meter_server_on_its_odd_ua(proposed: HdlcParameters) -> None:
    """gurux's meter server answers our SNRM with a group length of 0 and 18 bytes after it (the vector
    ``ua-gurux-server-group-length-0``): our client takes that UA instead of repeating the SNRM."""
    client = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=SERVER, parameters=proposed)
    client.connect()
    ua = gx.hdlc_server_answer(client.data_to_send())
    vectors = {name: bytes.fromhex(hexa) for name, _, hexa, _ in HDLC_FRAMES}
    assert ua == vectors["ua-gurux-server-group-length-0"]
    (event,) = client.receive_data(ua)
    assert isinstance(event, Connected) and client.state is HdlcState.CONNECTED
    assert event.parameters == HdlcParameters(128, 128, 1, 1)
    assert event.notes[0] == "the group length says 0 bytes but 18 follow: read the 18"
