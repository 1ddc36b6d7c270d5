"""ACSE APDUs for DLMS/COSEM (AARQ, AARE, RLRQ, RLRE), BER-encoded, with xDLMS user-information."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import TypeVar

from protocols.acse.ber import (
    decode_bit_string,
    decode_integer,
    decode_object_identifier,
    decode_tlv,
    encode_bit_string,
    encode_integer,
    encode_object_identifier,
    encode_tlv,
    iter_tlvs,
)
from protocols.errors import DecodeError, EncodeError
from protocols.security.envelopes import CipheredApdu, decode_ciphered_apdu, is_ciphered_tag
from protocols.xdlms.initiate import (
    ConfirmedServiceError,
    InitiateRequest,
    InitiateResponse,
    decode_initiate_apdu,
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

AARQ_TAG = 0x60
AARE_TAG = 0x61
RLRQ_TAG = 0x62
RLRE_TAG = 0x63

# {joint-iso-ccitt(2) country(16) country-name(756) identified-organization(5) DLMS-UA(8)}
_DLMS_UA = (2, 16, 756, 5, 8)
_CONTEXT_ARC = 1
_MECHANISM_ARC = 2

#: The xDLMS APDUs user-information may carry.
UserInformation = InitiateRequest | InitiateResponse | ConfirmedServiceError | CipheredApdu


class ApplicationContextName(IntEnum):
    """Last arc of 2.16.756.5.8.1.x."""

    LOGICAL_NAME = 1
    SHORT_NAME = 2
    LOGICAL_NAME_WITH_CIPHERING = 3
    SHORT_NAME_WITH_CIPHERING = 4


class MechanismName(IntEnum):
    """Authentication mechanism, last arc of 2.16.756.5.8.2.x."""

    NONE = 0
    LLS = 1
    HLS = 2
    HLS_MD5 = 3
    HLS_SHA1 = 4
    HLS_GMAC = 5
    HLS_SHA256 = 6
    HLS_ECDSA = 7


class AssociationResult(IntEnum):
    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class ResultSource(IntEnum):
    """Which CHOICE of result-source-diagnostic the AARE carries."""

    ACSE_SERVICE_USER = 1
    ACSE_SERVICE_PROVIDER = 2


class AcseServiceUserDiagnostic(IntEnum):
    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


class AcseServiceProviderDiagnostic(IntEnum):
    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_ACSE_VERSION = 2


class ReleaseRequestReason(IntEnum):
    NORMAL = 0
    URGENT = 1
    USER_DEFINED = 30


class ReleaseResponseReason(IntEnum):
    NORMAL = 0
    NOT_FINISHED = 1
    USER_DEFINED = 30


# --- field codecs --------------------------------------------------------------------------------

_OCTET_STRING = 0x04
_INTEGER = 0x02
_OID = 0x06
_CHARSTRING = 0x80  # Authentication-value charstring [0] IMPLICIT GraphicString
_ACSE_REQUIREMENTS_AUTHENTICATION = "1"


@lru_cache(maxsize=64)
def _oid_arc(content: bytes, family: int, what: str) -> int:
    arcs = decode_object_identifier(content)
    if len(arcs) != 7 or arcs[:5] != _DLMS_UA or arcs[5] != family:
        raise DecodeError(f"unknown {what} {'.'.join(map(str, arcs))}")
    return arcs[6]


@lru_cache(maxsize=64)
def _encode_oid(family: int, arc: int) -> bytes:
    return encode_object_identifier((*_DLMS_UA, family, arc))


def _inner(buf: bytes, start: int, end: int, tag: int, what: str) -> bytes:
    inner_tag, istart, iend = decode_tlv(buf, start, end)
    if inner_tag != tag or iend != end:
        raise DecodeError(f"{what}: expected one element with tag 0x{tag:02x}", start)
    return buf[istart:iend]


def _wrap(tag: int, inner_tag: int, content: bytes) -> bytes:
    return encode_tlv(tag, encode_tlv(inner_tag, content))


def _wrap_int(tag: int, value: int) -> bytes:
    return _wrap(tag, _INTEGER, encode_integer(value))


def _enum_or_int(enum: type[IntEnum], value: int) -> int:
    try:
        return enum(value)
    except ValueError:
        return value


def decode_user_information(apdu: bytes) -> UserInformation:
    """Decode the xDLMS APDU in an association-information octet string."""
    if not apdu:
        raise DecodeError("empty user-information", 0)
    if is_ciphered_tag(apdu[0]):
        return decode_ciphered_apdu(apdu)
    return decode_initiate_apdu(apdu)


def _decode_user_information(buf: bytes, start: int, end: int) -> UserInformation:
    return decode_user_information(_inner(buf, start, end, _OCTET_STRING, "user-information"))


def _encode_user_information(info: UserInformation) -> bytes:
    return _wrap(0xBE, _OCTET_STRING, info.encode())


def _decode_auth_value(buf: bytes, start: int, end: int) -> bytes:
    return _inner(buf, start, end, _CHARSTRING, "authentication-value (charstring)")


def _requirements(content: bytes) -> bool:
    return decode_bit_string(content)[:1] == _ACSE_REQUIREMENTS_AUTHENTICATION


def _expect_whole(buf: bytes, tag: int, name: str) -> tuple[int, int]:
    outer, start, end = decode_tlv(buf, 0)
    if outer != tag:
        raise DecodeError(f"not an {name}: tag 0x{outer:02x}", 0)
    if end != len(buf):
        raise DecodeError(f"{len(buf) - end} bytes after the {name}", end)
    return start, end


_T = TypeVar("_T")


def _guarded(name: str, decode: Callable[[bytes], _T], buf: bytes) -> _T:
    try:
        return decode(bytes(buf))
    except DecodeError:
        raise
    except (IndexError, ValueError, struct.error) as exc:
        raise DecodeError(f"malformed {name}: {exc}") from None


# --- APDUs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Aarq:
    """A-ASSOCIATE request. ``calling_ap_title`` is the client's system title when ciphering.

    ``sender_acse_requirements`` True means the authentication functional unit is selected
    (required with any mechanism other than NONE).
    """

    application_context_name: ApplicationContextName = ApplicationContextName.LOGICAL_NAME
    user_information: UserInformation | None = None
    mechanism_name: MechanismName | None = None
    calling_authentication_value: bytes | None = None
    sender_acse_requirements: bool = False
    calling_ap_title: bytes | None = None
    calling_ae_qualifier: bytes | None = None
    calling_ap_invocation_id: int | None = None
    calling_ae_invocation_id: int | None = None
    called_ap_title: bytes | None = None
    called_ae_qualifier: bytes | None = None
    called_ap_invocation_id: int | None = None
    called_ae_invocation_id: int | None = None
    implementation_information: bytes | None = None

    def encode(self) -> bytes:
        parts = [_wrap(0xA1, _OID, _encode_oid(_CONTEXT_ARC, self.application_context_name))]
        if self.called_ap_title is not None:
            parts.append(_wrap(0xA2, _OCTET_STRING, self.called_ap_title))
        if self.called_ae_qualifier is not None:
            parts.append(_wrap(0xA3, _OCTET_STRING, self.called_ae_qualifier))
        if self.called_ap_invocation_id is not None:
            parts.append(_wrap_int(0xA4, self.called_ap_invocation_id))
        if self.called_ae_invocation_id is not None:
            parts.append(_wrap_int(0xA5, self.called_ae_invocation_id))
        if self.calling_ap_title is not None:
            parts.append(_wrap(0xA6, _OCTET_STRING, self.calling_ap_title))
        if self.calling_ae_qualifier is not None:
            parts.append(_wrap(0xA7, _OCTET_STRING, self.calling_ae_qualifier))
        if self.calling_ap_invocation_id is not None:
            parts.append(_wrap_int(0xA8, self.calling_ap_invocation_id))
        if self.calling_ae_invocation_id is not None:
            parts.append(_wrap_int(0xA9, self.calling_ae_invocation_id))
        if self.sender_acse_requirements:
            parts.append(encode_tlv(0x8A, encode_bit_string(_ACSE_REQUIREMENTS_AUTHENTICATION)))
        if self.mechanism_name is not None:
            parts.append(encode_tlv(0x8B, _encode_oid(_MECHANISM_ARC, self.mechanism_name)))
        if self.calling_authentication_value is not None:
            parts.append(_wrap(0xAC, _CHARSTRING, self.calling_authentication_value))
        if self.implementation_information is not None:
            parts.append(encode_tlv(0x9D, self.implementation_information))
        if self.user_information is not None:
            parts.append(_encode_user_information(self.user_information))
        return encode_tlv(AARQ_TAG, b"".join(parts))

    @classmethod
    def decode(cls, buf: bytes) -> Aarq:
        return _guarded("AARQ", cls._decode, buf)

    @classmethod
    def _decode(cls, buf: bytes) -> Aarq:
        start, end = _expect_whole(buf, AARQ_TAG, "AARQ")
        fields: dict[str, object] = {}
        for tag, s, e in iter_tlvs(buf, start, end):
            if tag == 0xA1:
                arc = _oid_arc(
                    _inner(buf, s, e, _OID, "application-context-name"), _CONTEXT_ARC, "application context"
                )
                fields["application_context_name"] = ApplicationContextName(arc)
            elif tag in _AARQ_TITLES:
                fields[_AARQ_TITLES[tag]] = _inner(buf, s, e, _OCTET_STRING, _AARQ_TITLES[tag])
            elif tag in _AARQ_IDS:
                fields[_AARQ_IDS[tag]] = decode_integer(_inner(buf, s, e, _INTEGER, _AARQ_IDS[tag]))
            elif tag == 0x8A:
                fields["sender_acse_requirements"] = _requirements(buf[s:e])
            elif tag == 0x8B:
                fields["mechanism_name"] = MechanismName(_oid_arc(buf[s:e], _MECHANISM_ARC, "mechanism"))
            elif tag == 0xAC:
                fields["calling_authentication_value"] = _decode_auth_value(buf, s, e)
            elif tag == 0x9D:
                fields["implementation_information"] = buf[s:e]
            elif tag == 0xBE:
                fields["user_information"] = _decode_user_information(buf, s, e)
            # Other fields (protocol-version, anything newer) are tolerated and ignored.
        if "application_context_name" not in fields:
            raise DecodeError("AARQ without application-context-name")
        return cls(**fields)  # type: ignore[arg-type]


_AARQ_TITLES = {
    0xA2: "called_ap_title",
    0xA3: "called_ae_qualifier",
    0xA6: "calling_ap_title",
    0xA7: "calling_ae_qualifier",
}
_AARQ_IDS = {
    0xA4: "called_ap_invocation_id",
    0xA5: "called_ae_invocation_id",
    0xA8: "calling_ap_invocation_id",
    0xA9: "calling_ae_invocation_id",
}


@dataclass(frozen=True, slots=True)
class Aare:
    """A-ASSOCIATE response. ``responding_ap_title`` is the server's system title when ciphering.

    ``diagnostic`` is an ``AcseServiceUserDiagnostic`` or ``AcseServiceProviderDiagnostic``
    (by ``result_source``), or the bare int when the value is not one the spec names.
    """

    result: AssociationResult = AssociationResult.ACCEPTED
    diagnostic: int = AcseServiceUserDiagnostic.NULL
    result_source: ResultSource = ResultSource.ACSE_SERVICE_USER
    application_context_name: ApplicationContextName = ApplicationContextName.LOGICAL_NAME
    user_information: UserInformation | None = None
    mechanism_name: MechanismName | None = None
    responding_authentication_value: bytes | None = None
    responder_acse_requirements: bool = False
    responding_ap_title: bytes | None = None
    responding_ae_qualifier: bytes | None = None
    responding_ap_invocation_id: int | None = None
    responding_ae_invocation_id: int | None = None
    implementation_information: bytes | None = None

    def encode(self) -> bytes:
        if self.result_source not in (ResultSource.ACSE_SERVICE_USER, ResultSource.ACSE_SERVICE_PROVIDER):
            raise EncodeError(f"unknown result source {self.result_source!r}")
        diagnostic = _wrap_int(0xA0 | self.result_source, self.diagnostic)
        parts = [
            _wrap(0xA1, _OID, _encode_oid(_CONTEXT_ARC, self.application_context_name)),
            _wrap_int(0xA2, self.result),
            encode_tlv(0xA3, diagnostic),
        ]
        if self.responding_ap_title is not None:
            parts.append(_wrap(0xA4, _OCTET_STRING, self.responding_ap_title))
        if self.responding_ae_qualifier is not None:
            parts.append(_wrap(0xA5, _OCTET_STRING, self.responding_ae_qualifier))
        if self.responding_ap_invocation_id is not None:
            parts.append(_wrap_int(0xA6, self.responding_ap_invocation_id))
        if self.responding_ae_invocation_id is not None:
            parts.append(_wrap_int(0xA7, self.responding_ae_invocation_id))
        if self.responder_acse_requirements:
            parts.append(encode_tlv(0x88, encode_bit_string(_ACSE_REQUIREMENTS_AUTHENTICATION)))
        if self.mechanism_name is not None:
            parts.append(encode_tlv(0x89, _encode_oid(_MECHANISM_ARC, self.mechanism_name)))
        if self.responding_authentication_value is not None:
            parts.append(_wrap(0xAA, _CHARSTRING, self.responding_authentication_value))
        if self.implementation_information is not None:
            parts.append(encode_tlv(0x9D, self.implementation_information))
        if self.user_information is not None:
            parts.append(_encode_user_information(self.user_information))
        return encode_tlv(AARE_TAG, b"".join(parts))

    @classmethod
    def decode(cls, buf: bytes) -> Aare:
        return _guarded("AARE", cls._decode, buf)

    @classmethod
    def _decode(cls, buf: bytes) -> Aare:
        start, end = _expect_whole(buf, AARE_TAG, "AARE")
        fields: dict[str, object] = {}
        for tag, s, e in iter_tlvs(buf, start, end):
            if tag == 0xA1:
                arc = _oid_arc(
                    _inner(buf, s, e, _OID, "application-context-name"), _CONTEXT_ARC, "application context"
                )
                fields["application_context_name"] = ApplicationContextName(arc)
            elif tag == 0xA2:
                fields["result"] = AssociationResult(decode_integer(_inner(buf, s, e, _INTEGER, "result")))
            elif tag == 0xA3:
                choice, cs, ce = decode_tlv(buf, s, e)
                if ce != e or choice not in (0xA1, 0xA2):
                    raise DecodeError("result-source-diagnostic is acse-service-user or -provider", s)
                source = ResultSource(choice & 0x0F)
                value = decode_integer(_inner(buf, cs, ce, _INTEGER, "diagnostic"))
                enum: type[IntEnum] = (
                    AcseServiceUserDiagnostic
                    if source is ResultSource.ACSE_SERVICE_USER
                    else AcseServiceProviderDiagnostic
                )
                fields["result_source"] = source
                fields["diagnostic"] = _enum_or_int(enum, value)
            elif tag in _AARE_TITLES:
                fields[_AARE_TITLES[tag]] = _inner(buf, s, e, _OCTET_STRING, _AARE_TITLES[tag])
            elif tag in _AARE_IDS:
                fields[_AARE_IDS[tag]] = decode_integer(_inner(buf, s, e, _INTEGER, _AARE_IDS[tag]))
            elif tag == 0x88:
                fields["responder_acse_requirements"] = _requirements(buf[s:e])
            elif tag == 0x89:
                fields["mechanism_name"] = MechanismName(_oid_arc(buf[s:e], _MECHANISM_ARC, "mechanism"))
            elif tag == 0xAA:
                fields["responding_authentication_value"] = _decode_auth_value(buf, s, e)
            elif tag == 0x9D:
                fields["implementation_information"] = buf[s:e]
            elif tag == 0xBE:
                fields["user_information"] = _decode_user_information(buf, s, e)
        for required in ("application_context_name", "result", "diagnostic"):
            if required not in fields:
                raise DecodeError(f"AARE without {required.replace('_', '-')}")
        return cls(**fields)  # type: ignore[arg-type]


_AARE_TITLES = {0xA4: "responding_ap_title", 0xA5: "responding_ae_qualifier"}
_AARE_IDS = {0xA6: "responding_ap_invocation_id", 0xA7: "responding_ae_invocation_id"}


def _encode_release(apdu_tag: int, reason: int | None, info: UserInformation | None) -> bytes:
    parts = []
    if reason is not None:
        parts.append(encode_tlv(0x80, encode_integer(reason)))
    if info is not None:
        parts.append(_encode_user_information(info))
    return encode_tlv(apdu_tag, b"".join(parts))


def _decode_release(buf: bytes, apdu_tag: int, name: str) -> tuple[int | None, UserInformation | None]:
    start, end = _expect_whole(buf, apdu_tag, name)
    reason: int | None = None
    info: UserInformation | None = None
    for tag, s, e in iter_tlvs(buf, start, end):
        if tag == 0x80:
            reason = decode_integer(buf[s:e])
        elif tag == 0xBE:
            info = _decode_user_information(buf, s, e)
    return reason, info


@dataclass(frozen=True, slots=True)
class Rlrq:
    """A-RELEASE request; with ciphering, user-information holds a ciphered InitiateRequest."""

    reason: ReleaseRequestReason | None = ReleaseRequestReason.NORMAL
    user_information: UserInformation | None = None

    def encode(self) -> bytes:
        return _encode_release(RLRQ_TAG, self.reason, self.user_information)

    @classmethod
    def decode(cls, buf: bytes) -> Rlrq:
        return _guarded("RLRQ", cls._decode, buf)

    @classmethod
    def _decode(cls, buf: bytes) -> Rlrq:
        reason, info = _decode_release(buf, RLRQ_TAG, "RLRQ")
        return cls(None if reason is None else ReleaseRequestReason(reason), info)


@dataclass(frozen=True, slots=True)
class Rlre:
    """A-RELEASE response; with ciphering, user-information holds a ciphered InitiateResponse."""

    reason: ReleaseResponseReason | None = ReleaseResponseReason.NORMAL
    user_information: UserInformation | None = None

    def encode(self) -> bytes:
        return _encode_release(RLRE_TAG, self.reason, self.user_information)

    @classmethod
    def decode(cls, buf: bytes) -> Rlre:
        return _guarded("RLRE", cls._decode, buf)

    @classmethod
    def _decode(cls, buf: bytes) -> Rlre:
        reason, info = _decode_release(buf, RLRE_TAG, "RLRE")
        return cls(None if reason is None else ReleaseResponseReason(reason), info)


_DECODERS: dict[int, Callable[[bytes], Aarq | Aare | Rlrq | Rlre]] = {
    AARQ_TAG: Aarq.decode,
    AARE_TAG: Aare.decode,
    RLRQ_TAG: Rlrq.decode,
    RLRE_TAG: Rlre.decode,
}


def decode_acse_apdu(buf: bytes) -> Aarq | Aare | Rlrq | Rlre:
    """Decode whichever ACSE APDU ``buf`` holds, by its tag."""
    if not buf:
        raise DecodeError("empty APDU", 0)
    decoder = _DECODERS.get(buf[0])
    if decoder is None:
        raise DecodeError(f"not an ACSE APDU: tag 0x{buf[0]:02x}", 0)
    return decoder(buf)
