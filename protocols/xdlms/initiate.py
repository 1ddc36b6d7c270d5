"""xDLMS InitiateRequest / InitiateResponse, and decoding of the ConfirmedServiceError that refuses them."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.errors import DecodeError, EncodeError
from protocols.xdlms.conformance import Conformance, decode_conformance, encode_conformance
from protocols.xdlms.errors import (
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    InitiateError,
    ServiceErrorChoice,
)

__all__ = [
    "DLMS_VERSION",
    "VAA_NAME_LN",
    "VAA_NAME_SN",
    "ConfirmedServiceError",
    "ConfirmedServiceErrorChoice",
    "InitiateError",
    "InitiateRequest",
    "InitiateResponse",
    "ServiceErrorChoice",
    "decode_initiate_apdu",
]

#: The DLMS version every current meter speaks.
DLMS_VERSION = 6
#: vaa-name of the InitiateResponse for logical-name referencing.
VAA_NAME_LN = 0x0007
#: vaa-name of the InitiateResponse for short-name referencing.
VAA_NAME_SN = 0xFA00

_INITIATE_REQUEST = 0x01
_INITIATE_RESPONSE = 0x08
_CONFIRMED_SERVICE_ERROR = 0x0E


def _optional_u8(buf: bytes, pos: int, what: str) -> tuple[int | None, int]:
    flag = buf[pos]
    if flag == 0:
        return None, pos + 1
    if flag != 1:
        raise DecodeError(f"bad presence flag 0x{flag:02x} for {what}", pos)
    return buf[pos + 1], pos + 2


def _check_u8(value: int | None, what: str) -> None:
    if value is not None and not 0 <= value <= 0xFF:
        raise EncodeError(f"{what} {value} does not fit Unsigned8")


def _check_u16(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} {value} does not fit Unsigned16")


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    """xDLMS-Initiate.request, carried in the AARQ's user-information."""

    proposed_conformance: Conformance
    client_max_receive_pdu_size: int = 0xFFFF
    proposed_dlms_version_number: int = DLMS_VERSION
    dedicated_key: bytes | None = None
    response_allowed: bool = True
    proposed_quality_of_service: int | None = None

    def encode(self) -> bytes:
        _check_u8(self.proposed_dlms_version_number, "dlms version")
        _check_u8(self.proposed_quality_of_service, "quality of service")
        _check_u16(self.client_max_receive_pdu_size, "client-max-receive-pdu-size")
        out = bytearray((_INITIATE_REQUEST,))
        if self.dedicated_key is None:
            out.append(0)
        else:
            if len(self.dedicated_key) > 0x7F:
                raise EncodeError("dedicated key too long")
            out += bytes((1, len(self.dedicated_key))) + self.dedicated_key
        # response-allowed is BOOLEAN DEFAULT TRUE: the default is sent as "absent".
        out += b"\x00" if self.response_allowed else b"\x01\x00"
        if self.proposed_quality_of_service is None:
            out.append(0)
        else:
            out += bytes((1, self.proposed_quality_of_service))
        out.append(self.proposed_dlms_version_number)
        out += encode_conformance(self.proposed_conformance)
        out += self.client_max_receive_pdu_size.to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def decode(cls, buf: bytes) -> InitiateRequest:
        try:
            return cls._decode(bytes(buf))
        except DecodeError:
            raise
        except (IndexError, ValueError, struct.error) as exc:
            raise DecodeError(f"malformed InitiateRequest: {exc}") from None

    @classmethod
    def _decode(cls, buf: bytes) -> InitiateRequest:
        if not buf or buf[0] != _INITIATE_REQUEST:
            raise DecodeError("not an InitiateRequest", 0)
        pos = 1
        dedicated_key: bytes | None = None
        if buf[pos] == 1:
            length = buf[pos + 1]
            if length > 0x7F or pos + 2 + length > len(buf):
                raise DecodeError("dedicated key truncated", pos)
            dedicated_key = buf[pos + 2 : pos + 2 + length]
            pos += 2 + length
        elif buf[pos] != 0:
            raise DecodeError("bad presence flag for dedicated-key", pos)
        else:
            pos += 1
        allowed, pos = _optional_u8(buf, pos, "response-allowed")
        qos, pos = _optional_u8(buf, pos, "proposed-quality-of-service")
        version = buf[pos]
        conformance, pos = decode_conformance(buf, pos + 1)
        if pos + 2 != len(buf):
            raise DecodeError("InitiateRequest length mismatch", pos)
        return cls(
            proposed_conformance=conformance,
            client_max_receive_pdu_size=int.from_bytes(buf[pos : pos + 2], "big"),
            proposed_dlms_version_number=version,
            dedicated_key=dedicated_key,
            response_allowed=allowed is None or allowed != 0,
            proposed_quality_of_service=qos,
        )


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """xDLMS-Initiate.response, carried in the AARE's user-information."""

    negotiated_conformance: Conformance
    server_max_receive_pdu_size: int
    negotiated_dlms_version_number: int = DLMS_VERSION
    vaa_name: int = VAA_NAME_LN
    negotiated_quality_of_service: int | None = None

    def encode(self) -> bytes:
        _check_u8(self.negotiated_dlms_version_number, "dlms version")
        _check_u8(self.negotiated_quality_of_service, "quality of service")
        _check_u16(self.server_max_receive_pdu_size, "server-max-receive-pdu-size")
        _check_u16(self.vaa_name, "vaa-name")
        out = bytearray((_INITIATE_RESPONSE,))
        if self.negotiated_quality_of_service is None:
            out.append(0)
        else:
            out += bytes((1, self.negotiated_quality_of_service))
        out.append(self.negotiated_dlms_version_number)
        out += encode_conformance(self.negotiated_conformance)
        out += self.server_max_receive_pdu_size.to_bytes(2, "big")
        out += self.vaa_name.to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def decode(cls, buf: bytes) -> InitiateResponse:
        try:
            return cls._decode(bytes(buf))
        except DecodeError:
            raise
        except (IndexError, ValueError, struct.error) as exc:
            raise DecodeError(f"malformed InitiateResponse: {exc}") from None

    @classmethod
    def _decode(cls, buf: bytes) -> InitiateResponse:
        if not buf or buf[0] != _INITIATE_RESPONSE:
            raise DecodeError("not an InitiateResponse", 0)
        qos, pos = _optional_u8(buf, 1, "negotiated-quality-of-service")
        version = buf[pos]
        conformance, pos = decode_conformance(buf, pos + 1)
        if pos + 4 != len(buf):
            raise DecodeError("InitiateResponse length mismatch", pos)
        return cls(
            negotiated_conformance=conformance,
            server_max_receive_pdu_size=int.from_bytes(buf[pos : pos + 2], "big"),
            negotiated_dlms_version_number=version,
            vaa_name=int.from_bytes(buf[pos + 2 : pos + 4], "big"),
            negotiated_quality_of_service=qos,
        )


def decode_initiate_apdu(buf: bytes) -> InitiateRequest | InitiateResponse | ConfirmedServiceError:
    """Decode whichever of the three plain initiate APDUs ``buf`` holds, by its tag."""
    if not buf:
        raise DecodeError("empty APDU", 0)
    tag = buf[0]
    if tag == _INITIATE_REQUEST:
        return InitiateRequest.decode(buf)
    if tag == _INITIATE_RESPONSE:
        return InitiateResponse.decode(buf)
    if tag == _CONFIRMED_SERVICE_ERROR:
        return ConfirmedServiceError.decode(buf)
    raise DecodeError(f"not an initiate APDU: tag 0x{tag:02x}", 0)
