"""Ciphering and deciphering of whole xDLMS APDUs for an association (suite 0), with the replay check."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocols.errors import DecodeError, EncodeError, SecurityError
from protocols.security import (
    CipheredApduTag,
    GeneralDedCiphering,
    GeneralGloCiphering,
    SecurityControlField,
    ServiceSpecificCipheredApdu,
    cipher,
    ciphered_tag,
    decipher,
    decode_ciphered_apdu,
    plain_tag,
)

__all__ = ["Deciphered", "Protection", "ReplayError", "SecretKeys", "protect", "unprotect"]

_FLAGS = SecurityControlField.AUTHENTICATED | SecurityControlField.ENCRYPTED


class ReplayError(SecurityError):
    """An invocation counter not above the last one accepted; ``lowest_acceptable`` is the next valid."""

    def __init__(self, message: str, lowest_acceptable: int) -> None:
        super().__init__(message)
        self.lowest_acceptable = lowest_acceptable


class Protection(IntEnum):
    """The envelope an APDU travelled in; replies use the same one."""

    PLAIN = 0
    GLO = 1
    DED = 2
    GENERAL_GLO = 3
    GENERAL_DED = 4

    @property
    def dedicated(self) -> bool:
        return self in (Protection.DED, Protection.GENERAL_DED)


@dataclass(frozen=True, slots=True)
class SecretKeys:
    encryption_key: bytes
    authentication_key: bytes
    dedicated_key: bytes | None = None

    def block_key(self, dedicated: bool) -> bytes:
        if not dedicated:
            return self.encryption_key
        if self.dedicated_key is None:
            raise SecurityError("a ded- APDU, but no dedicated key was agreed")
        return self.dedicated_key


@dataclass(frozen=True, slots=True)
class Deciphered:
    plain: bytes
    protection: Protection
    invocation_counter: int
    system_title: bytes


def protect(
    apdu: bytes,
    protection: Protection,
    *,
    keys: SecretKeys,
    system_title: bytes,
    invocation_counter: int,
    security_control: int,
) -> bytes:
    """``apdu`` in the envelope ``protection`` names; APDUs without a glo- form go in general-glo."""
    if protection is Protection.PLAIN:
        return apdu
    dedicated = protection.dedicated
    content = cipher(
        apdu,
        security_control=security_control,
        system_title=system_title,
        invocation_counter=invocation_counter,
        encryption_key=keys.block_key(dedicated),
        authentication_key=keys.authentication_key,
    )
    if protection in (Protection.GLO, Protection.DED):
        try:
            return ServiceSpecificCipheredApdu(ciphered_tag(apdu[0], dedicated=dedicated), content).encode()
        except EncodeError:
            pass  # data-notification and the like have no service-specific form
    if dedicated:
        return GeneralDedCiphering(system_title, content).encode()
    return GeneralGloCiphering(system_title, content).encode()


def unprotect(
    apdu: bytes,
    *,
    keys: SecretKeys,
    peer_system_title: bytes | None,
    required_security_control: int,
    last_counter: int | None,
) -> Deciphered:
    """Check and decipher a ciphered APDU from the peer.

    The counter must be greater than ``last_counter`` (Green Book: the lowest acceptable value
    is the last verified counter plus one); the caller records the returned counter.
    Raises ``SecurityError`` or ``DecodeError``.
    """
    envelope = decode_ciphered_apdu(apdu)
    inner_tag = -1  # the plain APDU tag a service-specific envelope announces
    if isinstance(envelope, ServiceSpecificCipheredApdu):
        if peer_system_title is None:
            raise SecurityError("the peer's system title is not known")
        title = peer_system_title
        inner_tag, dedicated = plain_tag(envelope.tag)
        protection = Protection.DED if dedicated else Protection.GLO
    elif isinstance(envelope, GeneralGloCiphering | GeneralDedCiphering):
        if peer_system_title is not None and envelope.system_title != peer_system_title:
            raise SecurityError(
                f"ciphered by system title {envelope.system_title.hex()}, expected {peer_system_title.hex()}"
            )
        title = envelope.system_title
        dedicated = isinstance(envelope, GeneralDedCiphering)
        protection = Protection.GENERAL_DED if dedicated else Protection.GENERAL_GLO
    else:
        raise SecurityError("general-ciphering (0xDD) is not supported")
    header = envelope.header
    sc = header.security_control
    if sc.security_suite != 0 or sc.compressed or sc.broadcast_key:
        raise SecurityError(f"security control 0x{int(sc):02x} is not suite 0 with the unicast key")
    required = required_security_control & _FLAGS
    if int(sc) & required != required:
        raise SecurityError(
            f"security control 0x{int(sc):02x} is weaker than the policy's 0x{required_security_control:02x}"
        )
    if last_counter is not None and header.invocation_counter <= last_counter:
        raise ReplayError(
            f"invocation counter {header.invocation_counter} replayed: the lowest acceptable is "
            f"{last_counter + 1}",
            last_counter + 1,
        )
    plain = decipher(
        envelope.content,
        system_title=title,
        encryption_key=keys.block_key(dedicated),
        authentication_key=keys.authentication_key,
    )
    if not plain:
        raise DecodeError("ciphered APDU holds nothing")
    if isinstance(envelope, ServiceSpecificCipheredApdu) and plain[0] != inner_tag:
        raise DecodeError(
            f"{CipheredApduTag(envelope.tag).name.lower()} carries an APDU with tag 0x{plain[0]:02x}"
        )
    return Deciphered(plain, protection, header.invocation_counter, title)
