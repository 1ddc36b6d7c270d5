"""Tests for xDLMS InitiateRequest/InitiateResponse, ConfirmedServiceError and the conformance block."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import DecodeError, EncodeError
from protocols.xdlms.conformance import (
    Conformance,
    decode_conformance,
    encode_conformance,
    negotiate_conformance,
)
from protocols.xdlms.initiate import (
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    InitiateError,
    InitiateRequest,
    InitiateResponse,
    ServiceErrorChoice,
    decode_initiate_apdu,
)
from tests.vectors.acse_vectors import INITIATE_VECTORS, NEGOTIATED, PROPOSED


@pytest.mark.parametrize(("name", "source", "hex_apdu", "expected"), INITIATE_VECTORS)
def test_vectors_both_ways(name: str, source: str, hex_apdu: str, expected: object) -> None:
    raw = bytes.fromhex(hex_apdu)
    assert decode_initiate_apdu(raw) == expected
    assert expected.encode() == raw  # type: ignore[attr-defined]
    with pytest.raises(DecodeError):
        decode_initiate_apdu(raw + b"\x00")
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_initiate_apdu(raw[:cut])


def test_conformance_bit_positions() -> None:
    assert Conformance.GENERAL_PROTECTION == 0x400000
    assert Conformance.ACTION == 0x000001
    assert Conformance.GET == 0x000010
    assert Conformance.GET.bit_number == 19
    assert Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ.bit_number == 11
    assert int(PROPOSED) == 0x007E1F
    assert int(NEGOTIATED) == 0x00501F
    assert encode_conformance(PROPOSED) == bytes.fromhex("5F1F0400007E1F")
    assert decode_conformance(bytes.fromhex("005F1F0400007E1F00"), 1) == (PROPOSED, 8)
    with pytest.raises(DecodeError):
        decode_conformance(bytes.fromhex("5F1F0500007E1F"))
    with pytest.raises(EncodeError):
        encode_conformance(1 << 24)
    with pytest.raises(ValueError):
        _ = (Conformance.GET | Conformance.SET).bit_number


def test_negotiate_conformance() -> None:
    supported = (
        Conformance.GET | Conformance.SET | Conformance.ACTION | Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
    )
    granted = negotiate_conformance(PROPOSED, supported)
    assert granted == supported
    assert negotiate_conformance(Conformance.GET | Conformance.RESERVED_ZERO, 0xFFFFFF) == Conformance.GET
    assert negotiate_conformance(Conformance.GENERAL_PROTECTION, Conformance.GET) == Conformance(0)


def test_initiate_request_defaults_and_options() -> None:
    request = InitiateRequest(Conformance.GET, response_allowed=False, proposed_quality_of_service=3)
    raw = request.encode()
    assert raw == bytes.fromhex("01000100010306 5F1F040000 0010 FFFF".replace(" ", ""))
    assert InitiateRequest.decode(raw) == request
    with pytest.raises(EncodeError):
        InitiateRequest(Conformance.GET, client_max_receive_pdu_size=70000).encode()
    with pytest.raises(DecodeError):
        InitiateRequest.decode(bytes.fromhex("01020000065F1F0400007E1F04B0"))


def test_confirmed_service_error_names() -> None:
    error = ConfirmedServiceError.decode(bytes.fromhex("0E010601"))
    assert error.initiate_error is InitiateError.DLMS_VERSION_TOO_LOW
    assert (
        ConfirmedServiceError(ConfirmedServiceErrorChoice.READ, ServiceErrorChoice.ACCESS, 2).initiate_error
        is None
    )
    with pytest.raises(DecodeError):
        ConfirmedServiceError.decode(bytes.fromhex("0E630601"))
    with pytest.raises(DecodeError):
        ConfirmedServiceError.decode(bytes.fromhex("0E016301"))


_conformance = st.integers(0, 0xFFFFFF).map(Conformance)
_u8 = st.integers(0, 255)
_requests = st.builds(
    InitiateRequest,
    _conformance,
    st.integers(0, 0xFFFF),
    _u8,
    st.one_of(st.none(), st.binary(max_size=32)),
    st.booleans(),
    st.one_of(st.none(), _u8),
)
_responses = st.builds(
    InitiateResponse,
    _conformance,
    st.integers(0, 0xFFFF),
    _u8,
    st.integers(0, 0xFFFF),
    st.one_of(st.none(), _u8),
)
_errors = st.builds(
    ConfirmedServiceError,
    st.sampled_from(ConfirmedServiceErrorChoice),
    st.sampled_from(ServiceErrorChoice),
    _u8,
)


@given(st.one_of(_requests, _responses, _errors))
def test_round_trip(apdu: InitiateRequest | InitiateResponse | ConfirmedServiceError) -> None:
    assert decode_initiate_apdu(apdu.encode()) == apdu


@given(st.binary(max_size=60))
def test_fuzz(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_initiate_apdu(raw)


@given(st.sampled_from([v[2] for v in INITIATE_VECTORS]), st.integers(0, 40), _u8)
def test_fuzz_mutated(hex_apdu: str, index: int, value: int) -> None:
    raw = bytearray(bytes.fromhex(hex_apdu))
    raw[index % len(raw)] = value
    try:
        apdu = decode_initiate_apdu(bytes(raw))
    except DecodeError:
        return
    assert decode_initiate_apdu(apdu.encode()) == apdu
