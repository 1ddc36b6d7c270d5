"""Ciphered APDUs (suite 0, Green Book keys): glo-, ded-, general-glo- and general-ded-ciphering both ways."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.axdr import Data, encode_data
from protocols.obis import ObisCode
from protocols.security import (
    CipheredApduTag,
    GeneralDedCiphering,
    GeneralGloCiphering,
    ServiceSpecificCipheredApdu,
    cipher,
    decipher,
)
from protocols.xdlms.common import CosemAttributeDescriptor, InvokeIdAndPriority
from protocols.xdlms.get import GetRequestNormal, GetResponseNormal
from tests.interop.ours import normalise
from tests.peers import SUITE0, SecurityKeys
from tests.peers import dlms_cosem_peer as dc
from tests.peers import gurux_peer as gx

ENERGY = ObisCode.parse("1-0:1.8.0*255")
IIP = InvokeIdAndPriority(1)
SERVER = SecurityKeys(bytes.fromhex("4D4D4D0000000001"), SUITE0.encryption_key, SUITE0.authentication_key)
DEDICATED = SecurityKeys(SUITE0.system_title, bytes(range(0x10, 0x20)), SUITE0.authentication_key)


def _content(plain: bytes, keys: SecurityKeys, counter: int, sc: int = 0x30) -> bytes:
    return cipher(
        plain,
        security_control=sc,
        system_title=keys.system_title,
        invocation_counter=counter,
        encryption_key=keys.encryption_key,
        authentication_key=keys.authentication_key,
    )


def _get_request() -> bytes:
    return GetRequestNormal(IIP, CosemAttributeDescriptor(3, ENERGY, 2)).encode()


@settings(max_examples=20, deadline=None)
@given(counter=st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_glo_get_request_is_byte_identical_to_gurux(counter: int) -> None:
    ours = ServiceSpecificCipheredApdu(CipheredApduTag.GLO_GET_REQUEST, _content(_get_request(), SUITE0, counter))
    sent = gx.glo_get_request(3, bytes(ENERGY), 2, SUITE0, counter)
    assert ours.encode() == sent
    decoded = normalise(sent, SUITE0)
    assert decoded["invocation_counter"] == counter
    assert decoded["plain"] == normalise(_get_request())


def test_glo_get_request_from_ours_deciphers_in_both_peers() -> None:
    ours = ServiceSpecificCipheredApdu(CipheredApduTag.GLO_GET_REQUEST, _content(_get_request(), SUITE0, 5)).encode()
    expected = normalise(ours, SUITE0)
    assert expected["plain"]["apdu"] == "get-request-normal"
    assert gx.decode_apdu(ours, SUITE0) == expected
    assert dc.decode_apdu(ours, SUITE0) == expected


@pytest.mark.parametrize("sc", [0x20, 0x30])
def test_glo_get_response_from_ours_reads_in_a_gurux_client(sc: int) -> None:
    plain = GetResponseNormal(IIP, encode_data(Data.double_long_unsigned(1234))).encode()
    ours = ServiceSpecificCipheredApdu(CipheredApduTag.GLO_GET_RESPONSE, _content(plain, SERVER, 9, sc)).encode()
    assert gx.decode_get_response(ours, SUITE0, SERVER.system_title) == 1234
    assert normalise(ours, SERVER)["plain"]["data"] == 1234
    if sc == 0x20:
        with pytest.raises(ValueError):  # dlms-cosem always expects a tag: it cannot read encryption-only
            dc.decode_apdu(ours, SERVER)
        return
    theirs = dc.decode_apdu(ours, SERVER)
    assert theirs == normalise(ours, SERVER)
    assert theirs["plain"]["data"] == 1234 and theirs["security_control"] == sc


def test_ded_get_request_under_the_dedicated_key_deciphers_in_dlms_cosem() -> None:
    ours = ServiceSpecificCipheredApdu(CipheredApduTag.DED_GET_REQUEST, _content(_get_request(), DEDICATED, 3)).encode()
    assert ours[0] == 0xD0
    theirs = dc.decode_apdu(ours, DEDICATED)
    assert theirs == normalise(ours, DEDICATED)
    assert theirs["plain"] == normalise(_get_request())
    xml = gx.translate(ours)  # gurux without keys still reads the envelope
    assert xml.startswith("<ded_GetRequest")


@settings(max_examples=20, deadline=None)
@given(counter=st.integers(min_value=0, max_value=0xFFFFFFFF), sc=st.sampled_from([0x20, 0x30]))
def test_general_glo_ciphering_both_ways(counter: int, sc: int) -> None:
    plain = _get_request()
    ours = GeneralGloCiphering(SUITE0.system_title, _content(plain, SUITE0, counter, sc)).encode()
    expected = normalise(ours, SUITE0)
    assert expected["plain"] == normalise(plain)
    assert gx.decode_apdu(ours, SUITE0) == expected
    if sc == 0x30:
        assert ours == dc.general_glo_ciphering(plain, SUITE0, counter, sc)
        assert dc.decode_apdu(ours, SUITE0) == expected
    else:  # dlms-cosem appends a tag even for encryption-only (SC 0x20): 12 bytes longer
        assert len(dc.general_glo_ciphering(plain, SUITE0, counter, sc)) == len(ours) + 12


def test_general_ded_ciphering_in_gurux_translator() -> None:
    plain = _get_request()
    ours = GeneralDedCiphering(SUITE0.system_title, _content(plain, DEDICATED, 1)).encode()
    decoded = GeneralDedCiphering.decode(ours)
    assert decipher(
        decoded.content,
        system_title=SUITE0.system_title,
        encryption_key=DEDICATED.encryption_key,
        authentication_key=DEDICATED.authentication_key,
    ) == plain
    xml = gx.translate(ours)
    # gurux reads the fields but names 0xDC general-glo-ciphering (peer defect)
    assert xml.startswith("<GeneralGloCiphering>")
    assert SUITE0.system_title.hex().upper() in xml
    assert decoded.content.hex().upper() in xml
    with pytest.raises(KeyError):  # dlms-cosem has no general-ded-ciphering (0xDC)
        dc.decode_apdu(ours)


def test_tampered_ciphertext_is_refused_by_ours_and_dlms_cosem() -> None:
    from protocols.errors import SecurityError

    sent = bytearray(gx.glo_get_request(3, bytes(ENERGY), 2, SUITE0, 1))
    sent[-1] ^= 1
    with pytest.raises(SecurityError):
        normalise(bytes(sent), SUITE0)
    with pytest.raises(Exception) as caught:
        dc.decode_apdu(bytes(sent), SUITE0)
    assert type(caught.value).__name__ == "DecryptionError"


def test_authentication_only_matches_gurux_but_not_dlms_cosem() -> None:
    """SC 0x10: ours and gurux send the plaintext with a GMAC tag; dlms-cosem's security.encrypt
    encrypts anyway (peer defect), so its bytes differ and ours refuse its tag."""
    from gurux_dlms.enums import Security

    from protocols.errors import SecurityError

    client = gx.make_client(keys=SUITE0, invocation_counter=5)
    client.ciphering.security = Security.AUTHENTICATION
    sent = bytes(client.read(gx._object(3, bytes(ENERGY)), 2)[0])
    ours = ServiceSpecificCipheredApdu(CipheredApduTag.GLO_GET_REQUEST, _content(_get_request(), SUITE0, 5, 0x10))
    assert ours.encode() == sent
    assert normalise(sent, SUITE0)["plain"] == normalise(_get_request())
    theirs = dc.cipher(_get_request(), SUITE0, 5, 0x10)
    assert theirs[: len(_get_request())] != _get_request()
    with pytest.raises(SecurityError):
        decipher(
            b"\x10" + (5).to_bytes(4, "big") + theirs,
            system_title=SUITE0.system_title,
            encryption_key=SUITE0.encryption_key,
            authentication_key=SUITE0.authentication_key,
        )
