"""Security suite 0 (AES-GCM-128): the security control byte, ciphering, deciphering and HLS-GMAC."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protocols.errors import DecodeError, EncodeError, SecurityError

__all__ = [
    "SECURITY_HEADER_SIZE",
    "SYSTEM_TITLE_SIZE",
    "TAG_SIZE",
    "SecurityControlField",
    "SecurityHeader",
    "cipher",
    "decipher",
    "gmac",
    "hls_gmac_response",
    "read_security_header",
    "verify_hls_gmac_response",
]

#: Authentication tags are truncated to 12 bytes (Green Book, suite 0).
TAG_SIZE = 12
SYSTEM_TITLE_SIZE = 8
#: Security control byte and invocation counter, in front of every ciphered content.
SECURITY_HEADER_SIZE = 5
_MAX_INVOCATION_COUNTER = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SecurityControlField:
    """The security control byte: suite id (bits 0-3), authentication, encryption, key set, compression."""

    security_suite: int = 0
    authenticated: bool = False
    encrypted: bool = False
    broadcast_key: bool = False
    compressed: bool = False

    AUTHENTICATED = 0x10
    ENCRYPTED = 0x20
    BROADCAST_KEY = 0x40
    COMPRESSED = 0x80

    def __int__(self) -> int:
        if not 0 <= self.security_suite <= 0x0F:
            raise EncodeError(f"security suite {self.security_suite} does not fit four bits")
        return (
            self.security_suite
            | (self.AUTHENTICATED if self.authenticated else 0)
            | (self.ENCRYPTED if self.encrypted else 0)
            | (self.BROADCAST_KEY if self.broadcast_key else 0)
            | (self.COMPRESSED if self.compressed else 0)
        )

    def to_byte(self) -> bytes:
        return bytes((int(self),))

    @classmethod
    def from_int(cls, value: int) -> SecurityControlField:
        if not 0 <= value <= 0xFF:
            raise DecodeError(f"security control byte {value} out of range")
        if cls is SecurityControlField:
            return _SECURITY_CONTROLS[value]  # immutable: one object per byte value
        return cls._build(value)

    @classmethod
    def _build(cls, value: int) -> SecurityControlField:
        return cls(
            security_suite=value & 0x0F,
            authenticated=bool(value & cls.AUTHENTICATED),
            encrypted=bool(value & cls.ENCRYPTED),
            broadcast_key=bool(value & cls.BROADCAST_KEY),
            compressed=bool(value & cls.COMPRESSED),
        )


_SECURITY_CONTROLS = tuple(SecurityControlField._build(value) for value in range(0x100))


@dataclass(frozen=True, slots=True)
class SecurityHeader:
    """What precedes a ciphered payload: security control and invocation counter."""

    security_control: SecurityControlField
    invocation_counter: int


# One AESGCM object per key: building it costs more than deciphering a small APDU.
@lru_cache(maxsize=4096)
def _aesgcm(key: bytes) -> AESGCM:
    if len(key) not in (16, 32):
        raise SecurityError("a block cipher key is 16 bytes (suites 0 and 1) or 32 bytes (suite 2)")
    return AESGCM(key)


def _iv(system_title: bytes, invocation_counter: int) -> bytes:
    if len(system_title) != SYSTEM_TITLE_SIZE:
        raise SecurityError(f"a system title is 8 bytes, got {len(system_title)}")
    if not 0 <= invocation_counter <= _MAX_INVOCATION_COUNTER:
        raise SecurityError(f"invocation counter {invocation_counter} does not fit 32 bits")
    return bytes(system_title) + invocation_counter.to_bytes(4, "big")


def _keystream_xor(aead: AESGCM, iv: bytes, data: bytes) -> bytes:
    # GCM's keystream starts at counter block IV || 2 for encryption and decryption alike, so
    # "encrypting" the ciphertext without AAD recovers the plaintext; this avoids building a
    # Cipher object per call, which costs more than the AES work on a 2.5 kB APDU.
    return aead.encrypt(iv, data, None)[:-16] if data else b""


def cipher(
    plaintext: bytes,
    *,
    security_control: SecurityControlField | int,
    system_title: bytes,
    invocation_counter: int,
    encryption_key: bytes,
    authentication_key: bytes,
) -> bytes:
    """Protect ``plaintext``; returns the ciphered content SC || IC || (ciphertext or plaintext) || tag.

    ``system_title`` is the sender's. The tag (12 bytes) is present when the control byte asks for
    authentication; the payload is encrypted when it asks for encryption.
    """
    sc = (
        security_control
        if isinstance(security_control, SecurityControlField)
        else (SecurityControlField.from_int(security_control))
    )
    if sc.compressed:
        raise EncodeError("compression is not supported")
    sc_byte = sc.to_byte()
    iv = _iv(system_title, invocation_counter)
    aead = _aesgcm(bytes(encryption_key))
    header = sc_byte + iv[8:]
    plaintext = bytes(plaintext)
    if sc.encrypted and sc.authenticated:
        sealed = aead.encrypt(iv, plaintext, sc_byte + bytes(authentication_key))
        return header + sealed[:-4]
    if sc.encrypted:
        return header + _keystream_xor(aead, iv, plaintext)
    if sc.authenticated:
        tag = aead.encrypt(iv, b"", sc_byte + bytes(authentication_key) + plaintext)[:TAG_SIZE]
        return header + plaintext + tag
    return header + plaintext


def read_security_header(ciphered: bytes, pos: int = 0) -> SecurityHeader:
    """The security control and invocation counter at ``pos``, e.g. to check for replay first."""
    if len(ciphered) - pos < SECURITY_HEADER_SIZE:
        raise DecodeError("security header truncated", pos)
    return SecurityHeader(
        SecurityControlField.from_int(ciphered[pos]),
        int.from_bytes(ciphered[pos + 1 : pos + 5], "big"),
    )


def decipher(
    ciphered: bytes,
    *,
    system_title: bytes,
    encryption_key: bytes,
    authentication_key: bytes,
) -> bytes:
    """Check and decipher a ciphered content SC || IC || payload [|| tag]; returns the plaintext APDU.

    ``system_title`` is the sender's. A wrong tag raises ``SecurityError``; bytes too short to
    hold the header and tag raise ``DecodeError``.
    """
    ciphered = bytes(ciphered)
    header = read_security_header(ciphered)
    sc = header.security_control
    if sc.compressed:
        raise SecurityError("compressed ciphered APDUs are not supported")
    iv = _iv(system_title, header.invocation_counter)
    aead = _aesgcm(bytes(encryption_key))
    sc_byte = ciphered[:1]
    body = ciphered[SECURITY_HEADER_SIZE:]
    if sc.authenticated:
        if len(body) < TAG_SIZE:
            raise DecodeError("authentication tag truncated", SECURITY_HEADER_SIZE)
        payload, tag = body[:-TAG_SIZE], body[-TAG_SIZE:]
        if sc.encrypted:
            plaintext = _keystream_xor(aead, iv, payload)
            expected = aead.encrypt(iv, plaintext, sc_byte + bytes(authentication_key))[-16:-4]
        else:
            plaintext = payload
            expected = aead.encrypt(iv, b"", sc_byte + bytes(authentication_key) + payload)[:TAG_SIZE]
        if not hmac.compare_digest(expected, tag):
            raise SecurityError("authentication tag mismatch")
        return plaintext
    if sc.encrypted:
        return _keystream_xor(aead, iv, body)
    return body


def gmac(
    data: bytes,
    *,
    security_control: SecurityControlField | int,
    system_title: bytes,
    invocation_counter: int,
    encryption_key: bytes,
    authentication_key: bytes,
) -> bytes:
    """GMAC over SC || AK || data with IV = system title || invocation counter (12-byte tag)."""
    sc = int(security_control)
    iv = _iv(system_title, invocation_counter)
    aad = bytes((sc,)) + bytes(authentication_key) + bytes(data)
    return _aesgcm(bytes(encryption_key)).encrypt(iv, b"", aad)[:TAG_SIZE]


def hls_gmac_response(
    challenge: bytes,
    *,
    system_title: bytes,
    invocation_counter: int,
    encryption_key: bytes,
    authentication_key: bytes,
    security_control: SecurityControlField | int = 0x10,
) -> bytes:
    """HLS mechanism 5: f(challenge) = SC || IC || GMAC(SC || AK || challenge), by the responder.

    The client answers the server's StoC with its own system title and counter; the server
    answers CtoS with its own.
    """
    sc = int(security_control)
    tag = gmac(
        challenge,
        security_control=sc,
        system_title=system_title,
        invocation_counter=invocation_counter,
        encryption_key=encryption_key,
        authentication_key=authentication_key,
    )
    return bytes((sc,)) + invocation_counter.to_bytes(4, "big") + tag


def verify_hls_gmac_response(
    response: bytes,
    challenge: bytes,
    *,
    system_title: bytes,
    encryption_key: bytes,
    authentication_key: bytes,
) -> int:
    """Check the peer's f(challenge) for the challenge we sent; returns the peer's invocation counter.

    ``system_title`` is the peer's. Raises ``SecurityError`` when it does not match.
    """
    response = bytes(response)
    if len(response) != SECURITY_HEADER_SIZE + TAG_SIZE:
        raise SecurityError(f"f(challenge) is 17 bytes, got {len(response)}")
    sc = response[0]
    if not sc & SecurityControlField.AUTHENTICATED:
        raise SecurityError("f(challenge) does not claim authentication")
    counter = int.from_bytes(response[1:5], "big")
    expected = gmac(
        challenge,
        security_control=sc,
        system_title=system_title,
        invocation_counter=counter,
        encryption_key=encryption_key,
        authentication_key=authentication_key,
    )
    if not hmac.compare_digest(expected, response[5:]):
        raise SecurityError("HLS-GMAC response does not match the challenge")
    return counter
