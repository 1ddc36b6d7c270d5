"""Key files: export from the registry, passphrase, expiry, refusal of wrong, modified or expired files, counters."""

from __future__ import annotations

import base64
import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from hes.db.counters import counter_state
from hes.db.models import utcnow
from hes.probe.keys import (
    KeyFileError,
    bundle_key_aad,
    export_key_file,
    open_key_file,
    parse_validity,
)
from hes.probe.models import FieldKeyExport
from hes.registry import Registry, UnknownConcentrator
from simulators.manifest import Manifest

PASSPHRASE = "correct horse battery"
CIPHERED = "P2P000000001"  # HLS-GMAC in the seed-7 fleet
PLAIN = "P2P000000000"  # LLS: no invocation counters
DC = "DC0001"


@pytest.fixture
def exported(registry: Registry, fleet_manifest: tuple[Path, Manifest], tmp_path: Path) -> Path:
    registry.import_manifest(fleet_manifest[0])
    path = tmp_path / "keys.json"
    export_key_file(registry, path, PASSPHRASE, meters=[CIPHERED, PLAIN], validity=timedelta(days=2), counters=500)
    return path


def test_the_export_holds_the_keys_reserves_counters_and_records_its_bundle_key(
    registry: Registry, exported: Path
) -> None:
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert PASSPHRASE not in exported.read_text()
    keys = open_key_file(exported, PASSPHRASE)
    content = keys.content
    ciphered, plain = content.device(CIPHERED), content.device(PLAIN)
    assert ciphered is not None and plain is not None
    target = registry.target_for(CIPHERED)
    assert ciphered.security == target.security and ciphered.client_sap == target.client_sap
    assert ciphered.physical_address == 0x11  # its HDLC address: the fleet's second p2p meter
    assert plain.security.policy == "lls" and plain.counters is None
    assert ciphered.counters is not None and ciphered.counters.limit - ciphered.counters.start == 500
    # The head-end's next counter for that meter lies past the block: it never uses the block's counters.
    assert counter_state(registry.engine, CIPHERED, 1) == (ciphered.counters.limit, None)
    assert counter_state(registry.engine, PLAIN, 1) is None
    assert timedelta(days=2) - timedelta(seconds=5) < content.expires_at - utcnow() <= timedelta(days=2)
    with Session(registry.engine) as session:
        record = session.get(FieldKeyExport, content.export_id)
        assert record is not None and record.devices == [CIPHERED, PLAIN]
        assert record.counters == {f"{CIPHERED}/1": [ciphered.counters.start, ciphered.counters.limit]}
        assert registry.master_key.decrypt(record.bundle_key_enc, bundle_key_aad(content.export_id)) \
            == content.bundle_key


def test_the_probe_keeps_its_counter_reservations_in_the_file(exported: Path) -> None:
    keys = open_key_file(exported, PASSPHRASE)
    device = keys.content.device(CIPHERED)
    assert device is not None and device.counters is not None
    first = keys.reserve(device, 100)
    assert (first.start, first.limit) == (device.counters.start, device.counters.start + 100)
    keys.record_received(device, 42)
    # Opened again (a new run of the probe): the next reservation starts after the first one.
    again = open_key_file(exported, PASSPHRASE)
    second = again.reserve(device, 300)
    assert second.start == first.limit and second.last_received == 42
    with pytest.raises(KeyFileError, match=f"invocation counters for {CIPHERED} are used up"):
        again.reserve(device, 101)
    plain = again.content.device(PLAIN)
    assert plain is not None and again.reserve(plain, 10).limit == 2**32  # nothing on the wire to count


def _document(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_wrong_passphrase_modified_and_foreign_files_are_refused_with_one_line(exported: Path, tmp_path: Path) -> None:
    refused = "wrong passphrase, or the file was modified"
    with pytest.raises(KeyFileError, match=refused):
        open_key_file(exported, "not the passphrase")

    later = _document(exported)
    later["expires_at"] = "2099-01-01T00:00:00+00:00"  # the expiry is authenticated
    (tmp_path / "later.json").write_text(json.dumps(later))
    with pytest.raises(KeyFileError, match=refused):
        open_key_file(tmp_path / "later.json", PASSPHRASE)

    flipped = _document(exported)
    data = bytearray(base64.b64decode(flipped["ciphertext"]))
    data[10] ^= 0x01
    flipped["ciphertext"] = base64.b64encode(bytes(data)).decode()
    (tmp_path / "flipped.json").write_text(json.dumps(flipped))
    with pytest.raises(KeyFileError, match=refused):
        open_key_file(tmp_path / "flipped.json", PASSPHRASE)

    costly = _document(exported)
    costly["kdf"]["n"] = 2**30  # a file asking for gigabytes of scrypt memory is not even tried
    (tmp_path / "costly.json").write_text(json.dumps(costly))
    with pytest.raises(KeyFileError, match="parameters are out of range"):
        open_key_file(tmp_path / "costly.json", PASSPHRASE)

    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(KeyFileError, match="is not a key file of the field tool"):
        open_key_file(tmp_path / "other.json", PASSPHRASE)
    with pytest.raises(KeyFileError, match="cannot read key file"):
        open_key_file(tmp_path / "missing.json", PASSPHRASE)
    with pytest.raises(KeyFileError) as caught:
        open_key_file(exported, "not the passphrase")
    assert str(caught.value) == f"cannot open key file {exported}: {refused}"


def test_an_expired_key_file_is_refused(exported: Path) -> None:
    keys = open_key_file(exported, PASSPHRASE)
    expires = keys.content.expires_at
    with pytest.raises(KeyFileError, match=r"expired at .*Z: export a new one"):
        open_key_file(exported, PASSPHRASE, now=lambda: expires)
    assert open_key_file(exported, PASSPHRASE, now=lambda: expires - timedelta(seconds=1)).content == keys.content


def test_bad_export_requests_are_refused(registry: Registry, fleet_manifest: tuple[Path, Manifest],
                                         tmp_path: Path) -> None:
    registry.import_manifest(fleet_manifest[0])
    out = tmp_path / "keys.json"
    with pytest.raises(KeyFileError, match="at least 8 characters"):
        export_key_file(registry, out, "short", meters=[CIPHERED])
    with pytest.raises(KeyFileError, match="no meter 'NOPE'"):
        export_key_file(registry, out, PASSPHRASE, meters=["NOPE"])
    with pytest.raises(KeyFileError, match=f"not linked to concentrator {DC}"):
        export_key_file(registry, out, PASSPHRASE, concentrator=DC, meters=[CIPHERED])
    with pytest.raises(UnknownConcentrator):
        export_key_file(registry, out, PASSPHRASE, concentrator="DC9999")
    with pytest.raises(KeyFileError, match="name the meters"):
        export_key_file(registry, out, PASSPHRASE)
    with pytest.raises(KeyFileError, match="up to 90 days"):
        export_key_file(registry, out, PASSPHRASE, meters=[CIPHERED], validity=timedelta(days=91))
    assert not out.exists()
    content = export_key_file(registry, out, PASSPHRASE, concentrator=DC)
    assert [d.kind for d in content.devices] == ["concentrator"] + ["meter"] * 4
    dc = content.device(DC)
    assert dc is not None and dc.counters is not None and dc.meters == tuple(d.ident for d in content.devices[1:])


@pytest.mark.parametrize(("text", "days"), [("7d", 7.0), ("12h", 0.5), ("90m", 90 / 1440), (" 3 d ", 3.0)])
def test_validity(text: str, days: float) -> None:
    assert parse_validity(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "7", "7w", "-1d", "0d", "91d", "1.5d"])
def test_bad_validity(text: str) -> None:
    with pytest.raises(KeyFileError, match="--expires"):
        parse_validity(text)
