"""The fleet launcher: determinism, the manifest of issue 3 item 7, runtime control, p2p meters reachable."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from protocols.obis import ObisCode
from simulators.clock import FieldClock
from simulators.fleet import Fleet, FleetError, FleetOptions
from simulators.manifest import Manifest, ManifestError, read_manifest
from tests.fieldtime import EPOCH
from tests.simulators.netclient import HdlcTarget, NetClient
from tests.simulators.test_concentrator import client_config

SECURITY_KEYS = ["policy", "password", "system_title", "ek", "ak"]
METER_KEYS = ["serial", "make", "model", "firmware", "device_type", "concentrator", "logical_device",
              "physical_address", "host", "port", "interface", "server_sap", "hdlc_address", "client_sap", "security"]


def build(**options: object) -> Fleet:
    settings: dict[str, object] = {"concentrators": 2, "meters_per_dc": 5, "p2p": 4, "seed": 3, "schedule": False,
                                   "epoch": EPOCH}
    settings.update(options)
    return Fleet(FleetOptions(**settings), clock=FieldClock(EPOCH, 0.0))  # type: ignore[arg-type]


def test_manifest_has_the_registry_format(tmp_path: Path) -> None:
    fleet = build()
    path = tmp_path / "fleet.json"

    async def main() -> Manifest:
        async with asyncio.timeout(10):
            async with fleet:
                fleet.write_manifest(path)
                return fleet.manifest()

    written = asyncio.run(main())
    raw = json.loads(path.read_text())
    assert list(raw) == ["format", "concentrators", "meters", "x-simulation"]
    assert raw["format"] == "hes-registry/1"
    assert raw["x-simulation"] == {"generator": "hes sim fleet", "seed": 3,
                                   "field_epoch": EPOCH.isoformat(), "time_scale": 1.0}
    assert [dc["id"] for dc in raw["concentrators"]] == ["DC0001", "DC0002"]
    for dc in raw["concentrators"]:
        assert list(dc) == ["id", "host", "port", "wport", "client_sap", "network_id", "link", "security"]
        assert dc["host"] == "127.0.0.1" and dc["port"] > 0 and dc["wport"] == 1 and dc["link"] == "plc"
        assert dc["security"]["policy"] == "hls-gmac" and list(dc["security"]) == SECURITY_KEYS
    meters = raw["meters"]
    assert len(meters) == 2 * 5 + 4
    for meter in meters:
        assert list(meter) == METER_KEYS
        assert list(meter["security"]) == SECURITY_KEYS
        assert (meter["make"], meter["model"], meter["firmware"], meter["device_type"]) == (
            "HES-SIM", "SIM-A", "1.0", "hes-sim-a")
        assert meter["client_sap"] == 1
    for d in (1, 2):
        behind = [m for m in meters if m["concentrator"] == f"DC000{d}"]
        for index, meter in enumerate(behind):
            assert meter["serial"] == f"SIM000{d}0000{index}"
            assert meter["logical_device"] == 0x100 + index
            assert meter["physical_address"] == f"{0x10 + index:04x}"
            assert [meter[k] for k in ("host", "port", "interface", "server_sap", "hdlc_address")] == [None] * 5
    direct = [m for m in meters if m["concentrator"] is None]
    assert [m["serial"] for m in direct] == [f"P2P00000000{k}" for k in range(4)]
    for k, p in enumerate(direct):
        assert [p[key] for key in ("logical_device", "physical_address")] == [None, None]
        assert p["host"] == "127.0.0.1" and p["server_sap"] == 1
        assert p["interface"] == ("wrapper" if k % 2 == 0 else "hdlc")
        assert p["hdlc_address"] == (None if k % 2 == 0 else 0x10 + k)
        if p["security"]["policy"] == "hls-gmac":
            assert len(bytes.fromhex(p["security"]["ek"])) == 16 and len(bytes.fromhex(p["security"]["ak"])) == 16
            assert len(bytes.fromhex(p["security"]["system_title"])) == 8
        if p["security"]["policy"] == "lls":
            assert bytes.fromhex(p["security"]["password"])
    ports = [dc["port"] for dc in raw["concentrators"]] + [p["port"] for p in direct]
    assert len(set(ports)) == len(ports)
    assert Manifest.from_json(raw) == read_manifest(path) == written


def test_same_seed_same_fleet_other_seed_other_keys() -> None:
    one, two, other = build(), build(), build(seed=4)
    def securities(fleet: Fleet) -> list[object]:
        return [fleet.security(serial) for serial in fleet.meters()]

    assert list(one.meters()) == list(other.meters())
    assert securities(one) == securities(two)
    assert securities(one) != securities(other)
    big = build(concentrators=4, meters_per_dc=50, p2p=0)
    policies = {big.security(serial).policy for serial in big.meters()}
    assert policies == {"none", "lls", "hls-gmac"}


def test_bad_options_are_refused() -> None:
    with pytest.raises(FleetError, match="loopback"):
        FleetOptions(host="0.0.0.0").validate()
    with pytest.raises(FleetError, match="no such concentrator"):
        build(dc_outages=("DC0009",))
    with pytest.raises(ManifestError, match="format"):
        Manifest.from_json({"format": "other"})
    with pytest.raises(ManifestError, match=r"meters\[0\]"):
        Manifest.from_json({"format": "hes-registry/1", "concentrators": [], "meters": [{"serial": "x"}]})


def test_p2p_meters_answer_over_wrapper_and_hdlc_with_the_manifest_security() -> None:
    fleet = build(concentrators=0, p2p=2)

    async def main() -> None:
        async with asyncio.timeout(10):
            async with fleet:
                for entry in fleet.manifest().p2p:
                    config = client_config(entry.security)
                    if entry.interface == "wrapper":
                        client = await NetClient.open_wrapper(entry.host, entry.port, config,
                                                              client_sap=entry.client_sap, server_sap=entry.server_sap)
                    else:
                        target = HdlcTarget(client_sap=entry.client_sap, logical=entry.server_sap,
                                            physical=entry.physical_address)
                        client = await NetClient.open_hdlc(entry.host, entry.port, config, target=target)
                    async with client:
                        await client.associate()
                        serial = await client.get_data(1, ObisCode(0, 0, 96, 1, 0, 255), 2)
                        await client.release()
                    assert serial.value == entry.serial

    asyncio.run(main())


def test_schedule_reads_every_period_in_scaled_time() -> None:
    # 15 field minutes per 0.05 wall seconds: a few read cycles in well under a second.
    fleet = Fleet(FleetOptions(concentrators=1, meters_per_dc=3, seed=1, time_scale=18_000.0, loss=0.0, epoch=EPOCH))

    async def main() -> None:
        async with asyncio.timeout(10):
            async with fleet:
                dc = fleet.concentrators["DC0001"]
                while dc.cycles < 3:
                    await asyncio.sleep(0.02)
                marks = [m.last_read for m in dc.meters]
        assert all(mark is not None and mark > EPOCH + timedelta(minutes=15) for mark in marks)

    asyncio.run(main())
