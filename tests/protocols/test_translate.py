"""The protocol translator: layers found, APDUs described with typed data, ciphered ones deciphered."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.codec_peers import AK, CIPHERED_APDU, EK, EXPECTED_ROWS, PLAIN_APDU, SERVER_SYSTEM_TITLE
from protocols.errors import DecodeError, SecurityError
from protocols.hdlc import FrameType, HdlcFrame, client_address, server_address
from protocols.mbus import MbusFrame
from protocols.translate import TranslatorKeys, translate, translate_data
from protocols.wrapper import WrapperFrame
from protocols.xdlms.gbt import split_into_blocks
from tests.vectors.hdlc_vectors import HDLC_FRAMES

GET_CLOCK = bytes.fromhex("C001C100080000010000FF0200")
KEYS = TranslatorKeys(EK, AK, SERVER_SYSTEM_TITLE)


def test_bare_apdu() -> None:
    out = translate(GET_CLOCK)
    assert out["layers"] == []
    apdu = out["apdu"]
    assert apdu["type"] == "GetRequestNormal"
    assert apdu["invoke_id_and_priority"]["invoke_id"] == 1
    assert apdu["attribute_descriptor"] == {
        "type": "CosemAttributeDescriptor", "class_id": 8, "instance_id": "0.0.1.0.0.255", "attribute_id": 2
    }
    json.dumps(out)


def test_wrapper_layer() -> None:
    out = translate(WrapperFrame(0x10, 0x01, GET_CLOCK).encode())
    assert out["layers"] == [
        {"layer": "wrapper", "version": 1, "source_wport": 0x10, "destination_wport": 1, "length": 13}
    ]
    assert out["apdu"]["type"] == "GetRequestNormal"


def test_hdlc_layers_with_llc() -> None:
    frame = HdlcFrame(
        FrameType.I, server_address(1, 0x11, 4), client_address(0x10), b"\xe6\xe6\x00" + GET_CLOCK,
        send_sequence=2, receive_sequence=3,
    ).encode()
    out = translate(frame)
    hdlc, llc = out["layers"]
    assert hdlc["frames"][0]["type"] == "I"
    assert hdlc["frames"][0]["send_sequence"] == 2
    assert hdlc["frames"][0]["receive_sequence"] == 3
    assert llc == {"layer": "llc", "direction": "command"}
    assert out["apdu"]["attribute_descriptor"]["class_id"] == 8


def test_profile_buffer_shown_as_rows() -> None:
    out = translate(PLAIN_APDU)
    rows = out["apdu"]["result"]["rows"]
    assert len(rows) == 96
    moment, a_plus, a_minus = EXPECTED_ROWS[0]
    assert rows[0] == [moment.isoformat() + "+01:00", a_plus, a_minus]


def test_ciphered_without_keys_shows_the_header() -> None:
    out = translate(CIPHERED_APDU)["apdu"]
    assert out["tag"] == "GLO_GET_RESPONSE"
    assert out["security_header"]["invocation_counter"] == 1
    assert out["security_header"]["encrypted"] is True
    assert out["deciphered"] is None


def test_ciphered_with_keys_is_deciphered() -> None:
    out = translate(CIPHERED_APDU, KEYS)["apdu"]["deciphered"]
    assert out["type"] == "GetResponseNormal"
    assert out["result"]["rows"][95][1] == EXPECTED_ROWS[95][1]


def test_wrong_key_is_a_security_error() -> None:
    with pytest.raises(SecurityError):
        translate(CIPHERED_APDU, TranslatorKeys(bytes(16), AK, SERVER_SYSTEM_TITLE))


def test_service_specific_needs_the_system_title() -> None:
    with pytest.raises(DecodeError, match="system-title"):
        translate(CIPHERED_APDU, TranslatorKeys(EK, AK, None))


@given(st.binary(max_size=120))
@settings(max_examples=1500)
def test_any_bytes_give_a_description_or_a_typed_error(raw: bytes) -> None:
    try:
        out = translate(raw)
    except DecodeError:
        return
    json.dumps(out)


@given(st.sampled_from([GET_CLOCK, PLAIN_APDU[:300], CIPHERED_APDU[:200]]), st.data())
@settings(max_examples=800)
def test_mutated_apdus_give_a_description_or_a_typed_error(raw: bytes, data: st.DataObject) -> None:
    mutable = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        mutable[data.draw(st.integers(0, len(mutable) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError, SecurityError):
        json.dumps(translate(bytes(mutable), KEYS))


# --- framings found and said -----------------------------------------------------------------

PUSH = bytes.fromhex("0F40000000000201" "06000016DC")  # DataNotification, no date-time, one value
METER, PUSH_SOURCE = server_address(1, 0x11, 2), client_address(0x10)


def _ui(information: bytes, *, segmented: bool = False) -> bytes:
    return HdlcFrame(FrameType.UI, METER, PUSH_SOURCE, information, segmented=segmented).encode()


def test_llc_header_and_apdu_is_the_han_framing_not_a_gateway_request() -> None:
    out = translate(b"\xe6\xe7\x00" + PUSH)
    assert out["framing"] == "han-llc"
    assert out["layers"] == [{"layer": "llc", "direction": "response"}]
    assert out["apdu"]["type"] == "DataNotification"
    assert "LLC header" in out["notes"][0] and "gateway" in out["notes"][0]


def test_a_gateway_request_with_an_address_stays_a_gateway_request() -> None:
    out = translate(b"\xe6\x01\x03\xaa\xbb\xcc" + GET_CLOCK)
    assert out["framing"] == "apdu"
    assert out["apdu"]["type"] == "GatewayRequest"
    assert out["apdu"]["apdu"]["type"] == "GetRequestNormal"


def test_a_gateway_request_carrying_garbage_is_an_error_not_json() -> None:
    with pytest.raises(DecodeError, match="in the APDU it carries"):
        translate(b"\xe6\x01\x01\xaa\xc4")


def test_undecodable_data_is_an_error_not_json() -> None:
    # A GET response whose array announces two elements and carries one.
    with pytest.raises(DecodeError, match="in its result"):
        translate(bytes.fromhex("C401C100" "0102" "1101"))


def test_tagged_push_date_time_is_read_with_a_note() -> None:
    out = translate(bytes.fromhex("E6E7000F40000000090C07E3020401173416FF800000020106000016DC"))
    assert out["apdu"]["date_time"]["text"] == "2019-02-04 23:52:22"
    assert out["apdu"]["date_time_tagged"] is True
    assert any("tagged octet-string" in note for note in out["notes"])


def test_several_hdlc_frames_give_several_apdus() -> None:
    out = translate(_ui(b"\xe6\xe7\x00" + PUSH) + _ui(b"\xe6\xe7\x00" + GET_CLOCK))
    assert out["framing"] == "hdlc"
    assert [apdu["type"] for apdu in out["apdus"]] == ["DataNotification", "GetRequestNormal"]


def test_segmented_frames_are_joined_and_a_missing_end_is_an_error() -> None:
    head, tail = b"\xe6\xe7\x00" + PUSH[:6], PUSH[6:]
    out = translate(_ui(head, segmented=True) + _ui(tail))
    assert out["apdu"]["body"]["value"][0]["value"] == 5852
    assert [f["segmented"] for f in out["layers"][0]["frames"]] == [True, False]
    with pytest.raises(DecodeError, match="continues in frames not given"):
        translate(_ui(head, segmented=True))


def _gbt_frames(apdu: bytes, size: int) -> list[bytes]:
    blocks = [block.encode() for block in split_into_blocks(apdu, size)]
    return [_ui((b"\xe6\xe7\x00" if i == 0 else b"") + block) for i, block in enumerate(blocks)]


def test_gbt_blocks_in_hdlc_frames_are_reassembled() -> None:
    frames = _gbt_frames(PUSH, 4)
    out = translate(b"".join(frames))
    assert out["apdu"]["type"] == "DataNotification"
    blocks = out["layers"][-1]
    assert blocks["layer"] == "general-block-transfer"
    assert [b["block_number"] for b in blocks["blocks"]] == [1, 2, 3, 4]  # 13 bytes in blocks of 4
    assert [b["last_block"] for b in blocks["blocks"]] == [False, False, False, True]


@pytest.mark.parametrize(
    ("pick", "message"),
    [
        (lambda f: f[:2], "its last block is not given"),
        (lambda f: [f[0], f[2]], "block 3 where 2 was expected"),
        (lambda f: f[1:], "starts at block 2"),
        (lambda f: [f[0], f[1], f[0], f[1], f[2]], "block 1 starts a new stream"),
        (lambda f: [f[0], _ui(GET_CLOCK), f[1], f[2]], "interrupts a general-block-transfer stream"),
    ],
)
def test_gbt_streams_with_lost_blocks_are_errors(pick: object, message: str) -> None:
    frames = _gbt_frames(PUSH, 4)
    with pytest.raises(DecodeError, match=message):
        translate(b"".join(pick(frames)))  # type: ignore[operator]


def test_bare_data_with_translate_data() -> None:
    out = translate_data(bytes.fromhex("0202" "0906" "0100010700FF" "06000016DC"))
    assert out["framing"] == "a-xdr-data"
    assert out["data"]["value"][1] == {"type": "double-long-unsigned", "value": 5852}
    with pytest.raises(DecodeError):
        translate_data(bytes.fromhex("0202" "0906" "0100"))


def test_m_bus_frame_with_a_transport_layer_header() -> None:
    raw = MbusFrame(0x08, 0x05, 0x7D, bytes.fromhex("2A000000") + GET_CLOCK).encode()
    out = translate(raw)
    assert out["framing"] == "m-bus"
    assert out["layers"][0]["frames"][0]["transport_header"] == "2A000000"
    assert out["apdu"]["type"] == "GetRequestNormal"


def test_a_ua_with_an_odd_parameter_group_is_described_with_what_was_odd() -> None:
    ua = dict((n, h) for n, _, h, _ in HDLC_FRAMES)["ua-gurux-server-group-length-0"]
    out = translate(bytes.fromhex(ua))
    (frame,) = out["layers"][0]["frames"]
    assert frame["type"] == "UA"
    assert (frame["parameters"]["max_info_tx"], frame["parameters"]["window_rx"]) == (128, 1)
    assert frame["parameter_notes"] == ["the group length says 0 bytes but 18 follow: read the 18",
                                        "window size receive 131073 is not a window of 1 to 7: the default 1 used"]
    assert out["notes"] == [f"HDLC frame 1 (UA) parameters: {note}" for note in frame["parameter_notes"]]
    sound = dict((n, h) for n, _, h, _ in HDLC_FRAMES)["ua-with-parameters"]
    assert "parameter_notes" not in translate(bytes.fromhex(sound))["layers"][0]["frames"][0]
