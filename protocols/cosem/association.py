"""IC 15 Association LN (Blue Book 4.4.3): object list, partners, context, authentication, status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.axdr import Data, DataTag
from protocols.cosem._base import (
    Codec,
    InterfaceClass,
    enum_codec,
    expect_array,
    expect_bool,
    expect_int,
    expect_obis,
    expect_octets,
    expect_structure,
    expect_text,
    logical_name_codec,
    obis_to_data,
    octets_codec,
)
from protocols.errors import DecodeError, EncodeError
from protocols.obis import ObisCode

__all__ = [
    "ASSOCIATION_LN",
    "AssociatedPartnersId",
    "AssociationLnAttribute",
    "AssociationLnMethod",
    "AssociationStatus",
    "AttributeAccessItem",
    "AttributeAccessMode",
    "ContextName",
    "MethodAccessItem",
    "MethodAccessMode",
    "ObjectListElement",
    "UserEntry",
    "XdlmsContextInfo",
    "object_list_codec",
]


class AssociationLnAttribute(IntEnum):
    LOGICAL_NAME = 1
    OBJECT_LIST = 2
    ASSOCIATED_PARTNERS_ID = 3
    APPLICATION_CONTEXT_NAME = 4
    XDLMS_CONTEXT_INFO = 5
    AUTHENTICATION_MECHANISM_NAME = 6
    SECRET = 7
    ASSOCIATION_STATUS = 8
    SECURITY_SETUP_REFERENCE = 9
    USER_LIST = 10
    CURRENT_USER = 11


class AssociationLnMethod(IntEnum):
    REPLY_TO_HLS_AUTHENTICATION = 1
    CHANGE_HLS_SECRET = 2
    ADD_OBJECT = 3
    REMOVE_OBJECT = 4
    ADD_USER = 5
    REMOVE_USER = 6


class AssociationStatus(IntEnum):
    NON_ASSOCIATED = 0
    ASSOCIATION_PENDING = 1
    ASSOCIATED = 2


class AttributeAccessMode(IntEnum):
    """attribute access_mode values up to IC 15 version 2 (version 3 adds protection bits)."""

    NO_ACCESS = 0
    READ_ONLY = 1
    WRITE_ONLY = 2
    READ_AND_WRITE = 3
    AUTHENTICATED_READ_ONLY = 4
    AUTHENTICATED_WRITE_ONLY = 5
    AUTHENTICATED_READ_AND_WRITE = 6


_READABLE = frozenset({1, 3, 4, 6})
_WRITABLE = frozenset({2, 3, 5, 6})


class MethodAccessMode(IntEnum):
    NO_ACCESS = 0
    ACCESS = 1
    AUTHENTICATED_ACCESS = 2


@dataclass(frozen=True, slots=True)
class AttributeAccessItem:
    """``access_selectors`` is None when the attribute takes no selective access (null-data)."""

    attribute_id: int
    access_mode: int
    access_selectors: tuple[int, ...] | None = None

    @property
    def readable(self) -> bool:
        """Readable, per the access modes of IC 15 versions 0 to 2."""
        return self.access_mode in _READABLE

    @property
    def writable(self) -> bool:
        return self.access_mode in _WRITABLE


@dataclass(frozen=True, slots=True)
class MethodAccessItem:
    """``as_boolean`` records that the meter sent the mode as a boolean (IC 15 version 0)."""

    method_id: int
    access_mode: int
    as_boolean: bool = False


@dataclass(frozen=True, slots=True)
class ObjectListElement:
    class_id: int
    version: int
    logical_name: ObisCode
    attribute_access: tuple[AttributeAccessItem, ...] = ()
    method_access: tuple[MethodAccessItem, ...] = ()

    @classmethod
    def from_data(cls, data: Data) -> ObjectListElement:
        class_id, version, name, rights = expect_structure(data, 4, "object_list_element")
        attribute_items, method_items = expect_structure(rights, 2, "access_rights")
        attributes = []
        for item in expect_array(attribute_items, "attribute_access"):
            attr_id, mode, selectors = expect_structure(item, 3, "attribute_access_item")
            chosen: tuple[int, ...] | None = None
            if selectors.tag != DataTag.NULL_DATA:
                chosen = tuple(
                    expect_int(s, "access_selector", DataTag.INTEGER)
                    for s in expect_array(selectors, "access_selectors")
                )
            attributes.append(
                AttributeAccessItem(
                    expect_int(attr_id, "attribute_id", DataTag.INTEGER),
                    expect_int(mode, "attribute access_mode", DataTag.ENUM),
                    chosen,
                )
            )
        methods = []
        for item in expect_array(method_items, "method_access"):
            method_id, mode = expect_structure(item, 2, "method_access_item")
            if mode.tag == DataTag.BOOLEAN:
                methods.append(
                    MethodAccessItem(
                        expect_int(method_id, "method_id", DataTag.INTEGER),
                        int(expect_bool(mode, "method access_mode")),
                        as_boolean=True,
                    )
                )
            else:
                methods.append(
                    MethodAccessItem(
                        expect_int(method_id, "method_id", DataTag.INTEGER),
                        expect_int(mode, "method access_mode", DataTag.ENUM),
                    )
                )
        return cls(
            expect_int(class_id, "class_id", DataTag.LONG_UNSIGNED),
            expect_int(version, "version", DataTag.UNSIGNED),
            expect_obis(name),
            tuple(attributes),
            tuple(methods),
        )

    def to_data(self) -> Data:
        attributes = tuple(
            Data(
                DataTag.STRUCTURE,
                (
                    Data(DataTag.INTEGER, a.attribute_id),
                    Data(DataTag.ENUM, a.access_mode),
                    Data.null()
                    if a.access_selectors is None
                    else Data(DataTag.ARRAY, tuple(Data(DataTag.INTEGER, s) for s in a.access_selectors)),
                ),
            )
            for a in self.attribute_access
        )
        methods = tuple(
            Data(
                DataTag.STRUCTURE,
                (
                    Data(DataTag.INTEGER, m.method_id),
                    Data(DataTag.BOOLEAN, bool(m.access_mode))
                    if m.as_boolean
                    else Data(DataTag.ENUM, m.access_mode),
                ),
            )
            for m in self.method_access
        )
        return Data(
            DataTag.STRUCTURE,
            (
                Data(DataTag.LONG_UNSIGNED, self.class_id),
                Data(DataTag.UNSIGNED, self.version),
                obis_to_data(self.logical_name),
                Data(DataTag.STRUCTURE, (Data(DataTag.ARRAY, attributes), Data(DataTag.ARRAY, methods))),
            ),
        )

    def attribute(self, attribute_id: int) -> AttributeAccessItem | None:
        for item in self.attribute_access:
            if item.attribute_id == attribute_id:
                return item
        return None


def _object_list_from_data(data: Data) -> tuple[ObjectListElement, ...]:
    return tuple(ObjectListElement.from_data(item) for item in expect_array(data, "object_list"))


def _object_list_to_data(elements: tuple[ObjectListElement, ...]) -> Data:
    return Data(DataTag.ARRAY, tuple(element.to_data() for element in elements))


object_list_codec: Codec[tuple[ObjectListElement, ...]] = Codec(_object_list_from_data, _object_list_to_data)


@dataclass(frozen=True, slots=True)
class AssociatedPartnersId:
    client_sap: int
    server_sap: int

    @classmethod
    def from_data(cls, data: Data) -> AssociatedPartnersId:
        client, server = expect_structure(data, 2, "associated_partners_id")
        return cls(
            expect_int(client, "client_SAP", DataTag.INTEGER),
            expect_int(server, "server_SAP", DataTag.LONG_UNSIGNED),
        )

    def to_data(self) -> Data:
        return Data(
            DataTag.STRUCTURE,
            (Data(DataTag.INTEGER, self.client_sap), Data(DataTag.LONG_UNSIGNED, self.server_sap)),
        )


# Member types of the structure form of a context name: joint-iso-ctt, country, country-name,
# identified-organization, DLMS-UA, kind (application context / mechanism), id.
_CONTEXT_NAME_TAGS = (
    DataTag.UNSIGNED,
    DataTag.UNSIGNED,
    DataTag.LONG_UNSIGNED,
    DataTag.UNSIGNED,
    DataTag.UNSIGNED,
    DataTag.UNSIGNED,
    DataTag.UNSIGNED,
)


def _decode_oid(content: bytes) -> tuple[int, ...]:
    if not content or content[-1] & 0x80:
        raise DecodeError("object identifier empty or truncated")
    values: list[int] = []
    value = 0
    for i, byte in enumerate(content):
        if byte == 0x80 and (i == 0 or not content[i - 1] & 0x80):
            # A sub-identifier never starts with 0x80 (X.690 8.19.2): one encoding per name.
            raise DecodeError("object identifier with a padded sub-identifier")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(value)
            value = 0
    first = values[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return (*head, *values[1:])


def _encode_oid(arcs: tuple[int, ...]) -> bytes:
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or any(a < 0 for a in arcs):
        raise EncodeError(f"not an object identifier: {arcs!r}")
    out = bytearray()
    for value in (arcs[0] * 40 + arcs[1], *arcs[2:]):
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


@dataclass(frozen=True, slots=True)
class ContextName:
    """An application context or authentication mechanism name, e.g. 2.16.756.5.8.1.1.

    Meters send it either as the Blue Book structure of seven numbers or as an octet-string
    holding the BER contents of the object identifier; ``as_octet_string`` keeps which, so the
    server role answers in the same form.
    """

    arcs: tuple[int, ...]
    as_octet_string: bool = False

    @property
    def id(self) -> int:
        """The last arc: the context id (1 LN, 3 LN with ciphering) or mechanism id (5 HLS-GMAC)."""
        return self.arcs[-1]

    @classmethod
    def from_data(cls, data: Data, what: str = "context name") -> ContextName:
        if data.tag == DataTag.OCTET_STRING:
            return cls(_decode_oid(expect_octets(data, what)), as_octet_string=True)
        members = expect_structure(data, 7, what)
        return cls(tuple(expect_int(m, what, tag) for m, tag in zip(members, _CONTEXT_NAME_TAGS)))

    def to_data(self) -> Data:
        if self.as_octet_string:
            return Data(DataTag.OCTET_STRING, _encode_oid(self.arcs))
        if len(self.arcs) != 7:
            raise EncodeError(f"the structure form of a context name has 7 arcs, got {self.arcs!r}")
        return Data(DataTag.STRUCTURE, tuple(Data(tag, a) for a, tag in zip(self.arcs, _CONTEXT_NAME_TAGS)))

    def __str__(self) -> str:
        return ".".join(map(str, self.arcs))


@dataclass(frozen=True, slots=True)
class XdlmsContextInfo:
    """``conformance`` is the 24-bit conformance block, its first bit the most significant."""

    conformance: int
    max_receive_pdu_size: int
    max_send_pdu_size: int
    dlms_version_number: int
    quality_of_service: int
    cyphering_info: bytes

    @classmethod
    def from_data(cls, data: Data) -> XdlmsContextInfo:
        m = expect_structure(data, 6, "xdlms_context_info")
        bits = m[0].value
        if m[0].tag != DataTag.BIT_STRING or not isinstance(bits, str) or len(bits) != 24 or bits.strip("01"):
            raise DecodeError("xdlms_context_info conformance: expected a bit-string of 24 bits")
        return cls(
            int(bits, 2),
            expect_int(m[1], "max_receive_pdu_size", DataTag.LONG_UNSIGNED),
            expect_int(m[2], "max_send_pdu_size", DataTag.LONG_UNSIGNED),
            expect_int(m[3], "dlms_version_number", DataTag.UNSIGNED),
            expect_int(m[4], "quality_of_service", DataTag.INTEGER),
            expect_octets(m[5], "cyphering_info"),
        )

    def to_data(self) -> Data:
        if not 0 <= self.conformance < 1 << 24:
            raise EncodeError(f"conformance does not fit 24 bits: {self.conformance!r}")
        return Data(
            DataTag.STRUCTURE,
            (
                Data(DataTag.BIT_STRING, format(self.conformance, "024b")),
                Data(DataTag.LONG_UNSIGNED, self.max_receive_pdu_size),
                Data(DataTag.LONG_UNSIGNED, self.max_send_pdu_size),
                Data(DataTag.UNSIGNED, self.dlms_version_number),
                Data(DataTag.INTEGER, self.quality_of_service),
                Data(DataTag.OCTET_STRING, self.cyphering_info),
            ),
        )


@dataclass(frozen=True, slots=True)
class UserEntry:
    user_id: int
    user_name: str

    @classmethod
    def from_data(cls, data: Data) -> UserEntry:
        user_id, name = expect_structure(data, 2, "user")
        return cls(expect_int(user_id, "user_id", DataTag.UNSIGNED), expect_text(name, "user_name"))

    def to_data(self) -> Data:
        return Data(
            DataTag.STRUCTURE,
            (Data(DataTag.UNSIGNED, self.user_id), Data(DataTag.VISIBLE_STRING, self.user_name)),
        )


def _users_from_data(data: Data) -> tuple[UserEntry, ...]:
    return tuple(UserEntry.from_data(item) for item in expect_array(data, "user_list"))


def _users_to_data(users: tuple[UserEntry, ...]) -> Data:
    return Data(DataTag.ARRAY, tuple(user.to_data() for user in users))


def _context_codec(what: str) -> Codec[ContextName]:
    return Codec(lambda data: ContextName.from_data(data, what), ContextName.to_data)


_ELEMENT: Codec[ObjectListElement] = Codec(ObjectListElement.from_data, ObjectListElement.to_data)
_USER: Codec[UserEntry] = Codec(UserEntry.from_data, UserEntry.to_data)

ASSOCIATION_LN = InterfaceClass(
    class_id=15,
    version=2,
    name="Association LN",
    attributes=AssociationLnAttribute,
    methods=AssociationLnMethod,
    attribute_codecs={
        AssociationLnAttribute.LOGICAL_NAME: logical_name_codec,
        AssociationLnAttribute.OBJECT_LIST: object_list_codec,
        AssociationLnAttribute.ASSOCIATED_PARTNERS_ID: Codec(
            AssociatedPartnersId.from_data, AssociatedPartnersId.to_data
        ),
        AssociationLnAttribute.APPLICATION_CONTEXT_NAME: _context_codec("application_context_name"),
        AssociationLnAttribute.XDLMS_CONTEXT_INFO: Codec(
            XdlmsContextInfo.from_data, XdlmsContextInfo.to_data
        ),
        AssociationLnAttribute.AUTHENTICATION_MECHANISM_NAME: _context_codec("authentication_mechanism_name"),
        AssociationLnAttribute.SECRET: octets_codec("secret"),
        AssociationLnAttribute.ASSOCIATION_STATUS: enum_codec(AssociationStatus, "association_status"),
        AssociationLnAttribute.SECURITY_SETUP_REFERENCE: logical_name_codec,
        AssociationLnAttribute.USER_LIST: Codec(_users_from_data, _users_to_data),
        AssociationLnAttribute.CURRENT_USER: _USER,
    },
    method_codecs={
        AssociationLnMethod.REPLY_TO_HLS_AUTHENTICATION: octets_codec("reply_to_HLS_authentication"),
        AssociationLnMethod.CHANGE_HLS_SECRET: octets_codec("change_HLS_secret"),
        AssociationLnMethod.ADD_OBJECT: _ELEMENT,
        AssociationLnMethod.REMOVE_OBJECT: _ELEMENT,
        AssociationLnMethod.ADD_USER: _USER,
        AssociationLnMethod.REMOVE_USER: _USER,
    },
)
