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

SECURITY_KEYS = {"policy", "password", "system_title", "ek", "ak"}


def build(**options: object) -> Fleet:
    settings: dict[str, object] = {"concentrators": 2, "meters_per_dc": 5, "p2p": 4, "seed": 3, "schedule": False,
                                   "epoch": EPOCH}
    settings.update(options)
    return Fleet(FleetOptions(**settings), clock=FieldClock(EPOCH, 0.0))  # type: ignore[arg-type]


def test_manifest_has_the_issue_format(tmp_path: Path) -> None:
    fleet = build()
    path = tmp_path / "fleet.json"

    async def main() -> None:
        async with asyncio.timeout(10):
            async with fleet:
                fleet.write_manifest(path)

    asyncio.run(main())
    raw = json.loads(path.read_text())
    assert raw["seed"] == 3 and raw["field_epoch"] == EPOCH.isoformat()
    assert [dc["id"] for dc in raw["concentrators"]] == ["DC0001", "DC0002"]
    for dc in raw["concentrators"]:
        assert {"id", "host", "port", "meters"} <= dc.keys() and dc["host"] == "127.0.0.1" and dc["port"] > 0
        assert len(dc["meters"]) == 5
        for index, meter in enumerate(dc["meters"]):
            assert {"serial", "logical_device", "physical_address", "security"} <= meter.keys()
            assert meter["logical_device"] == 0x100 + index
            assert meter["physical_address"] == f"{0x10 + index:04x}"
            assert meter["security"].keys() == SECURITY_KEYS
    assert len(raw["p2p"]) == 4
    for k, p in enumerate(raw["p2p"]):
        assert {"serial", "host", "port", "interface", "client_sap", "server_sap", "security"} <= p.keys()
        assert p["interface"] == ("wrapper" if k % 2 == 0 else "hdlc")
        assert p["security"].keys() == SECURITY_KEYS
        if p["security"]["policy"] == "hls-gmac":
            assert len(bytes.fromhex(p["security"]["ek"])) == 16 and len(bytes.fromhex(p["security"]["ak"])) == 16
            assert len(bytes.fromhex(p["security"]["system_title"])) == 8
        if p["security"]["policy"] == "lls":
            assert bytes.fromhex(p["security"]["password"])
    ports = [dc["port"] for dc in raw["concentrators"]] + [p["port"] for p in raw["p2p"]]
    assert len(set(ports)) == len(ports)
    assert Manifest.from_json(raw) == read_manifest(path)


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
    with pytest.raises(ManifestError, match="p2p"):
        Manifest.from_json({"format": "hes-sim-fleet/1", "seed": 1, "field_epoch": "2024-01-01T00:00:00+00:00",
                            "time_scale": 1, "concentrators": [], "p2p": [{"serial": "x"}]})


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
