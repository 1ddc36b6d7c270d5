"""IEC 62056-21 mode E opening messages and the handshake state machine of both sides."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import DecodeError, EncodeError, StateError
from protocols.iec62056_21 import (
    BAUD_RATES,
    TRANSITIONS,
    AcknowledgementMessage,
    HandshakeFailed,
    IdentificationMessage,
    ModeEHandshake,
    ModeERole,
    ModeEState,
    SignOnRequest,
    SwitchToHdlc,
    baud_char,
    baud_rate,
    decode_message,
)
from tests.vectors.hdlc_vectors import MODE_E_MESSAGES

EXPECTED = {
    "sign-on": SignOnRequest(""),
    "identification-mode-e": IdentificationMessage("VMQ", "5", "", ("2",)),
    "ack-mode-e-9600": AcknowledgementMessage("5", "2", "2"),
}


@pytest.mark.parametrize(
    ("name", "source", "hexa", "text"), MODE_E_MESSAGES, ids=[m[0] for m in MODE_E_MESSAGES]
)
def test_vectors_both_ways(name: str, source: str, hexa: str, text: str) -> None:
    raw = bytes.fromhex(hexa)
    assert source and raw == text.encode("ascii")
    message = decode_message(raw)
    assert message == EXPECTED[name]
    assert message.encode() == raw


def test_messages_with_fields() -> None:
    assert SignOnRequest("12345678").encode() == b"/?12345678!\r\n"
    assert SignOnRequest.decode(b"/?12345678!\r\n").device_address == "12345678"
    ident = IdentificationMessage.decode(b"/LGZ5\\2ZMD3104107.B34\r\n")
    assert (ident.manufacturer, ident.baud_rate, ident.identification) == ("LGZ", 9600, "ZMD3104107.B34")
    assert ident.supports_mode_e
    plain = IdentificationMessage.decode(b"/ISk5MT174-0001\r\n")
    assert not plain.supports_mode_e and plain.identification == "MT174-0001"
    assert AcknowledgementMessage.decode(b"\x06050\r\n") == AcknowledgementMessage("5", "0", "0")
    assert not AcknowledgementMessage("5", "0", "0").is_mode_e


def test_baud_table() -> None:
    assert [baud_rate(c) for c in "0123456"] == [300, 600, 1200, 2400, 4800, 9600, 19200]
    assert all(baud_char(rate) == char for char, rate in BAUD_RATES.items())
    with pytest.raises(DecodeError):
        baud_rate("A")
    with pytest.raises(EncodeError):
        baud_char(115200)


@pytest.mark.parametrize("raw", [b"", b"/?", b"/?!\n", b"/AB5\r\n", b"/1235\\2\r\n", b"/ABC9\\2\r\n",
                                 b"\x062x2\r\n", b"\x06252\r", b"/ABC5\\\r\n", b"hello\r\n"])
def test_bad_messages(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(raw)


def test_encode_refuses_bad_fields() -> None:
    with pytest.raises(EncodeError):
        IdentificationMessage("AB", "5", "x").encode()
    with pytest.raises(EncodeError):
        IdentificationMessage("ABC", "9", "x").encode()
    with pytest.raises(EncodeError):
        SignOnRequest("a!b").encode()
    with pytest.raises(EncodeError):
        AcknowledgementMessage("x").encode()


def _run(
    client: ModeEHandshake, server: ModeEHandshake, byte_by_byte: bool
) -> tuple[list[object], list[object]]:
    client_events: list[object] = []
    server_events: list[object] = []
    client.start()
    for _ in range(4):
        for src, dst, sink in ((client, server, server_events), (server, client, client_events)):
            data = src.data_to_send()
            if dst.state in (ModeEState.DONE, ModeEState.FAILED):
                continue
            chunks = [bytes((b,)) for b in data] if byte_by_byte else [data] if data else []
            for chunk in chunks:
                sink.extend(dst.receive_data(chunk))
    return client_events, server_events


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_handshake_both_sides(byte_by_byte: bool) -> None:
    client = ModeEHandshake(ModeERole.CLIENT, max_baud_rate=9600)
    server = ModeEHandshake(ModeERole.SERVER, identification=IdentificationMessage("VMQ", "6", "METER01"))
    client_events, server_events = _run(client, server, byte_by_byte)
    assert client_events == [SwitchToHdlc(9600)]
    assert server_events == [SwitchToHdlc(9600)]
    assert client.state is ModeEState.DONE and server.state is ModeEState.DONE


def test_client_sends_the_ack_of_the_vector() -> None:
    client = ModeEHandshake(ModeERole.CLIENT)
    client.start()
    assert client.data_to_send() == bytes.fromhex("2f3f210d0a")
    assert client.receive_data(b"\x00\x7f" + bytes.fromhex("2f564d51355c320d0a")) == [SwitchToHdlc(9600)]
    assert client.data_to_send() == bytes.fromhex("063235320d0a")
    with pytest.raises(StateError):
        client.receive_data(b"\x7e")


def test_failures_are_events() -> None:
    client = ModeEHandshake(ModeERole.CLIENT)
    client.start()
    events = client.receive_data(b"/ISk5MT174\r\n")
    assert len(events) == 1 and isinstance(events[0], HandshakeFailed) and "mode E" in events[0].reason
    server = ModeEHandshake(ModeERole.SERVER, identification=IdentificationMessage("ABC", "5", "X"))
    assert server.receive_data(b"/?!\r\n") == []
    assert server.data_to_send() == b"/ABC5\\2X\r\n"
    failed = server.receive_data(b"\x06050\r\n")
    assert len(failed) == 1 and isinstance(failed[0], HandshakeFailed)
    other = ModeEHandshake(ModeERole.SERVER, device_address="42",
                           identification=IdentificationMessage("ABC", "5", "X"))
    assert other.receive_data(b"/?17!\r\n") == [] and other.data_to_send() == b""
    assert other.receive_data(b"/?42!\r\n") == [] and other.data_to_send() == b"/ABC5\\2X\r\n"
    closed = ModeEHandshake(ModeERole.CLIENT)
    closed.start()
    assert closed.receive_data(b"") == [HandshakeFailed("line closed during the mode E handshake")]


MESSAGES = {
    SignOnRequest: SignOnRequest().encode(),
    IdentificationMessage: IdentificationMessage("ABC", "5", "X").encode(),
    AcknowledgementMessage: AcknowledgementMessage("5").encode(),
}


@pytest.mark.parametrize(("role", "state", "kind"), list(itertools.product(ModeERole, ModeEState, MESSAGES)))
def test_every_state_and_message(role: ModeERole, state: ModeEState, kind: type) -> None:
    conn = ModeEHandshake(role, identification=IdentificationMessage("ABC", "5", "X"))
    conn.state = state
    if state in (ModeEState.DONE, ModeEState.FAILED):
        with pytest.raises(StateError):
            conn.receive_data(MESSAGES[kind])
        return
    events = conn.receive_data(MESSAGES[kind])
    if (role, state, kind) in TRANSITIONS:
        assert not any(isinstance(e, HandshakeFailed) for e in events)
    else:
        assert len(events) == 1 and isinstance(events[0], HandshakeFailed)
        assert conn.state is ModeEState.FAILED


@given(st.binary(max_size=80))
def test_fuzz_decoders(data: bytes) -> None:
    try:
        message = decode_message(data)
    except DecodeError:
        return
    assert message.encode() == data


@given(st.binary(max_size=200), st.sampled_from(list(ModeERole)))
def test_fuzz_handshake(data: bytes, role: ModeERole) -> None:
    conn = ModeEHandshake(role, identification=IdentificationMessage("ABC", "5", "X"))
    if role is ModeERole.CLIENT:
        conn.start()
    for byte in data:
        if conn.state in (ModeEState.DONE, ModeEState.FAILED):
            break
        for event in conn.receive_data(bytes((byte,))):
            assert isinstance(event, SwitchToHdlc | HandshakeFailed)
