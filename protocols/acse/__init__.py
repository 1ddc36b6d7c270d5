"""ACSE for DLMS/COSEM: association and release APDUs over a small BER codec."""

from __future__ import annotations

from protocols.acse.apdu import (
    AARE_TAG,
    AARQ_TAG,
    RLRE_TAG,
    RLRQ_TAG,
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
    UserInformation,
    decode_acse_apdu,
    decode_user_information,
)

__all__ = [
    "AARE_TAG",
    "AARQ_TAG",
    "RLRE_TAG",
    "RLRQ_TAG",
    "Aare",
    "Aarq",
    "AcseServiceProviderDiagnostic",
    "AcseServiceUserDiagnostic",
    "ApplicationContextName",
    "AssociationResult",
    "MechanismName",
    "ReleaseRequestReason",
    "ReleaseResponseReason",
    "ResultSource",
    "Rlre",
    "Rlrq",
    "UserInformation",
    "decode_acse_apdu",
    "decode_user_information",
]
