"""The master key file (created mode 600, refused when others can read it) and AES-GCM secrets bound to their row."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from hes.errors import HesError
from hes.keys import KeyStoreError, MasterKey, load_master_key, secret_aad

EK = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def test_created_on_first_use_with_mode_600_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.key"
    key = load_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(path.read_bytes()) == 32
    blob = key.encrypt(EK, secret_aad("meter", "M1", "ek"))
    again = load_master_key(path)
    assert again.fingerprint == key.fingerprint
    assert again.decrypt(blob, secret_aad("meter", "M1", "ek")) == EK
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temporary file left behind


def test_a_file_others_can_read_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    load_master_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyStoreError) as caught:
        load_master_key(path)
    message = str(caught.value)
    assert "group or others" in message and "chmod 600" in message and "\n" not in message
    assert isinstance(caught.value, HesError) and not caught.value.retryable


def test_wrong_master_key_or_moved_secret_gives_a_clear_error(tmp_path: Path) -> None:
    right = load_master_key(tmp_path / "a.key")
    wrong = load_master_key(tmp_path / "b.key")
    blob = right.encrypt(EK, secret_aad("meter", "M1", "ek"))
    with pytest.raises(KeyStoreError, match="does not decrypt with master key"):
        wrong.decrypt(blob, secret_aad("meter", "M1", "ek"))
    # The same ciphertext copied to another meter or another field is refused too.
    with pytest.raises(KeyStoreError):
        right.decrypt(blob, secret_aad("meter", "M2", "ek"))
    with pytest.raises(KeyStoreError):
        right.decrypt(blob, secret_aad("meter", "M1", "ak"))
    with pytest.raises(KeyStoreError, match="damaged"):
        right.decrypt(b"\x02" + blob[1:], secret_aad("meter", "M1", "ek"))
    with pytest.raises(KeyStoreError, match="damaged"):
        right.decrypt(b"", secret_aad("meter", "M1", "ek"))


def test_encryption_is_randomised_and_optional_values_pass_through(tmp_path: Path) -> None:
    key = load_master_key(tmp_path / "k")
    aad = secret_aad("concentrator", "DC0001", "ak")
    assert key.encrypt(EK, aad) != key.encrypt(EK, aad)
    assert EK not in key.encrypt(EK, aad)
    assert key.encrypt_optional(None, aad) is None and key.decrypt_optional(None, aad) is None


def test_key_bytes_never_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "k"
    key = load_master_key(path)
    raw = path.read_bytes()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("key %s %r", key, key)
    for text in (repr(key), str(key), caplog.text):
        assert raw.hex() not in text and raw.hex().upper() not in text


def test_hex_files_and_bad_files(tmp_path: Path) -> None:
    text_file = tmp_path / "hex.key"
    text_file.write_text(EK.hex() * 2 + "\n")
    os.chmod(text_file, 0o600)
    assert load_master_key(text_file).fingerprint == MasterKey(EK * 2).fingerprint
    short = tmp_path / "short.key"
    short.write_bytes(b"tooshort")
    os.chmod(short, 0o600)
    with pytest.raises(KeyStoreError, match="holds neither"):
        load_master_key(short)
    with pytest.raises(KeyStoreError, match="does not exist"):
        load_master_key(tmp_path / "missing.key", create=False)
    with pytest.raises(KeyStoreError, match="not a regular file"):
        load_master_key(tmp_path)
    with pytest.raises(KeyStoreError, match="32 bytes"):
        MasterKey(b"x")
