"""ACSE and xDLMS-initiate interop: AARQ, AARE, RLRQ, RLRE and conformance bits against gurux and dlms-cosem."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.acse import (
    Aare,
    Aarq,
    AcseServiceUserDiagnostic,
    ApplicationContextName,
    AssociationResult,
    MechanismName,
    ReleaseRequestReason,
    ReleaseResponseReason,
    Rlre,
    Rlrq,
)
from protocols.errors import DecodeError
from protocols.security import CipheredApduTag, ServiceSpecificCipheredApdu, cipher, decipher
from protocols.xdlms.conformance import Conformance
from protocols.xdlms.initiate import InitiateRequest, InitiateResponse
from tests.interop.ours import normalise
from tests.peers import SUITE0
from tests.peers import dlms_cosem_peer as dc
from tests.peers import gurux_peer as gx

GURUX_CONFORMANCE = 0x401E5D  # what a default gurux LN client proposes
SERVER_CONFORMANCE = 0x00501F
# Bits dlms-cosem models: it has no short-name services (read, write, unconfirmed-write,
# information-report, parameterized-access) nor the reserved bits, and silently drops them.
DLMS_COSEM_BITS = 0x62FEDF
CHALLENGE = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
PASSWORD = b"12345678"

conformances = st.integers(min_value=0, max_value=0xFFFFFF)
pdu_sizes = st.integers(min_value=12, max_value=0xFFFF)


def _our_aarq(mechanism: int, conformance: int = GURUX_CONFORMANCE, max_pdu_size: int = 0xFFFF) -> Aarq:
    initiate = InitiateRequest(Conformance(conformance), max_pdu_size)
    if mechanism == 0:
        return Aarq(user_information=initiate)
    return Aarq(
        user_information=initiate,
        mechanism_name=MechanismName.LLS,
        calling_authentication_value=PASSWORD,
        sender_acse_requirements=True,
    )


def _our_hls_aarq(invocation_counter: int) -> Aarq:
    plain = InitiateRequest(Conformance(GURUX_CONFORMANCE), 0xFFFF).encode()
    content = cipher(
        plain,
        security_control=0x30,
        system_title=SUITE0.system_title,
        invocation_counter=invocation_counter,
        encryption_key=SUITE0.encryption_key,
        authentication_key=SUITE0.authentication_key,
    )
    return Aarq(
        application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        user_information=ServiceSpecificCipheredApdu(CipheredApduTag.GLO_INITIATE_REQUEST, content),
        mechanism_name=MechanismName.HLS_GMAC,
        calling_authentication_value=CHALLENGE,
        sender_acse_requirements=True,
        calling_ap_title=SUITE0.system_title,
    )


@pytest.mark.parametrize("mechanism", [0, 1])
def test_unciphered_aarq_is_byte_identical_to_both_peers(mechanism: int) -> None:
    ours = _our_aarq(mechanism).encode()
    password = PASSWORD if mechanism else None
    assert ours == gx.aarq(mechanism=mechanism, password=password)
    assert ours == dc.aarq(mechanism=mechanism, password=password, conformance=GURUX_CONFORMANCE)


@pytest.mark.parametrize("mechanism", [0, 1])
def test_unciphered_aarq_decodes_the_same_everywhere(mechanism: int) -> None:
    ours = _our_aarq(mechanism).encode()
    expected = {
        "apdu": "aarq",
        "ciphered": False,
        "calling_ap_title": None,
        "mechanism": None if mechanism == 0 else 1,
        "calling_authentication_value": PASSWORD if mechanism else None,
        "initiate_request": {"dlms_version": 6, "conformance": GURUX_CONFORMANCE, "max_pdu_size": 0xFFFF},
        "glo_initiate_request": None,
    }
    assert normalise(ours) == expected
    assert gx.decode_apdu(ours) == expected
    theirs = dc.decode_apdu(ours)
    # dlms-cosem drops the first conformance octet (README defect): assert the defect, then the rest
    assert theirs["initiate_request"]["conformance"] == GURUX_CONFORMANCE & 0xFFFF
    theirs["initiate_request"]["conformance"] = GURUX_CONFORMANCE
    assert theirs == expected
    # and what gurux sends decodes in ours to the same values, re-encoding to the same bytes
    sent = gx.aarq(mechanism=mechanism, password=PASSWORD if mechanism else None)
    assert normalise(sent) == expected
    assert Aarq.decode(sent).encode() == sent


def test_hls_gmac_aarq_with_glo_initiate_request_matches_both_peers() -> None:
    ours = _our_hls_aarq(invocation_counter=1).encode()
    assert ours == gx.aarq(mechanism=5, keys=SUITE0, invocation_counter=1, challenge=CHALLENGE)
    assert ours == dc.aarq(
        mechanism=5, keys=SUITE0, invocation_counter=1, challenge=CHALLENGE, conformance=GURUX_CONFORMANCE
    )
    decoded = normalise(ours)
    assert decoded == gx.decode_apdu(ours) == dc.decode_apdu(ours)
    assert decoded["ciphered"] is True
    assert decoded["mechanism"] == 5
    assert decoded["calling_ap_title"] == SUITE0.system_title
    assert decoded["calling_authentication_value"] == CHALLENGE
    glo = decoded["glo_initiate_request"]
    assert (glo["security_control"], glo["invocation_counter"]) == (0x30, 1)
    # the ciphered InitiateRequest deciphers the same in ours and dlms-cosem
    theirs_plain = dc.decipher(glo["ciphered_text"], SUITE0, 1)
    aarq = Aarq.decode(ours)
    assert isinstance(aarq.user_information, ServiceSpecificCipheredApdu)
    ours_plain = decipher(
        aarq.user_information.content,
        system_title=SUITE0.system_title,
        encryption_key=SUITE0.encryption_key,
        authentication_key=SUITE0.authentication_key,
    )
    assert ours_plain == theirs_plain == bytes.fromhex("01000000065F1F0400401E5DFFFF")
    assert InitiateRequest.decode(ours_plain).proposed_conformance == Conformance(GURUX_CONFORMANCE)


@settings(max_examples=25, deadline=None)
@given(invocation_counter=st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_hls_gmac_aarq_from_gurux_deciphers_in_ours(invocation_counter: int) -> None:
    sent = gx.aarq(mechanism=5, keys=SUITE0, invocation_counter=invocation_counter, challenge=CHALLENGE)
    assert sent == _our_hls_aarq(invocation_counter).encode()
    glo = normalise(sent)["glo_initiate_request"]
    assert glo["invocation_counter"] == invocation_counter


def _our_aare(result: int, diagnostic: int, conformance: int, max_pdu_size: int = 0x01F4) -> Aare:
    return Aare(
        result=AssociationResult(result),
        diagnostic=AcseServiceUserDiagnostic(diagnostic),
        user_information=InitiateResponse(Conformance(conformance), max_pdu_size),
    )


def _aare_expected(result: int, diagnostic: int, conformance: int, max_pdu_size: int) -> dict[str, object]:
    return {
        "apdu": "aare",
        "ciphered": False,
        "result": result,
        "diagnostic": diagnostic,
        "responding_ap_title": None,
        "mechanism": None,
        "responding_authentication_value": None,
        "initiate_response": {
            "dlms_version": 6,
            "conformance": conformance,
            "max_pdu_size": max_pdu_size,
            "vaa_name": 7,
        },
    }


@pytest.mark.parametrize(
    ("result", "diagnostic"),
    [(0, 0), (1, 1), (1, 2), (2, 1), (1, 13)],
    ids=["accepted", "rejected-no-reason", "rejected-context", "rejected-transient", "rejected-auth-failure"],
)
def test_aare_accepted_and_rejected_match_dlms_cosem_and_gurux(result: int, diagnostic: int) -> None:
    ours = _our_aare(result, diagnostic, SERVER_CONFORMANCE).encode()
    assert ours == dc.aare(result=result, diagnostic=diagnostic, conformance=SERVER_CONFORMANCE)
    expected = _aare_expected(result, diagnostic, SERVER_CONFORMANCE, 0x01F4)
    assert normalise(ours) == expected
    assert gx.decode_apdu(ours) == expected
    assert dc.decode_apdu(ours) == expected


def test_aare_from_gurux_translator_loses_conformance() -> None:
    """gurux's translator defect (README): the AARE it builds carries conformance 0 whatever was asked."""
    sent = gx.aare(result=0, diagnostic=0, conformance=SERVER_CONFORMANCE)
    decoded = normalise(sent)
    assert decoded == _aare_expected(0, 0, 0, 0x01F4)
    rejected = normalise(gx.aare(result=1, diagnostic=1, conformance=SERVER_CONFORMANCE))
    assert (rejected["result"], rejected["diagnostic"]) == (1, 1)
    assert Aare.decode(sent).encode() == sent


@settings(max_examples=40, deadline=None)
@given(conformance=conformances, max_pdu_size=pdu_sizes)
def test_conformance_bits_in_initiate_request_both_ways(conformance: int, max_pdu_size: int) -> None:
    ours = _our_aarq(0, conformance, max_pdu_size).encode()
    assert gx.decode_apdu(ours)["initiate_request"] == {
        "dlms_version": 6,
        "conformance": conformance,
        "max_pdu_size": max_pdu_size,
    }
    # dlms-cosem keeps only the two low octets on decode (README defect) and only the bits it models
    assert dc.decode_apdu(ours)["initiate_request"]["conformance"] == conformance & DLMS_COSEM_BITS & 0xFFFF
    from_gurux = gx.aarq_with_conformance(conformance, max_pdu_size)
    assert from_gurux == ours
    assert normalise(from_gurux)["initiate_request"]["conformance"] == conformance
    from_dlms_cosem = dc.aarq(conformance=conformance, max_pdu_size=max_pdu_size)
    assert normalise(from_dlms_cosem)["initiate_request"] == {
        "dlms_version": 6,
        "conformance": conformance & DLMS_COSEM_BITS,
        "max_pdu_size": max_pdu_size,
    }


@settings(max_examples=40, deadline=None)
@given(conformance=conformances, max_pdu_size=st.integers(min_value=64, max_value=0xFFFF))
def test_conformance_bits_in_initiate_response_both_ways(conformance: int, max_pdu_size: int) -> None:
    ours = _our_aare(0, 0, conformance, max_pdu_size).encode()
    assert gx.parse_aare(ours) == {"conformance": conformance, "max_pdu_size": max_pdu_size, "dlms_version": 6}
    assert gx.decode_apdu(ours)["initiate_response"]["conformance"] == conformance
    assert dc.decode_apdu(ours)["initiate_response"]["conformance"] == conformance & DLMS_COSEM_BITS
    sent = dc.aare(conformance=conformance, max_pdu_size=max_pdu_size)
    assert sent == _our_aare(0, 0, conformance & DLMS_COSEM_BITS, max_pdu_size).encode()
    assert normalise(sent) == _aare_expected(0, 0, conformance & DLMS_COSEM_BITS, max_pdu_size)


def test_gurux_client_refuses_a_server_pdu_size_below_64() -> None:
    """A gurux client's own policy (not a wire rule): it rejects an AARE whose server max PDU is under 64."""
    from gurux_dlms.GXDLMSException import GXDLMSException

    assert gx.parse_aare(_our_aare(0, 0, SERVER_CONFORMANCE, 64).encode())["max_pdu_size"] == 64
    with pytest.raises(GXDLMSException):
        gx.parse_aare(_our_aare(0, 0, SERVER_CONFORMANCE, 63).encode())


def test_named_conformance_bits_agree_with_dlms_cosem_names() -> None:
    from dlms_cosem.protocol import xdlms

    named = xdlms.Conformance(general_protection=True, get=True, set=True, action=True, selective_access=True)
    wire = int.from_bytes(named.to_bytes()[1:], "big")
    assert Conformance(wire) == (
        Conformance.GENERAL_PROTECTION | Conformance.GET | Conformance.SET | Conformance.ACTION
        | Conformance.SELECTIVE_ACCESS
    )


@pytest.mark.parametrize("reason", [0, 1, 30, None])
def test_rlrq_both_ways(reason: int | None) -> None:
    ours = Rlrq(None if reason is None else ReleaseRequestReason(reason)).encode()
    assert ours == dc.rlrq(reason)
    expected = {"apdu": "rlrq", "reason": reason}
    assert normalise(ours) == gx.decode_apdu(ours) == expected
    if reason is None:
        # dlms-cosem encodes the empty RLRQ (62 00) but cannot decode it: IndexError on the empty body
        assert ours == b"\x62\x00"
        with pytest.raises(IndexError):
            dc.decode_apdu(ours)
    else:
        assert dc.decode_apdu(ours) == expected
    if reason == 0:
        assert gx.rlrq() == ours


@pytest.mark.parametrize("reason", [0, 1, 30, None])
def test_rlre_both_ways(reason: int | None) -> None:
    ours = Rlre(None if reason is None else ReleaseResponseReason(reason)).encode()
    assert ours == dc.rlre(reason)
    expected = {"apdu": "rlre", "reason": reason}
    assert normalise(ours) == expected
    if reason is None:
        assert ours == b"\x63\x00"
        with pytest.raises(IndexError):  # same dlms-cosem defect as for the empty RLRQ
            dc.decode_apdu(ours)
    else:
        assert dc.decode_apdu(ours) == expected
    if reason in (0, 30, None):
        assert gx.decode_apdu(ours) == expected


def test_rlre_not_finished_is_misnamed_by_gurux() -> None:
    """gurux's translator has no name for release-response reason 1 (not-finished)."""
    ours = Rlre(ReleaseResponseReason.NOT_FINISHED).encode()
    assert normalise(ours) == {"apdu": "rlre", "reason": 1}
    with pytest.raises(KeyError):
        gx.decode_apdu(ours)


def test_aarq_with_trailing_junk_is_refused_by_ours() -> None:
    sent = gx.aarq()
    with pytest.raises(DecodeError):
        normalise(sent + b"\x00")
