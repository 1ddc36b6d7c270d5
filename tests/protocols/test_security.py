"""Tests for security suite 0, ciphered envelopes, HLS-GMAC, key wrap and key transfer."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.axdr import Data, DataTag, decode_data_exact, encode_data
from protocols.errors import DecodeError, EncodeError, SecurityError
from protocols.security import (
    AgreedKey,
    CipheredApduTag,
    GeneralCiphering,
    GeneralDedCiphering,
    GeneralGloCiphering,
    IdentifiedKey,
    KeyId,
    SecurityControlField,
    ServiceSpecificCipheredApdu,
    WrappedKey,
    cipher,
    ciphered_tag,
    decipher,
    decode_ciphered_apdu,
    hls_gmac_response,
    is_ciphered_tag,
    key_transfer_data,
    lls_password_matches,
    parse_key_transfer,
    plain_tag,
    read_security_header,
    unwrap_key,
    verify_hls_gmac_response,
    wrap_key,
)
from protocols.security.suite0 import _aesgcm
from tests.vectors.security_vectors import (
    AUTHENTICATION_KEY,
    CIPHER_VECTORS,
    CIPHERED_INITIATE_VECTORS,
    ENCRYPTION_KEY,
    HLS_GMAC_VECTORS,
    INVOCATION_COUNTER,
    KEY_WRAP_VECTORS,
    SERVER_SYSTEM_TITLE,
)

KEYS = {"encryption_key": ENCRYPTION_KEY, "authentication_key": AUTHENTICATION_KEY}


@pytest.mark.parametrize(("name", "source", "hex_apdu", "expected"), CIPHER_VECTORS)
def test_cipher_vectors_both_ways(name: str, source: str, hex_apdu: str, expected: tuple[int, str]) -> None:
    sc, plain_hex = expected
    raw = bytes.fromhex(hex_apdu)
    apdu = ServiceSpecificCipheredApdu.decode(raw)
    assert apdu.tag is CipheredApduTag.GLO_GET_REQUEST
    assert apdu.plain_tag == 0xC0 and not apdu.dedicated
    assert int(apdu.header.security_control) == sc
    assert apdu.header.invocation_counter == INVOCATION_COUNTER
    assert decipher(apdu.content, system_title=SERVER_SYSTEM_TITLE, **KEYS) == bytes.fromhex(plain_hex)
    content = cipher(
        bytes.fromhex(plain_hex),
        security_control=sc,
        system_title=SERVER_SYSTEM_TITLE,
        invocation_counter=INVOCATION_COUNTER,
        **KEYS,
    )
    assert ServiceSpecificCipheredApdu(CipheredApduTag.GLO_GET_REQUEST, content).encode() == raw
    with pytest.raises(DecodeError):
        ServiceSpecificCipheredApdu.decode(raw + b"\x00")
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            ServiceSpecificCipheredApdu.decode(raw[:cut])


@pytest.mark.parametrize(("name", "source", "hex_apdu", "plain_hex"), CIPHERED_INITIATE_VECTORS)
def test_ciphered_initiate_vectors(name: str, source: str, hex_apdu: str, plain_hex: str) -> None:
    raw = bytes.fromhex(hex_apdu)
    apdu = decode_ciphered_apdu(raw)
    assert isinstance(apdu, ServiceSpecificCipheredApdu)
    assert apdu.encode() == raw
    plaintext = decipher(apdu.content, system_title=SERVER_SYSTEM_TITLE, **KEYS)
    assert plaintext == bytes.fromhex(plain_hex)
    again = cipher(
        plaintext,
        security_control=apdu.header.security_control,
        system_title=SERVER_SYSTEM_TITLE,
        invocation_counter=apdu.header.invocation_counter,
        **KEYS,
    )
    assert again == apdu.content


def test_tampering_is_a_security_error() -> None:
    content = bytes.fromhex(CIPHER_VECTORS[2][2])[2:]
    for index in range(5, len(content)):
        altered = bytearray(content)
        altered[index] ^= 0x01
        with pytest.raises(SecurityError):
            decipher(bytes(altered), system_title=SERVER_SYSTEM_TITLE, **KEYS)
    with pytest.raises(SecurityError):
        decipher(content, system_title=bytes(8), **KEYS)
    with pytest.raises(SecurityError):
        decipher(
            content,
            system_title=SERVER_SYSTEM_TITLE,
            encryption_key=ENCRYPTION_KEY,
            authentication_key=bytes(16),
        )
    # Changing the invocation counter changes the IV: the tag no longer matches.
    with pytest.raises(SecurityError):
        decipher(content[:4] + b"\x68" + content[5:], system_title=SERVER_SYSTEM_TITLE, **KEYS)


def test_security_control_field() -> None:
    sc = SecurityControlField.from_int(0x30)
    assert sc == SecurityControlField(0, authenticated=True, encrypted=True)
    assert int(SecurityControlField(1, True, False, True, True)) == 0xD1
    assert SecurityControlField.from_int(0xD1).broadcast_key
    assert SecurityControlField(0, True, True).to_byte() == b"\x30"
    with pytest.raises(EncodeError):
        int(SecurityControlField(16))
    assert read_security_header(bytes.fromhex("3001234567")).invocation_counter == 0x01234567


def test_bad_parameters() -> None:
    with pytest.raises(SecurityError):
        cipher(b"x", security_control=0x30, system_title=b"short", invocation_counter=1, **KEYS)
    with pytest.raises(SecurityError):
        cipher(
            b"x", security_control=0x30, system_title=SERVER_SYSTEM_TITLE, invocation_counter=2**32, **KEYS
        )
    with pytest.raises(SecurityError):
        cipher(
            b"x",
            security_control=0x30,
            system_title=SERVER_SYSTEM_TITLE,
            invocation_counter=1,
            encryption_key=b"short",
            authentication_key=AUTHENTICATION_KEY,
        )
    with pytest.raises(EncodeError):
        cipher(b"x", security_control=0xB0, system_title=SERVER_SYSTEM_TITLE, invocation_counter=1, **KEYS)
    with pytest.raises(DecodeError):
        decipher(b"\x30\x00\x00", system_title=SERVER_SYSTEM_TITLE, **KEYS)
    with pytest.raises(DecodeError):
        decipher(b"\x10\x00\x00\x00\x01" + bytes(11), system_title=SERVER_SYSTEM_TITLE, **KEYS)


def test_no_protection_passes_through() -> None:
    content = cipher(
        b"\xc0\x01", security_control=0, system_title=SERVER_SYSTEM_TITLE, invocation_counter=7, **KEYS
    )
    assert content == b"\x00\x00\x00\x00\x07\xc0\x01"
    assert decipher(content, system_title=SERVER_SYSTEM_TITLE, **KEYS) == b"\xc0\x01"


def test_aesgcm_objects_are_cached() -> None:
    _aesgcm.cache_clear()
    content = bytes.fromhex(CIPHER_VECTORS[2][2])[2:]
    for _ in range(3):
        decipher(content, system_title=SERVER_SYSTEM_TITLE, **KEYS)
    info = _aesgcm.cache_info()
    assert info.misses == 1
    assert info.hits == 2


@pytest.mark.parametrize(("name", "source", "challenge_hex", "expected"), HLS_GMAC_VECTORS)
def test_hls_gmac_vectors(name: str, source: str, challenge_hex: str, expected: tuple[str, int, str]) -> None:
    title_hex, counter, response_hex = expected
    challenge = bytes.fromhex(challenge_hex)
    title = bytes.fromhex(title_hex)
    response = hls_gmac_response(challenge, system_title=title, invocation_counter=counter, **KEYS)
    assert response == bytes.fromhex(response_hex)
    # The peer checks it with the responder's system title and gets the responder's counter back.
    assert verify_hls_gmac_response(response, challenge, system_title=title, **KEYS) == counter
    with pytest.raises(SecurityError):
        verify_hls_gmac_response(response, challenge[::-1], system_title=title, **KEYS)
    with pytest.raises(SecurityError):
        verify_hls_gmac_response(response[:-1], challenge, system_title=title, **KEYS)
    with pytest.raises(SecurityError):
        verify_hls_gmac_response(b"\x00" + response[1:], challenge, system_title=title, **KEYS)


def test_lls_password() -> None:
    assert lls_password_matches(b"12345678", b"12345678")
    assert not lls_password_matches(b"12345679", b"12345678")
    assert not lls_password_matches(b"1234567", b"12345678")


@pytest.mark.parametrize(("name", "source", "wrapped_hex", "expected"), KEY_WRAP_VECTORS)
def test_key_wrap_vectors(name: str, source: str, wrapped_hex: str, expected: tuple[str, str]) -> None:
    kek, key = (bytes.fromhex(h) for h in expected)
    wrapped = bytes.fromhex(wrapped_hex)
    assert wrap_key(kek, key) == wrapped
    assert unwrap_key(kek, wrapped) == key
    with pytest.raises(SecurityError):
        unwrap_key(kek, wrapped[:-1] + bytes((wrapped[-1] ^ 1,)))
    with pytest.raises(SecurityError):
        unwrap_key(bytes(len(kek)), wrapped)


def test_global_key_transfer_layout() -> None:
    kek = bytes.fromhex(KEY_WRAP_VECTORS[0][3][0])
    new_key = bytes.fromhex(KEY_WRAP_VECTORS[0][3][1])
    data = key_transfer_data(
        kek, [(KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY, new_key), (KeyId.AUTHENTICATION_KEY, kek)]
    )
    encoded = encode_data(data)
    # array of 2, structure of 2, enum 0, octet-string of 24 = the RFC 3394 4.1 wrapped key.
    assert encoded[:8] == bytes.fromhex("0102020216000918")
    assert encoded[8:32] == bytes.fromhex(KEY_WRAP_VECTORS[0][2])
    assert parse_key_transfer(decode_data_exact(encoded), kek) == (
        (KeyId.GLOBAL_UNICAST_ENCRYPTION_KEY, new_key),
        (KeyId.AUTHENTICATION_KEY, kek),
    )
    with pytest.raises(DecodeError):
        parse_key_transfer(Data.structure(()), kek)
    with pytest.raises(DecodeError):
        parse_key_transfer(Data.array([Data.structure([Data.enum(9), Data.octet_string(bytes(24))])]), kek)
    with pytest.raises(DecodeError):
        parse_key_transfer(Data.array([Data(DataTag.UNSIGNED, 1)]), kek)


def test_tag_mapping() -> None:
    assert ciphered_tag(0xC0) == 0xC8
    assert ciphered_tag(0xC4) == 0xCC
    assert ciphered_tag(0xC7) == 0xCF
    assert ciphered_tag(0xC0, dedicated=True) == 0xD0
    assert ciphered_tag(0x01) == 0x21
    assert ciphered_tag(0x08) == 0x28
    assert ciphered_tag(0x01, dedicated=True) == 0x41
    assert ciphered_tag(0x0E) == 0x2E
    assert ciphered_tag(0xC2, dedicated=True) == 0xD2
    assert plain_tag(0xCF) == (0xC7, False)
    assert plain_tag(0xD4) == (0xC4, True)
    for plain in (
        0x01,
        0x05,
        0x06,
        0x08,
        0x0C,
        0x0D,
        0x0E,
        0x16,
        0x18,
        0xC0,
        0xC1,
        0xC2,
        0xC3,
        0xC4,
        0xC5,
        0xC7,
    ):
        for dedicated in (False, True):
            assert plain_tag(ciphered_tag(plain, dedicated=dedicated)) == (plain, dedicated)
    with pytest.raises(EncodeError):
        ciphered_tag(0x0F)  # data-notification travels in general-glo-ciphering
    with pytest.raises(DecodeError):
        plain_tag(0xC0)
    assert is_ciphered_tag(0xDB) and is_ciphered_tag(0xC8) and not is_ciphered_tag(0xC0)


def test_general_glo_ciphering_round_trip() -> None:
    content = bytes.fromhex(CIPHER_VECTORS[2][2])[2:]
    apdu = GeneralGloCiphering(SERVER_SYSTEM_TITLE, content)
    raw = apdu.encode()
    assert raw == bytes.fromhex("DB084D4D4D0000BC614E1E") + content
    assert decode_ciphered_apdu(raw) == apdu
    assert decipher(apdu.content, system_title=apdu.system_title, **KEYS) == bytes.fromhex(
        CIPHER_VECTORS[2][3][1]
    )
    ded = GeneralDedCiphering(SERVER_SYSTEM_TITLE, content)
    assert decode_ciphered_apdu(ded.encode()) == ded
    with pytest.raises(DecodeError):
        GeneralGloCiphering.decode(raw + b"\x00")
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            GeneralGloCiphering.decode(raw[:cut])


def test_general_ciphering_layout() -> None:
    apdu = GeneralCiphering(
        transaction_id=b"\x01",
        originator_system_title=SERVER_SYSTEM_TITLE,
        recipient_system_title=bytes(8),
        date_time=b"",
        other_information=b"",
        content=bytes.fromhex("3001234567AABB"),
        key_info=IdentifiedKey(0),
    )
    raw = apdu.encode()
    expected = "DD0101084D4D4D0000BC614E0800000000000000000000010000073001234567AABB"
    assert raw == bytes.fromhex(expected)
    assert decode_ciphered_apdu(raw) == apdu
    assert apdu.header.invocation_counter == 0x01234567


_titles = st.binary(min_size=8, max_size=8)
_content = st.binary(min_size=5, max_size=300)
_key_info = st.one_of(
    st.none(),
    st.builds(IdentifiedKey, st.integers(0, 255)),
    st.builds(WrappedKey, st.integers(0, 255), st.binary(max_size=40)),
    st.builds(AgreedKey, st.binary(max_size=40), st.binary(max_size=40)),
)
_envelopes = st.one_of(
    st.builds(
        ServiceSpecificCipheredApdu, st.sampled_from([t for t in CipheredApduTag if t < 219]), _content
    ),
    st.builds(GeneralGloCiphering, _titles, _content),
    st.builds(GeneralDedCiphering, _titles, _content),
    st.builds(
        GeneralCiphering,
        st.binary(max_size=9),
        _titles,
        _titles,
        st.binary(max_size=12),
        st.binary(max_size=10),
        _content,
        _key_info,
    ),
)


@given(_envelopes)
def test_envelope_round_trip(apdu: object) -> None:
    raw = apdu.encode()  # type: ignore[attr-defined]
    assert decode_ciphered_apdu(raw) == apdu


@given(
    st.binary(max_size=600),
    st.sampled_from([0x00, 0x10, 0x20, 0x30, 0x31, 0x40]),
    st.integers(0, 2**32 - 1),
    _titles,
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
)
def test_cipher_round_trip(plain: bytes, sc: int, counter: int, title: bytes, ek: bytes, ak: bytes) -> None:
    content = cipher(
        plain,
        security_control=sc,
        system_title=title,
        invocation_counter=counter,
        encryption_key=ek,
        authentication_key=ak,
    )
    header = read_security_header(content)
    assert header.invocation_counter == counter and int(header.security_control) == sc
    assert decipher(content, system_title=title, encryption_key=ek, authentication_key=ak) == plain
    if sc & 0x20 and len(plain) >= 16:
        assert plain not in content


@given(st.binary(max_size=200))
def test_fuzz_decoders(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_ciphered_apdu(raw)
    with contextlib.suppress(DecodeError, SecurityError):
        decipher(raw, system_title=SERVER_SYSTEM_TITLE, **KEYS)


@given(st.integers(0, 63), st.integers(0, 255), st.sampled_from([v[2] for v in CIPHER_VECTORS]))
def test_fuzz_mutated_vectors(index: int, value: int, hex_apdu: str) -> None:
    raw = bytearray(bytes.fromhex(hex_apdu))
    raw[index % len(raw)] = value
    try:
        apdu = decode_ciphered_apdu(bytes(raw))
    except DecodeError:
        return
    assert isinstance(apdu, ServiceSpecificCipheredApdu)
    with contextlib.suppress(DecodeError, SecurityError):
        decipher(apdu.content, system_title=SERVER_SYSTEM_TITLE, **KEYS)


@given(
    st.binary(max_size=300),
    st.integers(0, 2**32 - 1),
    _titles,
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
)
def test_dlms_cosem_agrees(plain: bytes, counter: int, title: bytes, ek: bytes, ak: bytes) -> None:
    peer = pytest.importorskip("dlms_cosem.security")
    ours = cipher(
        plain,
        security_control=0x30,
        system_title=title,
        invocation_counter=counter,
        encryption_key=ek,
        authentication_key=ak,
    )
    theirs = peer.encrypt(
        security_control=peer.SecurityControlField(security_suite=0, authenticated=True, encrypted=True),
        system_title=title,
        invocation_counter=counter,
        key=ek,
        auth_key=ak,
        plain_text=plain,
    )
    assert ours[5:] == theirs
