"""One entry point that decodes any DLMS/COSEM APDU by its tag: ACSE, xDLMS, initiate, or ciphered."""

from __future__ import annotations

from protocols.acse import Aare, Aarq, Rlre, Rlrq, decode_acse_apdu
from protocols.acse.apdu import AARE_TAG, AARQ_TAG, RLRE_TAG, RLRQ_TAG
from protocols.errors import DecodeError
from protocols.security import CipheredApdu, decode_ciphered_apdu, is_ciphered_tag
from protocols.xdlms.apdu import XdlmsApdu, decode_xdlms_apdu
from protocols.xdlms.initiate import InitiateRequest, InitiateResponse, decode_initiate_apdu

__all__ = ["Apdu", "decode_apdu"]

Apdu = Aarq | Aare | Rlrq | Rlre | XdlmsApdu | CipheredApdu | InitiateRequest | InitiateResponse

_ACSE_TAGS = frozenset((AARQ_TAG, AARE_TAG, RLRQ_TAG, RLRE_TAG))
_INITIATE_TAGS = frozenset((0x01, 0x08))


def decode_apdu(buf: bytes) -> Apdu:
    """Decode one whole APDU; ciphered ones come back as their envelope (decipher them with keys).

    Raises only ``DecodeError``, whatever the bytes.
    """
    if not isinstance(buf, bytes | bytearray | memoryview):
        raise DecodeError(f"an APDU is bytes, got {type(buf).__name__}")
    buf = bytes(buf)
    if not buf:
        raise DecodeError("empty APDU", 0)
    tag = buf[0]
    if tag in _ACSE_TAGS:
        return decode_acse_apdu(buf)
    if tag in _INITIATE_TAGS:
        initiate = decode_initiate_apdu(buf)
        if isinstance(initiate, InitiateRequest | InitiateResponse):
            return initiate
        # A confirmed-service-error in initiate position has the xDLMS tag 0x0E: not reached here.
        return decode_xdlms_apdu(buf)
    if is_ciphered_tag(tag):
        return decode_ciphered_apdu(buf)
    return decode_xdlms_apdu(buf)
