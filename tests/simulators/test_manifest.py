"""The manifest in the head-end's registry format: JSON and CSV written and read back, old and bad files refused."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from simulators.clock import FieldClock
from simulators.fleet import DEFAULT_EPOCH, Fleet, FleetOptions
from simulators.manifest import CSV_COLUMNS, FORMAT, Manifest, ManifestError, read_manifest, write_manifest


def written(tmp_path: Path, **options: object) -> Manifest:
    settings: dict[str, object] = {"concentrators": 2, "meters_per_dc": 3, "p2p": 3, "seed": 7, "schedule": False,
                                   "make_b": ("SIM000200001", "P2P000000001"), "link": "rf"}
    settings.update(options)
    fleet = Fleet(FleetOptions(**settings), clock=FieldClock(DEFAULT_EPOCH, 0.0))  # type: ignore[arg-type]

    async def main() -> Manifest:
        async with asyncio.timeout(10):
            async with fleet:
                return fleet.manifest()

    return asyncio.run(main())


def test_json_round_trip_with_makes_and_link(tmp_path: Path) -> None:
    manifest = written(tmp_path)
    path = tmp_path / "fleet.json"
    write_manifest(path, manifest)
    raw = json.loads(path.read_text())
    assert raw["format"] == FORMAT == "hes-registry/1"
    assert {dc["link"] for dc in raw["concentrators"]} == {"rf"}
    kinds = {m["serial"]: (m["model"], m["firmware"], m["device_type"]) for m in raw["meters"]}
    assert kinds["SIM000200001"] == kinds["P2P000000001"] == ("SIM-B", "2.1", "hes-sim-b")
    assert kinds["SIM000100000"] == ("SIM-A", "1.0", "hes-sim-a")
    assert read_manifest(path) == manifest
    back = read_manifest(path)
    assert back.concentrators[1].meters[1].device_type == "hes-sim-b" and back.concentrators[0].link == "rf"
    assert (back.seed, back.field_epoch, back.time_scale) == (7, DEFAULT_EPOCH, 1.0)


def test_csv_has_one_row_per_device_and_no_simulation_extension(tmp_path: Path) -> None:
    manifest = written(tmp_path)
    path = tmp_path / "fleet.csv"
    write_manifest(path, manifest)
    text = path.read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].split(",") == list(CSV_COLUMNS)
    assert [r["kind"] for r in rows] == ["concentrator"] * 2 + ["meter"] * 9
    dc = rows[0]
    assert (dc["id"], dc["wport"], dc["link"], dc["security_policy"], dc["serial"], dc["password"]) == (
        "DC0001", "1", "rf", "hls-gmac", "", "")
    assert dc["ek"] == manifest.concentrators[0].security.ek.hex()  # type: ignore[union-attr]
    behind = rows[2]
    assert (behind["serial"], behind["concentrator"], behind["logical_device"], behind["physical_address"],
            behind["host"], behind["interface"]) == ("SIM000100000", "DC0001", "256", "0010", "", "")
    direct = rows[-1]
    assert (direct["serial"], direct["concentrator"], direct["interface"], direct["hdlc_address"]) == (
        "P2P000000002", "", "wrapper", "")
    assert rows[-2]["hdlc_address"] == str(0x11)
    assert "seed" not in text and "x-simulation" not in text
    # Read back: the same devices; nothing of the simulation.
    back = read_manifest(path)
    assert back == replace(manifest, seed=None, field_epoch=None, time_scale=None)


def test_a_file_without_the_simulation_extension_imports_the_same_devices(tmp_path: Path) -> None:
    manifest = written(tmp_path)
    raw = manifest.to_json()
    del raw["x-simulation"]
    raw["x-vendor"] = {"anything": True}  # extensions are ignored
    back = Manifest.from_json(raw)
    assert back.concentrators == manifest.concentrators and back.p2p == manifest.p2p and back.seed is None


def test_the_old_format_is_refused_in_one_line_naming_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "hes-sim-fleet/1", "seed": 1, "concentrators": [], "p2p": []}))
    with pytest.raises(ManifestError) as refused:
        read_manifest(path)
    message = str(refused.value)
    assert "hes-sim-fleet/1" in message and "'hes-registry/1'" in message and "\n" not in message


def _minimal() -> dict[str, object]:
    security = {"policy": "none", "password": None, "system_title": None, "ek": None, "ak": None}
    return {
        "format": FORMAT,
        "concentrators": [{"id": "DC1", "host": "h", "port": 1, "wport": 1, "client_sap": 1, "network_id": 0,
                           "link": "plc", "security": security}],
        "meters": [{"serial": "M1", "make": None, "model": None, "firmware": None, "device_type": None,
                    "concentrator": "DC1", "logical_device": 256, "physical_address": "0010", "host": None,
                    "port": None, "interface": None, "server_sap": None, "hdlc_address": None, "client_sap": 1,
                    "security": security}],
    }


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("meters", 0, "concentrator"), "DC9", "not a listed concentrator"),
        (("meters", 0, "physical_address"), "001000", "2 bytes"),
        (("meters", 0, "physical_address"), "zz", "not valid hex"),
        (("meters", 0, "make"), 5, "make must be a string or null"),
        (("concentrators", 0, "link"), "wifi", "link must be one of plc, rf"),
        (("concentrators", 0, "wport"), None, "wport"),
        (("meters", 0, "security", "policy"), "hls", "policy"),
        (("x-simulation",), {"seed": 1, "field_epoch": "2024-01-01T00:00", "time_scale": 1},
         "needs a time zone"),
    ],
)
def test_bad_fields_are_named(path: tuple[object, ...], value: object, message: str) -> None:
    raw = _minimal()
    target: object = raw
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(raw)
    assert Manifest.from_json(_minimal()).concentrators[0].meters[0].serial == "M1"


def test_a_direct_meter_needs_its_direct_fields_and_serials_are_unique() -> None:
    raw = _minimal()
    meter = raw["meters"][0]  # type: ignore[index]
    meter["concentrator"] = None
    with pytest.raises(ManifestError, match=r"meters\[0\]\.interface"):
        Manifest.from_json(raw)
    meter.update({"host": "127.0.0.1", "port": 4080, "interface": "hdlc", "server_sap": 1, "hdlc_address": 17})
    assert Manifest.from_json(raw).p2p[0].physical_address == 17
    raw["meters"].append(dict(meter))  # type: ignore[attr-defined]
    with pytest.raises(ManifestError, match="appears twice"):
        Manifest.from_json(raw)


def test_bad_csv_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("kind,serial\nmeter,M1\n")
    with pytest.raises(ManifestError, match="lacks the column"):
        read_manifest(path)
    header = ",".join(CSV_COLUMNS)
    path.write_text(header + "\nthing" + "," * (len(CSV_COLUMNS) - 1) + "\n")
    with pytest.raises(ManifestError, match="line 2: kind"):
        read_manifest(path)
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(kind="concentrator", id="DC1", host="h", port="one")
    path.write_text(header + "\n" + ",".join(row[c] for c in CSV_COLUMNS) + "\n")
    with pytest.raises(ManifestError, match="port 'one' is not an integer"):
        read_manifest(path)
