"""IC 64 Security setup (Blue Book 4.4.7): security policy, suite, system titles, key transfer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from protocols.axdr import Data, DataTag
from protocols.cosem._base import (
    Codec,
    InterfaceClass,
    any_codec,
    enum_codec,
    expect_array,
    expect_int,
    expect_octets,
    expect_structure,
    logical_name_codec,
    octets_codec,
)
from protocols.errors import EncodeError

__all__ = [
    "SECURITY_SETUP",
    "CertificateInfo",
    "GlobalKeyId",
    "KeyData",
    "SecurityPolicy",
    "SecuritySetupAttribute",
    "SecuritySetupMethod",
    "SecuritySuite",
    "certificates_codec",
    "global_key_transfer_codec",
]


class SecuritySetupAttribute(IntEnum):
    LOGICAL_NAME = 1
    SECURITY_POLICY = 2
    SECURITY_SUITE = 3
    CLIENT_SYSTEM_TITLE = 4
    SERVER_SYSTEM_TITLE = 5
    CERTIFICATES = 6


class SecuritySetupMethod(IntEnum):
    SECURITY_ACTIVATE = 1
    GLOBAL_KEY_TRANSFER = 2
    KEY_AGREEMENT = 3
    GENERATE_KEY_PAIR = 4
    GENERATE_CERTIFICATE_REQUEST = 5
    IMPORT_CERTIFICATE = 6
    EXPORT_CERTIFICATE = 7
    REMOVE_CERTIFICATE = 8


class SecurityPolicy(IntFlag):
    """security_policy of IC 64 version 1: one bit per protection (bits 0, 1 reserved)."""

    NONE = 0
    AUTHENTICATED_REQUEST = 0x04
    ENCRYPTED_REQUEST = 0x08
    DIGITALLY_SIGNED_REQUEST = 0x10
    AUTHENTICATED_RESPONSE = 0x20
    ENCRYPTED_RESPONSE = 0x40
    DIGITALLY_SIGNED_RESPONSE = 0x80


class SecuritySuite(IntEnum):
    AES_GCM_128 = 0
    ECDH_ECDSA_AES_GCM_128_SHA_256 = 1
    ECDH_ECDSA_AES_GCM_256_SHA_384 = 2


class GlobalKeyId(IntEnum):
    GLOBAL_UNICAST_ENCRYPTION_KEY = 0
    GLOBAL_BROADCAST_ENCRYPTION_KEY = 1
    AUTHENTICATION_KEY = 2
    MASTER_KEY = 3


@dataclass(frozen=True, slots=True)
class KeyData:
    """One entry of global_key_transfer: a key id and the key wrapped with the master key."""

    key_id: int
    key_wrapped: bytes


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    certificate_entity: int
    certificate_type: int
    serial_number: bytes
    issuer: bytes
    subject: bytes
    subject_alt_name: bytes


def _keys_from_data(data: Data) -> tuple[KeyData, ...]:
    keys = []
    for item in expect_array(data, "global_key_transfer"):
        key_id, wrapped = expect_structure(item, 2, "key_data")
        raw_id = expect_int(key_id, "key_id", DataTag.ENUM)
        known = raw_id in GlobalKeyId._value2member_map_
        keys.append(KeyData(GlobalKeyId(raw_id) if known else raw_id, expect_octets(wrapped, "key_wrapped")))
    return tuple(keys)


def _keys_to_data(keys: tuple[KeyData, ...]) -> Data:
    items = []
    for key in keys:
        if not isinstance(key, KeyData) or not 0 <= key.key_id <= 255:
            raise EncodeError(f"not a KeyData: {key!r}")
        items.append(
            Data(
                DataTag.STRUCTURE,
                (Data(DataTag.ENUM, int(key.key_id)), Data(DataTag.OCTET_STRING, bytes(key.key_wrapped))),
            )
        )
    return Data(DataTag.ARRAY, tuple(items))


def _certificates_from_data(data: Data) -> tuple[CertificateInfo, ...]:
    out = []
    for item in expect_array(data, "certificates"):
        m = expect_structure(item, 6, "certificate_info")
        out.append(
            CertificateInfo(
                expect_int(m[0], "certificate_entity", DataTag.ENUM),
                expect_int(m[1], "certificate_type", DataTag.ENUM),
                expect_octets(m[2], "serial_number"),
                expect_octets(m[3], "issuer"),
                expect_octets(m[4], "subject"),
                expect_octets(m[5], "subject_alt_name"),
            )
        )
    return tuple(out)


def _certificates_to_data(certificates: tuple[CertificateInfo, ...]) -> Data:
    items = []
    for c in certificates:
        if not isinstance(c, CertificateInfo):
            raise EncodeError(f"not a CertificateInfo: {c!r}")
        items.append(
            Data(
                DataTag.STRUCTURE,
                (
                    Data(DataTag.ENUM, c.certificate_entity),
                    Data(DataTag.ENUM, c.certificate_type),
                    Data(DataTag.OCTET_STRING, c.serial_number),
                    Data(DataTag.OCTET_STRING, c.issuer),
                    Data(DataTag.OCTET_STRING, c.subject),
                    Data(DataTag.OCTET_STRING, c.subject_alt_name),
                ),
            )
        )
    return Data(DataTag.ARRAY, tuple(items))


def _policy_from_data(data: Data) -> SecurityPolicy:
    return SecurityPolicy(expect_int(data, "security_policy", DataTag.ENUM))


def _policy_to_data(policy: int) -> Data:
    if not isinstance(policy, int) or not 0 <= policy <= 255:
        raise EncodeError(f"security_policy out of range: {policy!r}")
    return Data(DataTag.ENUM, int(policy))


_POLICY: Codec[SecurityPolicy] = Codec(_policy_from_data, _policy_to_data)
global_key_transfer_codec: Codec[tuple[KeyData, ...]] = Codec(_keys_from_data, _keys_to_data)
certificates_codec: Codec[tuple[CertificateInfo, ...]] = Codec(_certificates_from_data, _certificates_to_data)

SECURITY_SETUP = InterfaceClass(
    class_id=64,
    version=1,
    name="Security setup",
    attributes=SecuritySetupAttribute,
    methods=SecuritySetupMethod,
    attribute_codecs={
        SecuritySetupAttribute.LOGICAL_NAME: logical_name_codec,
        SecuritySetupAttribute.SECURITY_POLICY: _POLICY,
        SecuritySetupAttribute.SECURITY_SUITE: enum_codec(SecuritySuite, "security_suite"),
        SecuritySetupAttribute.CLIENT_SYSTEM_TITLE: octets_codec("client_system_title"),
        SecuritySetupAttribute.SERVER_SYSTEM_TITLE: octets_codec("server_system_title"),
        SecuritySetupAttribute.CERTIFICATES: certificates_codec,
    },
    method_codecs={
        SecuritySetupMethod.SECURITY_ACTIVATE: _POLICY,
        SecuritySetupMethod.GLOBAL_KEY_TRANSFER: global_key_transfer_codec,
        # The certificate methods take structures this head-end passes through unchanged.
        SecuritySetupMethod.KEY_AGREEMENT: any_codec,
        SecuritySetupMethod.GENERATE_KEY_PAIR: any_codec,
        SecuritySetupMethod.GENERATE_CERTIFICATE_REQUEST: any_codec,
        SecuritySetupMethod.IMPORT_CERTIFICATE: any_codec,
        SecuritySetupMethod.EXPORT_CERTIFICATE: any_codec,
        SecuritySetupMethod.REMOVE_CERTIFICATE: any_codec,
    },
)
