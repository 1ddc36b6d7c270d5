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
from protocols.translate import TranslatorKeys, translate
from protocols.wrapper import WrapperFrame

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
