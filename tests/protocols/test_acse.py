"""Tests for the BER subset and the ACSE APDUs (AARQ, AARE, RLRQ, RLRE)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.acse import (
    Aare,
    Aarq,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    ApplicationContextName,
    AssociationResult,
    MechanismName,
    ReleaseRequestReason,
    ReleaseResponseReason,
    ResultSource,
    Rlre,
    Rlrq,
    decode_acse_apdu,
)
from protocols.acse.ber import (
    decode_bit_string,
    decode_integer,
    decode_length,
    decode_object_identifier,
    decode_tag,
    encode_bit_string,
    encode_integer,
    encode_length,
    encode_object_identifier,
    encode_tlv,
)
from protocols.errors import DecodeError, SecurityError
from protocols.security import (
    CipheredApduTag,
    ServiceSpecificCipheredApdu,
    cipher,
    decipher,
    hls_gmac_response,
    verify_hls_gmac_response,
)
from protocols.xdlms.conformance import Conformance
from protocols.xdlms.initiate import (
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    InitiateRequest,
    InitiateResponse,
    ServiceErrorChoice,
)
from tests.vectors.acse_vectors import ACSE_VECTORS, INITIATE_VECTORS, PROPOSED
from tests.vectors.security_vectors import (
    AUTHENTICATION_KEY,
    CLIENT_SYSTEM_TITLE,
    ENCRYPTION_KEY,
    SERVER_SYSTEM_TITLE,
)

KEYS = {"encryption_key": ENCRYPTION_KEY, "authentication_key": AUTHENTICATION_KEY}


@pytest.mark.parametrize(("name", "source", "hex_apdu", "expected"), ACSE_VECTORS)
def test_vectors_both_ways(name: str, source: str, hex_apdu: str, expected: object) -> None:
    raw = bytes.fromhex(hex_apdu)
    assert decode_acse_apdu(raw) == expected
    assert expected.encode() == raw  # type: ignore[attr-defined]
    with pytest.raises(DecodeError):
        decode_acse_apdu(raw + b"\x00")
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_acse_apdu(raw[:cut])


def test_ciphered_aarq_user_information_deciphers() -> None:
    aarq = decode_acse_apdu(bytes.fromhex(ACSE_VECTORS[3][2]))
    assert isinstance(aarq, Aarq)
    assert isinstance(aarq.user_information, ServiceSpecificCipheredApdu)
    assert aarq.calling_ap_title is not None
    plain = decipher(aarq.user_information.content, system_title=aarq.calling_ap_title, **KEYS)
    assert plain == bytes.fromhex(INITIATE_VECTORS[1][2])


def test_hls_gmac_association_with_ciphered_initiate() -> None:
    """Mechanism 5 with a glo-initiate-request, then both f() checks: the four passes end to end."""
    request = InitiateRequest(PROPOSED, client_max_receive_pdu_size=1200)
    content = cipher(
        request.encode(),
        security_control=0x30,
        system_title=CLIENT_SYSTEM_TITLE,
        invocation_counter=1,
        **KEYS,
    )
    aarq = Aarq(
        application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        calling_ap_title=CLIENT_SYSTEM_TITLE,
        sender_acse_requirements=True,
        mechanism_name=MechanismName.HLS_GMAC,
        calling_authentication_value=b"K56iVagY",
        user_information=ServiceSpecificCipheredApdu(CipheredApduTag.GLO_INITIATE_REQUEST, content),
    )
    raw = aarq.encode()
    assert raw[:2] == bytes.fromhex("6055")
    assert raw[13:25] == bytes.fromhex("A60A04084D4D4D0000000001")
    received = Aarq.decode(raw)
    assert received == aarq
    assert isinstance(received.user_information, ServiceSpecificCipheredApdu)
    assert received.calling_ap_title == CLIENT_SYSTEM_TITLE
    plain = decipher(received.user_information.content, system_title=received.calling_ap_title, **KEYS)
    assert InitiateRequest.decode(plain) == request
    # Pass 3/4 with the Green Book's example material.
    f_stoc = hls_gmac_response(b"P6wRJ21F", system_title=CLIENT_SYSTEM_TITLE, invocation_counter=1, **KEYS)
    assert f_stoc.hex().upper() == "10000000011A52FE7DD3E72748973C1E28"
    assert verify_hls_gmac_response(f_stoc, b"P6wRJ21F", system_title=CLIENT_SYSTEM_TITLE, **KEYS) == 1
    with pytest.raises(SecurityError):
        verify_hls_gmac_response(f_stoc, b"P6wRJ21F", system_title=SERVER_SYSTEM_TITLE, **KEYS)


def test_dlms_cosem_reads_our_aarq() -> None:
    acse = pytest.importorskip("dlms_cosem.protocol.acse")
    raw = bytes.fromhex(ACSE_VECTORS[3][2])
    theirs = acse.ApplicationAssociationRequest.from_bytes(Aarq.decode(raw).encode())
    assert theirs.system_title == SERVER_SYSTEM_TITLE
    assert theirs.authentication_value == b"12345678"
    assert theirs.ciphered


def test_tolerates_unknown_fields_and_protocol_version() -> None:
    raw = bytes.fromhex(ACSE_VECTORS[1][2])
    body = raw[2:]
    # protocol-version [0] version1, and an unknown [28] field, both ignored.
    extended = encode_tlv(0x60, bytes.fromhex("80020780") + body[:11] + bytes.fromhex("9C0101") + body[11:])
    assert Aarq.decode(extended) == ACSE_VECTORS[1][3]


def test_aare_provider_diagnostic_and_unknown_values() -> None:
    aare = Aare(
        result=AssociationResult.REJECTED_TRANSIENT,
        result_source=ResultSource.ACSE_SERVICE_PROVIDER,
        diagnostic=AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION,
    )
    raw = aare.encode()
    assert raw == bytes.fromhex("6117A109060760857405080101A203020102A305A203020102")
    assert Aare.decode(raw) == aare
    odd = Aare(diagnostic=99)
    decoded = Aare.decode(odd.encode())
    assert decoded.diagnostic == 99
    assert AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE == 13


def test_rejections() -> None:
    with pytest.raises(DecodeError):
        Aarq.decode(bytes.fromhex("6100"))
    with pytest.raises(DecodeError):  # no application-context-name
        Aarq.decode(bytes.fromhex("6000"))
    with pytest.raises(DecodeError):  # unknown application context 2.16.756.5.8.1.9
        Aarq.decode(bytes.fromhex("600BA109060760857405080109"))
    with pytest.raises(DecodeError):  # not a DLMS UA OID
        Aarq.decode(bytes.fromhex("600BA10906072A857405080101"))
    with pytest.raises(DecodeError):
        Aare.decode(bytes.fromhex("610BA109060760857405080101"))
    with pytest.raises(DecodeError):  # indefinite length
        decode_acse_apdu(bytes.fromhex("628080010000 00"))
    with pytest.raises(DecodeError):
        decode_acse_apdu(b"")
    with pytest.raises(DecodeError):
        decode_acse_apdu(bytes.fromhex("64 00"))


def test_ber_primitives() -> None:
    assert encode_length(0x7F) == b"\x7f"
    assert encode_length(0x80) == b"\x81\x80"
    assert encode_length(0x1234) == b"\x82\x12\x34"
    assert decode_length(b"\x82\x12\x34", 0) == (0x1234, 3)
    assert decode_tag(b"\x5f\x1f", 0) == (0x5F1F, 2)
    assert encode_object_identifier((2, 16, 756, 5, 8, 1, 1)) == bytes.fromhex("60857405080101")
    assert decode_object_identifier(bytes.fromhex("60857405080205")) == (2, 16, 756, 5, 8, 2, 5)
    assert encode_integer(0) == b"\x00"
    assert encode_integer(128) == b"\x00\x80"
    assert encode_integer(-1) == b"\xff"
    assert encode_integer(-129) == b"\xff\x7f"
    assert decode_integer(b"\xff\x7f") == -129
    assert encode_bit_string("1") == b"\x07\x80"
    assert decode_bit_string(b"\x07\x80") == "1"
    long_value = bytes(300)
    tlv = encode_tlv(0x9D, long_value)
    assert tlv[:4] == b"\x9d\x82\x01\x2c"
    for bad in (b"", b"\x80", b"\x85\x00\x00\x00\x00\x00"):
        with pytest.raises(DecodeError):
            decode_length(bad, 0)
    with pytest.raises(DecodeError):
        decode_object_identifier(b"\x85")
    with pytest.raises(DecodeError):
        decode_bit_string(b"\x08\x00")


@given(st.integers(-(2**40), 2**40))
def test_integer_round_trip(value: int) -> None:
    assert decode_integer(encode_integer(value)) == value


@given(st.lists(st.integers(0, 2**32), min_size=1, max_size=8), st.integers(0, 2), st.integers(0, 39))
def test_oid_round_trip(tail: list[int], first: int, second: int) -> None:
    arcs = (first, second, *tail)
    assert decode_object_identifier(encode_object_identifier(arcs)) == arcs


_bytes = st.binary(max_size=40)
_opt_bytes = st.one_of(st.none(), _bytes)
_opt_int = st.one_of(st.none(), st.integers(-(2**31), 2**31))
_conformance = st.integers(0, 0xFFFFFF).map(Conformance)
_user_info = st.one_of(
    st.none(),
    st.builds(
        InitiateRequest,
        _conformance,
        st.integers(0, 0xFFFF),
        dedicated_key=st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
    ),
    st.builds(InitiateResponse, _conformance, st.integers(0, 0xFFFF)),
    st.builds(
        ConfirmedServiceError,
        st.just(ConfirmedServiceErrorChoice.INITIATE_ERROR),
        st.just(ServiceErrorChoice.INITIATE),
        st.integers(0, 4),
    ),
    st.builds(
        ServiceSpecificCipheredApdu,
        st.sampled_from([CipheredApduTag.GLO_INITIATE_REQUEST, CipheredApduTag.DED_INITIATE_RESPONSE]),
        st.binary(min_size=5, max_size=200),
    ),
)
_aarqs = st.builds(
    Aarq,
    st.sampled_from(ApplicationContextName),
    _user_info,
    st.one_of(st.none(), st.sampled_from(MechanismName)),
    _opt_bytes,
    st.booleans(),
    _opt_bytes,
    _opt_bytes,
    _opt_int,
    _opt_int,
    _opt_bytes,
    _opt_bytes,
    _opt_int,
    _opt_int,
    _opt_bytes,
)
_aares = st.one_of(
    st.builds(
        Aare,
        st.sampled_from(AssociationResult),
        st.sampled_from(AcseServiceUserDiagnostic),
        st.just(ResultSource.ACSE_SERVICE_USER),
        st.sampled_from(ApplicationContextName),
        _user_info,
        st.one_of(st.none(), st.sampled_from(MechanismName)),
        _opt_bytes,
        st.booleans(),
        _opt_bytes,
        _opt_bytes,
        _opt_int,
        _opt_int,
        _opt_bytes,
    ),
    st.builds(
        Aare,
        st.sampled_from(AssociationResult),
        st.sampled_from(AcseServiceProviderDiagnostic),
        st.just(ResultSource.ACSE_SERVICE_PROVIDER),
    ),
)
_releases = st.one_of(
    st.builds(Rlrq, st.one_of(st.none(), st.sampled_from(ReleaseRequestReason)), _user_info),
    st.builds(Rlre, st.one_of(st.none(), st.sampled_from(ReleaseResponseReason)), _user_info),
)


@given(st.one_of(_aarqs, _aares, _releases))
def test_round_trip(apdu: Aarq | Aare | Rlrq | Rlre) -> None:
    assert decode_acse_apdu(apdu.encode()) == apdu


@given(st.binary(max_size=120))
def test_fuzz_random(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_acse_apdu(raw)


@given(
    st.sampled_from([v[2] for v in ACSE_VECTORS]),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_fuzz_mutated(hex_apdu: str, edits: list[tuple[int, int]]) -> None:
    raw = bytearray(bytes.fromhex(hex_apdu))
    for index, value in edits:
        raw[index % len(raw)] = value
    try:
        apdu = decode_acse_apdu(bytes(raw))
    except DecodeError:
        return
    assert decode_acse_apdu(apdu.encode()) == apdu
