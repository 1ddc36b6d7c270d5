"""Keys at rest: the master key file and AES-GCM encryption of meter and concentrator secrets.

The master key is 32 random bytes in a file only its owner can read (mode 600). It is created on
first use unless the file already exists; a file that group or others can read or write is
refused, because anyone who reads it can decrypt every meter key. Each secret is encrypted with
AES-256-GCM under a fresh 96-bit nonce and with the identity of the row and field as associated
data, so a ciphertext copied to another meter or another field does not decrypt. Stored blob:
``version (1) || nonce (12) || ciphertext || tag (16)``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hes.errors import HesError

__all__ = ["KeyStoreError", "MasterKey", "load_master_key", "secret_aad"]

_VERSION = 1
_NONCE = 12
_KEY_BYTES = 32


class KeyStoreError(HesError):
    """The master key cannot be read or created, or a stored secret does not decrypt with it."""


def secret_aad(kind: str, ident: str, field: str) -> bytes:
    """The associated data binding a secret to its row and field, e.g. ``("meter", "SIM000100000", "ek")``."""
    return f"hes/{kind}/{ident}/{field}".encode()


class MasterKey:
    """The key that encrypts keys at rest. Its bytes never appear in ``repr``, ``str`` or logs."""

    __slots__ = ("_aead", "_fingerprint")

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise KeyStoreError(f"a master key is {_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        # A short, one-way fingerprint lets an operator tell two key files apart without exposing either.
        self._fingerprint = hashlib.sha256(b"hes-master-key-fingerprint" + key).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self._fingerprint})"

    __str__ = __repr__

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return bytes([_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext; ``KeyStoreError`` when the blob is damaged or was written with another master key."""
        if len(blob) < 1 + _NONCE + 16 or blob[0] != _VERSION:
            raise KeyStoreError("a stored secret is damaged (unknown format)")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad)
        except InvalidTag:
            raise KeyStoreError(
                f"a stored secret does not decrypt with master key {self._fingerprint}: "
                "wrong HES_MASTER_KEY_FILE, or the database row was altered"
            ) from None

    def encrypt_optional(self, plaintext: bytes | None, aad: bytes) -> bytes | None:
        return None if plaintext is None else self.encrypt(plaintext, aad)

    def decrypt_optional(self, blob: bytes | None, aad: bytes) -> bytes | None:
        return None if blob is None else self.decrypt(blob, aad)


def _parse(raw: bytes, path: Path) -> bytes:
    if len(raw) == _KEY_BYTES:
        return raw
    # A hex text file (64 digits) is accepted too: what a secret manager usually hands out.
    text = raw.strip()
    if len(text) == 2 * _KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    raise KeyStoreError(f"master key file {path} holds neither {_KEY_BYTES} bytes nor {2 * _KEY_BYTES} hex digits")


def load_master_key(path: str | os.PathLike[str], *, create: bool = True) -> MasterKey:
    """The master key in ``path``, created there (mode 600, folder 700) when missing and ``create`` is true."""
    target = Path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        if not create:
            raise KeyStoreError(f"master key file {target} does not exist") from None
        return _create(target)
    except OSError as exc:
        raise KeyStoreError(f"cannot read master key file {target}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyStoreError(f"master key file {target} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyStoreError(
            f"master key file {target} is accessible by group or others (mode {stat.S_IMODE(info.st_mode):03o}); "
            f"run: chmod 600 {target}"
        )
    try:
        raw = target.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read master key file {target}: {exc.strerror or exc}") from None
    return MasterKey(_parse(raw, target))


def _create(target: Path) -> MasterKey:
    key = os.urandom(_KEY_BYTES)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if not target.parent.exists():
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        # A hard link appears complete or not at all and fails if the name exists: two processes
        # starting together end up with one key, the first one linked.
        os.link(temporary, target)
    except FileExistsError:
        return load_master_key(target, create=False)
    except OSError as exc:
        raise KeyStoreError(f"cannot create master key file {target}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return MasterKey(key)
