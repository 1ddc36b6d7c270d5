"""Key handling: AES key wrap (RFC 3394), the global-key-transfer method data, and LLS passwords."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from enum import IntEnum

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from protocols.axdr import Data, DataTag
from protocols.errors import DecodeError, SecurityError

__all__ = [
    "KeyId",
    "lls_password_matches",
    "parse_key_transfer",
    "key_transfer_data",
    "unwrap_key",
    "wrap_key",
]


class KeyId(IntEnum):
    """key_id of the security setup's global_key_transfer method (IC 64)."""

    GLOBAL_UNICAST_ENCRYPTION_KEY = 0
    GLOBAL_BROADCAST_ENCRYPTION_KEY = 1
    AUTHENTICATION_KEY = 2
    MASTER_KEY = 3


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """Wrap ``key`` under the key encryption key (the master key), RFC 3394."""
    try:
        return aes_key_wrap(bytes(kek), bytes(key))
    except ValueError as exc:
        raise SecurityError(f"cannot wrap key: {exc}") from None


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    """Unwrap a key; a wrong KEK or altered bytes raise ``SecurityError``."""
    try:
        return aes_key_unwrap(bytes(kek), bytes(wrapped))
    except InvalidUnwrap:
        raise SecurityError("key unwrap failed: wrong key encryption key or altered data") from None
    except ValueError as exc:
        raise SecurityError(f"cannot unwrap key: {exc}") from None


def key_transfer_data(kek: bytes, keys: Iterable[tuple[KeyId, bytes]]) -> Data:
    """The global_key_transfer parameter: array of structure {key_id enum, key_wrapped octet-string}."""
    return Data.array(
        Data.structure((Data.enum(int(key_id)), Data.octet_string(wrap_key(kek, key))))
        for key_id, key in keys
    )


def parse_key_transfer(data: Data, kek: bytes) -> tuple[tuple[KeyId, bytes], ...]:
    """The keys a global_key_transfer parameter carries, unwrapped.

    A malformed parameter raises ``DecodeError``; a failed unwrap ``SecurityError``.
    """
    if data.tag != DataTag.ARRAY:
        raise DecodeError("key transfer data is an array")
    keys = []
    for item in data.value:
        if (
            item.tag != DataTag.STRUCTURE
            or len(item.value) != 2
            or item.value[0].tag != DataTag.ENUM
            or item.value[1].tag != DataTag.OCTET_STRING
        ):
            raise DecodeError("key transfer element is structure {enum, octet-string}")
        try:
            key_id = KeyId(item.value[0].value)
        except ValueError:
            raise DecodeError(f"unknown key_id {item.value[0].value}") from None
        keys.append((key_id, unwrap_key(kek, item.value[1].value)))
    return tuple(keys)


def lls_password_matches(received: bytes, expected: bytes) -> bool:
    """LLS: whether the calling-authentication-value equals the secret (constant time)."""
    return hmac.compare_digest(bytes(received), bytes(expected))
