"""ACSE and xDLMS-Initiate byte vectors from the Green Book examples, with where each was taken from."""

from __future__ import annotations

from protocols.acse import (
    Aare,
    Aarq,
    AcseServiceUserDiagnostic,
    ApplicationContextName,
    AssociationResult,
    MechanismName,
    ReleaseRequestReason,
    ReleaseResponseReason,
    ResultSource,
    Rlre,
    Rlrq,
)
from protocols.security import CipheredApduTag, ServiceSpecificCipheredApdu
from protocols.xdlms.conformance import Conformance as C
from protocols.xdlms.initiate import (
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    InitiateRequest,
    InitiateResponse,
    ServiceErrorChoice,
)

__all__ = ["ACSE_VECTORS", "INITIATE_VECTORS"]

_DLMS_COSEM_AARQ = (
    "Green Book ed. 10 (DLMS UA 1000-2), AARQ encoding examples, p. 444, as reproduced in "
    "u9n/dlms-cosem tests/test_asce/test_aarq.py"
)
_DLMS_COSEM_AARE = (
    "Green Book ed. 10 (DLMS UA 1000-2), AARE encoding examples (page not given there), as reproduced "
    "in u9n/dlms-cosem tests/test_asce/test_aare.py"
)
_DLMS_COSEM_RLRQ = (
    "u9n/dlms-cosem tests/test_asce/test_rlrq.py (no section cited there); the user-information is "
    "the Green Book glo-initiate-request of the ciphered AARQ example"
)
_DLMS_COSEM_RLRE = (
    "u9n/dlms-cosem tests/test_asce/test_rlre.py (no section cited there); the ciphered "
    "user-information deciphers with the Green Book suite-0 example keys (see security_vectors)"
)

#: Conformance the Green Book AARQ examples propose (0x007E1F).
PROPOSED = (
    C.PRIORITY_MGMT_SUPPORTED
    | C.ATTRIBUTE0_SUPPORTED_WITH_GET
    | C.BLOCK_TRANSFER_WITH_GET_OR_READ
    | C.BLOCK_TRANSFER_WITH_SET_OR_WRITE
    | C.BLOCK_TRANSFER_WITH_ACTION
    | C.MULTIPLE_REFERENCES
    | C.GET
    | C.SET
    | C.SELECTIVE_ACCESS
    | C.EVENT_NOTIFICATION
    | C.ACTION
)
#: Conformance the Green Book AARE examples grant (0x00501F).
NEGOTIATED = (
    C.PRIORITY_MGMT_SUPPORTED
    | C.BLOCK_TRANSFER_WITH_GET_OR_READ
    | C.GET
    | C.SET
    | C.SELECTIVE_ACCESS
    | C.EVENT_NOTIFICATION
    | C.ACTION
)
_REQUEST = InitiateRequest(PROPOSED, client_max_receive_pdu_size=1200)
_RESPONSE = InitiateResponse(NEGOTIATED, server_max_receive_pdu_size=500)
_GLO_INITIATE_REQUEST = ServiceSpecificCipheredApdu(
    CipheredApduTag.GLO_INITIATE_REQUEST,
    bytes.fromhex(
        "3001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD52211BE6841DB204D39EE6FDB8E356855"
    ),
)
_GLO_INITIATE_RESPONSE = ServiceSpecificCipheredApdu(
    CipheredApduTag.GLO_INITIATE_RESPONSE,
    bytes.fromhex("3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893"),
)

#: (name, source, hex, expected decoded APDU)
ACSE_VECTORS: tuple[tuple[str, str, str, object], ...] = (
    (
        "aarq-no-security",
        _DLMS_COSEM_AARQ,
        "601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0",
        Aarq(user_information=_REQUEST),
    ),
    (
        "aarq-lls-password-12345678",
        _DLMS_COSEM_AARQ,
        "6036A1090607608574050801018A0207808B0760857405080201AC0A80083132333435363738"
        "BE10040E01000000065F1F0400007E1F04B0",
        Aarq(
            user_information=_REQUEST,
            mechanism_name=MechanismName.LLS,
            calling_authentication_value=b"12345678",
            sender_acse_requirements=True,
        ),
    ),
    (
        "aarq-hls-gmac-ctos-K56iVagY",
        _DLMS_COSEM_AARQ,
        "6036A1090607608574050801018A0207808B0760857405080205AC0A80084B35366956616759"
        "BE10040E01000000065F1F0400007E1F04B0",
        Aarq(
            user_information=_REQUEST,
            mechanism_name=MechanismName.HLS_GMAC,
            calling_authentication_value=b"K56iVagY",
            sender_acse_requirements=True,
        ),
    ),
    (
        "aarq-ciphered-lls-glo-initiate-request",
        _DLMS_COSEM_AARQ,
        "6066A109060760857405080103A60A04084D4D4D0000BC614E8A0207808B0760857405080201"
        "AC0A80083132333435363738BE34043221303001234567801302FF8A7874133D414CED25B42534D28DB004"
        "7720606B175BD52211BE6841DB204D39EE6FDB8E356855",
        Aarq(
            application_context_name=ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
            calling_ap_title=bytes.fromhex("4D4D4D0000BC614E"),
            user_information=_GLO_INITIATE_REQUEST,
            mechanism_name=MechanismName.LLS,
            calling_authentication_value=b"12345678",
            sender_acse_requirements=True,
        ),
    ),
    (
        "aare-accepted-no-security",
        _DLMS_COSEM_AARE,
        "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000501F01F40007",
        Aare(user_information=_RESPONSE),
    ),
    (
        "aare-rejected-application-context-name-not-supported",
        _DLMS_COSEM_AARE,
        "6129A109060760857405080101A203020101A305A103020102BE10040E0800065F1F040000501F01F40007",
        Aare(
            result=AssociationResult.REJECTED_PERMANENT,
            diagnostic=AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
            user_information=_RESPONSE,
        ),
    ),
    (
        "aare-rejected-dlms-version-too-low",
        _DLMS_COSEM_AARE,
        "611FA109060760857405080101A203020101A305A103020101BE0604040E010601",
        Aare(
            result=AssociationResult.REJECTED_PERMANENT,
            diagnostic=AcseServiceUserDiagnostic.NO_REASON_GIVEN,
            user_information=ConfirmedServiceError(
                ConfirmedServiceErrorChoice.INITIATE_ERROR, ServiceErrorChoice.INITIATE, 1
            ),
        ),
    ),
    (
        "aare-hls-gmac-authentication-required-stoc-P6wRJ21F",
        _DLMS_COSEM_AARE,
        "6142A109060760857405080101A203020100A305A10302010E88020780890760857405080205"
        "AA0A8008503677524A323146BE10040E0800065F1F040000501F01F40007",
        Aare(
            diagnostic=AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED,
            result_source=ResultSource.ACSE_SERVICE_USER,
            user_information=_RESPONSE,
            mechanism_name=MechanismName.HLS_GMAC,
            responding_authentication_value=b"P6wRJ21F",
            responder_acse_requirements=True,
        ),
    ),
    ("rlrq-normal", _DLMS_COSEM_RLRQ, "6203800100", Rlrq(ReleaseRequestReason.NORMAL)),
    (
        "rlrq-ciphered-initiate-request",
        _DLMS_COSEM_RLRQ,
        "6239800100BE34043221303001234567801302FF8A7874133D414CED25B42534D28DB0047720606B175BD5"
        "2211BE6841DB204D39EE6FDB8E356855",
        Rlrq(ReleaseRequestReason.NORMAL, _GLO_INITIATE_REQUEST),
    ),
    ("rlre-normal", _DLMS_COSEM_RLRE, "6303800100", Rlre(ReleaseResponseReason.NORMAL)),
    (
        "rlre-initiate-response",
        _DLMS_COSEM_RLRE,
        "6316800100BE11040F080100065F1F0400001E1D04C80007",
        Rlre(
            ReleaseResponseReason.NORMAL,
            InitiateResponse(
                C.BLOCK_TRANSFER_WITH_GET_OR_READ
                | C.BLOCK_TRANSFER_WITH_SET_OR_WRITE
                | C.BLOCK_TRANSFER_WITH_ACTION
                | C.MULTIPLE_REFERENCES
                | C.GET
                | C.SET
                | C.SELECTIVE_ACCESS
                | C.ACTION,
                server_max_receive_pdu_size=1224,
                negotiated_quality_of_service=0,
            ),
        ),
    ),
    (
        "rlre-ciphered-initiate-response",
        _DLMS_COSEM_RLRE,
        "6328800100BE230421281F3001234567891214A0845E475714383F65BC19745CA235906525E4F3E1C893",
        Rlre(ReleaseResponseReason.NORMAL, _GLO_INITIATE_RESPONSE),
    ),
)

#: (name, source, hex, expected decoded xDLMS initiate APDU)
INITIATE_VECTORS: tuple[tuple[str, str, str, object], ...] = (
    (
        "initiate-request",
        "user-information of the Green Book AARQ examples (" + _DLMS_COSEM_AARQ + ")",
        "01000000065F1F0400007E1F04B0",
        _REQUEST,
    ),
    (
        "initiate-request-dedicated-key",
        "plaintext of the Green Book ciphered AARQ example's glo-initiate-request, deciphered with the "
        "Green Book suite-0 keys; also in u9n/dlms-cosem tests/test_xdlms/test_initiate.py",
        "01011000112233445566778899AABBCCDDEEFF0000065F1F0400007E1F04B0",
        InitiateRequest(
            PROPOSED,
            client_max_receive_pdu_size=1200,
            dedicated_key=bytes.fromhex("00112233445566778899AABBCCDDEEFF"),
        ),
    ),
    (
        "initiate-response",
        "user-information of the Green Book AARE examples (" + _DLMS_COSEM_AARE + ")",
        "0800065F1F040000501F01F40007",
        _RESPONSE,
    ),
    (
        "initiate-response-ciphered-example-plaintext",
        "plaintext of the glo-initiate-response in the RLRE example (" + _DLMS_COSEM_RLRE + "), "
        "deciphered here with the Green Book suite-0 keys, server system title 4D4D4D0000BC614E",
        "0800065F1F0400007C1F04000007",
        InitiateResponse(
            C.PRIORITY_MGMT_SUPPORTED
            | C.ATTRIBUTE0_SUPPORTED_WITH_GET
            | C.BLOCK_TRANSFER_WITH_GET_OR_READ
            | C.BLOCK_TRANSFER_WITH_SET_OR_WRITE
            | C.BLOCK_TRANSFER_WITH_ACTION
            | C.GET
            | C.SET
            | C.SELECTIVE_ACCESS
            | C.EVENT_NOTIFICATION
            | C.ACTION,
            server_max_receive_pdu_size=1024,
        ),
    ),
    (
        "confirmed-service-error-dlms-version-too-low",
        "user-information of the Green Book AARE rejection example (" + _DLMS_COSEM_AARE + ")",
        "0E010601",
        ConfirmedServiceError(ConfirmedServiceErrorChoice.INITIATE_ERROR, ServiceErrorChoice.INITIATE, 1),
    ),
)
