"""The registry on SQLite and PostgreSQL: a real fleet manifest imported (idempotently), p2p meters, targets, keys."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from concentrator.reachability import Contact
from hes.db import session_factory
from hes.db.models import AssetEvent, AuditEntry, Concentrator, Meter
from hes.keys import KeyStoreError, load_master_key
from hes.model import DirectRoute, MeterSecurity, ViaConcentrator
from hes.registry import Registry, RegistryError, UnknownConcentrator, UnknownMeter
from simulators.manifest import Manifest, ManifestDcMeter, ManifestP2p

Fixture = tuple[Path, Manifest]


def _count(engine: Engine, model: type[object]) -> int:
    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_import_registers_the_fleet_and_targets_carry_its_keys(registry: Registry, fleet_manifest: Fixture) -> None:
    path, manifest = fleet_manifest
    summary = registry.import_manifest(path, who="tester")
    assert summary.to_json() == {
        "concentrators_added": 1, "concentrators_updated": 0, "meters_added": 7, "meters_updated": 0,
    }
    (dc,) = manifest.concentrators
    info = registry.show_concentrator(dc.id)
    assert (info.host, info.port, info.wport, info.meters, info.security_policy) == (
        dc.host, dc.port, dc.logical_device, 4, dc.security.policy,
    )
    for m in dc.meters:
        target = registry.target_for(m.serial)
        assert isinstance(target.route, ViaConcentrator)
        assert target.route.concentrator_id == dc.id and target.route.port == dc.port
        assert target.route.logical_device == m.logical_device and target.route.physical_address == m.physical_address
        assert target.route.network_id == dc.network_id and target.route.management_wport == dc.logical_device
        assert target.route.dc_security.ek == dc.security.ek and target.route.dc_security.ak == dc.security.ak
        assert target.route.dc_security.system_title == dc.security.system_title
        assert target.security == MeterSecurity(m.security.policy, m.security.password, m.security.system_title,
                                                m.security.ek, m.security.ak)
        assert registry.show_meter(m.serial).state == "commissioned"
    for p in manifest.p2p:
        target = registry.target_for(p.serial)
        assert target.route == DirectRoute(p.host, p.port, p.interface, p.client_sap, p.server_sap,  # type: ignore[arg-type]
                                           p.physical_address)
        assert target.security.ek == p.security.ek and target.security.password == p.security.password
    assert [m.serial for m in registry.list_meters(concentrator=dc.id)] == [m.serial for m in dc.meters]
    assert len(registry.list_meters()) == 7
    kinds = registry.lifecycle(dc.meters[0].serial)
    assert [kind for _, kind, _ in kinds] == ["installed"]


def test_reimport_updates_and_never_duplicates(registry: Registry, engine: Engine, fleet_manifest: Fixture,
                                               tmp_path: Path) -> None:
    path, manifest = fleet_manifest
    registry.import_manifest(path)
    registry.decommission(manifest.p2p[0].serial)
    raw = json.loads(path.read_text())
    raw["concentrators"][0]["port"] = 1234
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(raw))
    summary = registry.import_manifest(moved)
    assert summary.to_json() == {
        "concentrators_added": 0, "concentrators_updated": 1, "meters_added": 0, "meters_updated": 7,
    }
    assert _count(engine, Meter) == 7 and _count(engine, Concentrator) == 1
    assert _count(engine, AssetEvent) == 7 + 1  # one "installed" each, and the decommissioning
    assert registry.show_concentrator(manifest.concentrators[0].id).port == 1234
    serial = manifest.concentrators[0].meters[0].serial
    route = registry.target_for(serial).route
    assert isinstance(route, ViaConcentrator) and route.port == 1234
    assert registry.show_meter(manifest.p2p[0].serial).state == "decommissioned"  # a re-import does not revive it
    assert _count(engine, AuditEntry) == 3


def test_secrets_are_encrypted_at_rest(registry: Registry, engine: Engine, fleet_manifest: Fixture) -> None:
    path, manifest = fleet_manifest
    registry.import_manifest(path)
    secrets = [manifest.concentrators[0].security.ek, manifest.concentrators[0].security.ak]
    devices: list[ManifestDcMeter | ManifestP2p] = [*manifest.concentrators[0].meters, *manifest.p2p]
    for device in devices:
        secrets += [device.security.ek, device.security.ak, device.security.password]
    present = [s for s in secrets if s]
    assert present
    with engine.connect() as connection:
        blobs = b"".join(
            bytes(value)
            for table in ("meters", "concentrators")
            for row in connection.execute(text(f"SELECT password_enc, ek_enc, ak_enc FROM {table}"))
            for value in row
            if value is not None
        )
    for secret in present:
        assert secret not in blobs
    for info in registry.list_meters():
        assert not any(s.hex() in json.dumps(info.to_json()) for s in present)
        assert "ek=" not in repr(registry.target_for(info.serial).security)


def test_a_wrong_master_key_gives_a_clear_error(engine: Engine, fleet_manifest: Fixture, tmp_path: Path) -> None:
    path, manifest = fleet_manifest
    Registry(engine, load_master_key(tmp_path / "right.key")).import_manifest(path)
    other = Registry(engine, load_master_key(tmp_path / "wrong.key"))
    devices: list[ManifestDcMeter | ManifestP2p] = [*manifest.concentrators[0].meters, *manifest.p2p]
    hls = next(p.serial for p in devices if p.security.ek)
    with pytest.raises(KeyStoreError, match="wrong HES_MASTER_KEY_FILE"):
        other.target_for(hls)
    assert other.show_meter(hls).has_keys  # listing needs no decryption


def test_add_meter_and_decommission(registry: Registry) -> None:
    security = MeterSecurity("hls-gmac", None, bytes(8), bytes(range(16)), bytes(range(16, 32)))
    info = registry.add_meter("P2P-42", host="10.0.0.7", port=4059, interface="hdlc", physical_address=17,
                              security=security, make="ACME", service_life_years=15,
                              warranty_until=date(2030, 1, 1))
    assert (info.state, info.link, info.has_keys, info.make) == ("commissioned", "hdlc 10.0.0.7:4059", True, "ACME")
    target = registry.target_for("P2P-42")
    assert target.route == DirectRoute("10.0.0.7", 4059, "hdlc", 1, 1, 17)
    assert target.security == security
    with pytest.raises(RegistryError, match="already registered"):
        registry.add_meter("P2P-42", host="h", port=1)
    done = registry.decommission("P2P-42")
    assert done.state == "decommissioned" and done.decommissioning_date is not None
    with pytest.raises(RegistryError, match="already decommissioned"):
        registry.decommission("P2P-42")
    assert [kind for _, kind, _ in registry.lifecycle("P2P-42")] == ["installed", "decommissioned"]
    assert registry.list_meters(state="decommissioned")[0].serial == "P2P-42"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, "port 0"),
        ({"interface": "serial"}, "interface"),
        ({"client_sap": 70000}, "client SAP"),
        ({"security": MeterSecurity("lls")}, "password"),
        ({"security": MeterSecurity("hls-gmac", None, bytes(8), bytes(16), None)}, "AK"),
        ({"security": MeterSecurity("hls-gmac", None, bytes(7), bytes(16), bytes(16))}, "system title"),
        ({"host": ""}, "--host"),
    ],
)
def test_add_meter_refuses_bad_values(registry: Registry, kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"host": "127.0.0.1", "port": 4059, **kwargs}
    with pytest.raises(RegistryError, match=message):
        registry.add_meter("BAD", **arguments)  # type: ignore[arg-type]
    assert registry.list_meters() == []


def test_unknown_devices_and_bad_manifests(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(UnknownMeter):
        registry.show_meter("NOPE")
    with pytest.raises(UnknownMeter):
        registry.target_for("NOPE")
    with pytest.raises(UnknownConcentrator):
        registry.show_concentrator("DC9999")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(RegistryError, match="format"):
        registry.import_manifest(bad)
    with pytest.raises(RegistryError, match="cannot read"):
        registry.import_manifest(tmp_path / "missing.json")
    assert registry.list_concentrators() == []


def test_concentrator_contact(registry: Registry, fleet_manifest: Fixture) -> None:
    path, manifest = fleet_manifest
    registry.import_manifest(path)
    ident = manifest.concentrators[0].id
    assert registry.show_concentrator(ident).last_contact is None
    registry.set_concentrator_contact(ident, Contact.ANSWERED)
    seen = registry.show_concentrator(ident)
    assert seen.reachable is True and seen.last_contact is not None
    registry.set_concentrator_contact(ident, Contact.NO_CONNECTION)
    down = registry.show_concentrator(ident)
    assert down.reachable is False and down.last_contact == seen.last_contact
    registry.set_concentrator_contact(ident, Contact.METER_SILENT)  # the DC answered; a meter behind it did not
    assert registry.show_concentrator(ident).reachable is True
    with pytest.raises(UnknownConcentrator):
        registry.set_concentrator_contact("DC9999", Contact.ANSWERED)
    assert [c.id for c in registry.list_concentrators()] == [ident]
