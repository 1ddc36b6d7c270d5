"""Ciphered APDU envelopes: service-specific glo-/ded- APDUs and general-glo/ded-/general-ciphering."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from protocols.axdr import decode_length, encode_length
from protocols.errors import DecodeError, EncodeError
from protocols.security.suite0 import SECURITY_HEADER_SIZE, SecurityHeader, read_security_header

__all__ = [
    "AgreedKey",
    "CipheredApdu",
    "CipheredApduTag",
    "GeneralCiphering",
    "GeneralDedCiphering",
    "GeneralGloCiphering",
    "IdentifiedKey",
    "KeyInfo",
    "ServiceSpecificCipheredApdu",
    "WrappedKey",
    "ciphered_tag",
    "decode_ciphered_apdu",
    "is_ciphered_tag",
    "plain_tag",
]


class CipheredApduTag(IntEnum):
    """Tags of the ciphered xDLMS APDUs (Green Book, xDLMS APDU table)."""

    GLO_INITIATE_REQUEST = 33
    GLO_READ_REQUEST = 37
    GLO_WRITE_REQUEST = 38
    GLO_INITIATE_RESPONSE = 40
    GLO_READ_RESPONSE = 44
    GLO_WRITE_RESPONSE = 45
    GLO_CONFIRMED_SERVICE_ERROR = 46
    GLO_UNCONFIRMED_WRITE_REQUEST = 54
    GLO_INFORMATION_REPORT_REQUEST = 56
    DED_INITIATE_REQUEST = 65
    DED_READ_REQUEST = 69
    DED_WRITE_REQUEST = 70
    DED_INITIATE_RESPONSE = 72
    DED_READ_RESPONSE = 76
    DED_WRITE_RESPONSE = 77
    DED_CONFIRMED_SERVICE_ERROR = 78
    DED_UNCONFIRMED_WRITE_REQUEST = 86
    DED_INFORMATION_REPORT_REQUEST = 88
    GLO_GET_REQUEST = 200
    GLO_SET_REQUEST = 201
    GLO_EVENT_NOTIFICATION_REQUEST = 202
    GLO_ACTION_REQUEST = 203
    GLO_GET_RESPONSE = 204
    GLO_SET_RESPONSE = 205
    GLO_ACTION_RESPONSE = 207
    DED_GET_REQUEST = 208
    DED_SET_REQUEST = 209
    DED_EVENT_NOTIFICATION_REQUEST = 210
    DED_ACTION_REQUEST = 211
    DED_GET_RESPONSE = 212
    DED_SET_RESPONSE = 213
    DED_ACTION_RESPONSE = 215
    GENERAL_GLO_CIPHERING = 219
    GENERAL_DED_CIPHERING = 220
    GENERAL_CIPHERING = 221


# plain tag -> (glo- tag, ded- tag). Data-notification and exception-response have no
# service-specific ciphered form: they travel in general-glo/ded-ciphering.
_CIPHERED_FORMS: dict[int, tuple[CipheredApduTag, CipheredApduTag]] = {
    0x01: (CipheredApduTag.GLO_INITIATE_REQUEST, CipheredApduTag.DED_INITIATE_REQUEST),
    0x05: (CipheredApduTag.GLO_READ_REQUEST, CipheredApduTag.DED_READ_REQUEST),
    0x06: (CipheredApduTag.GLO_WRITE_REQUEST, CipheredApduTag.DED_WRITE_REQUEST),
    0x08: (CipheredApduTag.GLO_INITIATE_RESPONSE, CipheredApduTag.DED_INITIATE_RESPONSE),
    0x0C: (CipheredApduTag.GLO_READ_RESPONSE, CipheredApduTag.DED_READ_RESPONSE),
    0x0D: (CipheredApduTag.GLO_WRITE_RESPONSE, CipheredApduTag.DED_WRITE_RESPONSE),
    0x0E: (CipheredApduTag.GLO_CONFIRMED_SERVICE_ERROR, CipheredApduTag.DED_CONFIRMED_SERVICE_ERROR),
    0x16: (CipheredApduTag.GLO_UNCONFIRMED_WRITE_REQUEST, CipheredApduTag.DED_UNCONFIRMED_WRITE_REQUEST),
    0x18: (CipheredApduTag.GLO_INFORMATION_REPORT_REQUEST, CipheredApduTag.DED_INFORMATION_REPORT_REQUEST),
    0xC0: (CipheredApduTag.GLO_GET_REQUEST, CipheredApduTag.DED_GET_REQUEST),
    0xC1: (CipheredApduTag.GLO_SET_REQUEST, CipheredApduTag.DED_SET_REQUEST),
    0xC2: (CipheredApduTag.GLO_EVENT_NOTIFICATION_REQUEST, CipheredApduTag.DED_EVENT_NOTIFICATION_REQUEST),
    0xC3: (CipheredApduTag.GLO_ACTION_REQUEST, CipheredApduTag.DED_ACTION_REQUEST),
    0xC4: (CipheredApduTag.GLO_GET_RESPONSE, CipheredApduTag.DED_GET_RESPONSE),
    0xC5: (CipheredApduTag.GLO_SET_RESPONSE, CipheredApduTag.DED_SET_RESPONSE),
    0xC7: (CipheredApduTag.GLO_ACTION_RESPONSE, CipheredApduTag.DED_ACTION_RESPONSE),
}
_PLAIN_FORMS: dict[int, tuple[int, bool]] = {}
for _plain, (_glo, _ded) in _CIPHERED_FORMS.items():
    _PLAIN_FORMS[_glo] = (_plain, False)
    _PLAIN_FORMS[_ded] = (_plain, True)
_SERVICE_SPECIFIC = frozenset(_PLAIN_FORMS)
_CIPHERED_APDU_TAGS = {int(tag): tag for tag in CipheredApduTag}


def ciphered_tag(plain: int, *, dedicated: bool = False) -> CipheredApduTag:
    """The glo- (or ded-) tag that carries a plain APDU tag, e.g. 0xC0 -> 0xC8 (0xD0 dedicated)."""
    forms = _CIPHERED_FORMS.get(plain)
    if forms is None:
        raise EncodeError(f"APDU tag 0x{plain:02x} has no service-specific ciphered form")
    return forms[1] if dedicated else forms[0]


def plain_tag(ciphered: int) -> tuple[int, bool]:
    """The plain APDU tag a glo-/ded- tag stands for, and whether it is the dedicated-key form."""
    found = _PLAIN_FORMS.get(ciphered)
    if found is None:
        raise DecodeError(f"0x{ciphered:02x} is not a service-specific ciphered APDU tag")
    return found


def is_ciphered_tag(tag: int) -> bool:
    """Whether an APDU with this first byte is ciphered (service-specific or general)."""
    return tag in _SERVICE_SPECIFIC or tag in (219, 220, 221)


def _octets(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
    length, pos = decode_length(buf, pos)
    end = pos + length
    if end > len(buf):
        raise DecodeError(f"{what} of {length} bytes truncated", pos)
    return buf[pos:end], end


@dataclass(frozen=True, slots=True)
class ServiceSpecificCipheredApdu:
    """A glo-xxx or ded-xxx APDU: tag, length, then the ciphered content SC || IC || payload || tag.

    ``content`` is the whole ciphered content, which ``security.decipher`` takes as it is.
    """

    tag: CipheredApduTag
    content: bytes

    @property
    def header(self) -> SecurityHeader:
        return read_security_header(self.content)

    @property
    def dedicated(self) -> bool:
        return plain_tag(self.tag)[1]

    @property
    def plain_tag(self) -> int:
        return plain_tag(self.tag)[0]

    def encode(self) -> bytes:
        if self.tag not in _SERVICE_SPECIFIC:
            raise EncodeError(f"{self.tag!r} is not a service-specific ciphered tag")
        if len(self.content) < SECURITY_HEADER_SIZE:
            raise EncodeError("ciphered content shorter than its security header")
        return bytes((self.tag,)) + encode_length(len(self.content)) + bytes(self.content)

    @classmethod
    def decode(cls, buf: bytes) -> ServiceSpecificCipheredApdu:
        buf = bytes(buf)
        if not buf:
            raise DecodeError("empty APDU", 0)
        if buf[0] not in _SERVICE_SPECIFIC:
            raise DecodeError(f"0x{buf[0]:02x} is not a service-specific ciphered APDU tag", 0)
        content, end = _octets(buf, 1, "ciphered content")
        if end != len(buf):
            raise DecodeError(f"{len(buf) - end} bytes after the ciphered APDU", end)
        if len(content) < SECURITY_HEADER_SIZE:
            raise DecodeError("ciphered content shorter than its security header", 1)
        return cls(_CIPHERED_APDU_TAGS[buf[0]], content)


def _decode_system_title_and_content(buf: bytes, tag: int, name: str) -> tuple[bytes, bytes]:
    if not buf or buf[0] != tag:
        raise DecodeError(f"not a {name}", 0)
    title, pos = _octets(buf, 1, "system title")
    content, pos = _octets(buf, pos, "ciphered content")
    if pos != len(buf):
        raise DecodeError(f"{len(buf) - pos} bytes after the {name}", pos)
    if len(content) < SECURITY_HEADER_SIZE:
        raise DecodeError("ciphered content shorter than its security header", pos)
    return title, content


@dataclass(frozen=True, slots=True)
class _TitledCiphering:
    """The sender's system title, then the ciphered content: general-glo and general-ded alike."""

    system_title: bytes
    content: bytes

    TAG: ClassVar[CipheredApduTag]
    NAME: ClassVar[str]

    @property
    def header(self) -> SecurityHeader:
        return read_security_header(self.content)

    def encode(self) -> bytes:
        return (
            bytes((self.TAG,))
            + encode_length(len(self.system_title))
            + bytes(self.system_title)
            + encode_length(len(self.content))
            + bytes(self.content)
        )

    @classmethod
    def decode(cls, buf: bytes) -> Self:
        try:
            return cls(*_decode_system_title_and_content(bytes(buf), cls.TAG, cls.NAME))
        except (IndexError, ValueError) as exc:
            raise DecodeError(f"malformed {cls.NAME}: {exc}") from None


@dataclass(frozen=True, slots=True)
class GeneralGloCiphering(_TitledCiphering):
    """general-glo-ciphering (0xDB): the sender's system title, then the ciphered content."""

    TAG: ClassVar[CipheredApduTag] = CipheredApduTag.GENERAL_GLO_CIPHERING
    NAME: ClassVar[str] = "general-glo-ciphering"


@dataclass(frozen=True, slots=True)
class GeneralDedCiphering(_TitledCiphering):
    """general-ded-ciphering (0xDC): as general-glo-ciphering, under the dedicated key."""

    TAG: ClassVar[CipheredApduTag] = CipheredApduTag.GENERAL_DED_CIPHERING
    NAME: ClassVar[str] = "general-ded-ciphering"


@dataclass(frozen=True, slots=True)
class IdentifiedKey:
    """key-info identified-key [0]: 0 global unicast encryption key, 1 global broadcast key."""

    key_id: int


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """key-info wrapped-key [1]: a key wrapped under the key encryption key (kek-id 0, master key)."""

    kek_id: int
    key_ciphered_data: bytes


@dataclass(frozen=True, slots=True)
class AgreedKey:
    """key-info agreed-key [2]: key agreement parameters and the ciphered data."""

    key_parameters: bytes
    key_ciphered_data: bytes


KeyInfo = IdentifiedKey | WrappedKey | AgreedKey


def _encode_octets(value: bytes) -> bytes:
    return encode_length(len(value)) + bytes(value)


def _encode_key_info(info: KeyInfo | None) -> bytes:
    if info is None:
        return b"\x00"
    if isinstance(info, IdentifiedKey):
        if not 0 <= info.key_id <= 0xFF:
            raise EncodeError(f"key-id {info.key_id} does not fit an enum")
        return bytes((1, 0, info.key_id))
    if isinstance(info, WrappedKey):
        if not 0 <= info.kek_id <= 0xFF:
            raise EncodeError(f"kek-id {info.kek_id} does not fit an enum")
        return bytes((1, 1, info.kek_id)) + _encode_octets(info.key_ciphered_data)
    return b"\x01\x02" + _encode_octets(info.key_parameters) + _encode_octets(info.key_ciphered_data)


@dataclass(frozen=True, slots=True)
class GeneralCiphering:
    """general-ciphering (0xDD): transaction id, both system titles, date-time, other information,
    optional key-info, then the ciphered content."""

    transaction_id: bytes
    originator_system_title: bytes
    recipient_system_title: bytes
    date_time: bytes
    other_information: bytes
    content: bytes
    key_info: KeyInfo | None = None

    TAG = CipheredApduTag.GENERAL_CIPHERING

    @property
    def header(self) -> SecurityHeader:
        return read_security_header(self.content)

    def encode(self) -> bytes:
        return b"".join(
            (
                bytes((self.TAG,)),
                _encode_octets(self.transaction_id),
                _encode_octets(self.originator_system_title),
                _encode_octets(self.recipient_system_title),
                _encode_octets(self.date_time),
                _encode_octets(self.other_information),
                _encode_key_info(self.key_info),
                _encode_octets(self.content),
            )
        )

    @classmethod
    def decode(cls, buf: bytes) -> GeneralCiphering:
        try:
            return cls._decode(bytes(buf))
        except DecodeError:
            raise
        except (IndexError, ValueError, struct.error) as exc:
            raise DecodeError(f"malformed general-ciphering: {exc}") from None

    @classmethod
    def _decode(cls, buf: bytes) -> GeneralCiphering:
        if not buf or buf[0] != cls.TAG:
            raise DecodeError("not a general-ciphering", 0)
        fields = []
        pos = 1
        for what in (
            "transaction-id",
            "originator-system-title",
            "recipient-system-title",
            "date-time",
            "other-information",
        ):
            value, pos = _octets(buf, pos, what)
            fields.append(value)
        key_info: KeyInfo | None = None
        flag = buf[pos]
        pos += 1
        if flag == 1:
            choice = buf[pos]
            if choice == 0:
                key_info = IdentifiedKey(buf[pos + 1])
                pos += 2
            elif choice == 1:
                kek_id = buf[pos + 1]
                data, pos = _octets(buf, pos + 2, "key-ciphered-data")
                key_info = WrappedKey(kek_id, data)
            elif choice == 2:
                params, pos = _octets(buf, pos + 1, "key-parameters")
                data, pos = _octets(buf, pos, "key-ciphered-data")
                key_info = AgreedKey(params, data)
            else:
                raise DecodeError(f"unknown key-info choice {choice}", pos)
        elif flag != 0:
            raise DecodeError(f"bad presence flag 0x{flag:02x} for key-info", pos - 1)
        content, pos = _octets(buf, pos, "ciphered content")
        if pos != len(buf):
            raise DecodeError(f"{len(buf) - pos} bytes after the general-ciphering", pos)
        if len(content) < SECURITY_HEADER_SIZE:
            raise DecodeError("ciphered content shorter than its security header", pos)
        return cls(fields[0], fields[1], fields[2], fields[3], fields[4], content, key_info)


CipheredApdu = ServiceSpecificCipheredApdu | GeneralGloCiphering | GeneralDedCiphering | GeneralCiphering


def decode_ciphered_apdu(buf: bytes) -> CipheredApdu:
    """Decode any ciphered envelope by its first byte."""
    if not buf:
        raise DecodeError("empty APDU", 0)
    tag = buf[0]
    if tag in _SERVICE_SPECIFIC:
        return ServiceSpecificCipheredApdu.decode(buf)
    if tag == CipheredApduTag.GENERAL_GLO_CIPHERING:
        return GeneralGloCiphering.decode(buf)
    if tag == CipheredApduTag.GENERAL_DED_CIPHERING:
        return GeneralDedCiphering.decode(buf)
    if tag == CipheredApduTag.GENERAL_CIPHERING:
        return GeneralCiphering.decode(buf)
    raise DecodeError(f"0x{tag:02x} is not a ciphered APDU tag", 0)
