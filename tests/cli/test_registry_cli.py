"""`hes db|registry|meter|concentrator` through typer's runner and as a real subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from simulators.manifest import Manifest, ManifestConcentrator, ManifestDcMeter, ManifestP2p
from tests.hes.conftest import database_url, fleet_manifest

__all__ = ["database_url", "fleet_manifest"]  # fixtures shared with tests/hes

ROOT = Path(__file__).resolve().parents[2]
EK = "000102030405060708090a0b0c0d0e0f"
AK = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"HES_DATABASE_URL": database_url, "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_upgrade_import_list_show(env: dict[str, str], fleet_manifest: tuple[Path, Manifest]) -> None:
    path, manifest = fleet_manifest
    code, out = _run("db", "upgrade")
    assert code == 0 and "migrated from empty to revision" in out
    code, out = _run("db", "upgrade", "--json")
    assert code == 0 and json.loads(out)["from"] == json.loads(out)["to"]
    code, out = _run("registry", "import", str(path), "--json")
    assert code == 0 and json.loads(out)["meters_added"] == 7
    code, out = _run("registry", "import", str(path))
    assert code == 0 and "meters 0 new, 7 updated" in out
    code, out = _run("meter", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and len(listed) == 7 and {m["state"] for m in listed} == {"commissioned"}
    code, out = _run("meter", "list")
    assert code == 0 and manifest.p2p[0].serial in out
    dc = manifest.concentrators[0]
    code, out = _run("meter", "show", dc.meters[0].serial)
    assert code == 0 and dc.id in out
    code, out = _run("concentrator", "list", "--json")
    assert code == 0 and json.loads(out)[0]["meters"] == 4
    code, out = _run("concentrator", "show", dc.id)
    assert code == 0 and "hls-gmac" in out
    devices: list[ManifestConcentrator | ManifestDcMeter | ManifestP2p] = [dc, *dc.meters, *manifest.p2p]
    for device in devices:
        for secret in (device.security.ek, device.security.ak, device.security.password):
            if secret:
                assert secret.hex() not in out


def test_add_show_decommission_without_printing_keys(env: dict[str, str]) -> None:
    code, out = _run("meter", "add", "ACME-1", "--host", "127.0.0.1", "--port", "4059", "--interface", "hdlc",
                     "--security", "hls-gmac", "--system-title", "4d4d4d0000bc614e", "--ek", EK, "--ak", AK, "--json")
    assert code == 0 and json.loads(out)["has_keys"] is True
    code, out = _run("meter", "show", "ACME-1")
    assert code == 0 and "hdlc" in out
    code, shown = _run("meter", "show", "ACME-1", "--json")
    for text in (out, shown):
        assert EK not in text and AK not in text
    code, out = _run("meter", "decommission", "ACME-1")
    assert code == 0 and "decommissioned" in out
    code, out = _run("meter", "list", "--state", "decommissioned", "--json")
    assert [m["serial"] for m in json.loads(out)] == ["ACME-1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["meter", "add", "X", "--host", "h", "--port", "1", "--security", "hls-gmac", "--system-title", "zz",
          "--ek", EK, "--ak", AK], "--system-title is not hex"),
        (["meter", "add", "X", "--host", "h", "--port", "1", "--security", "lls"], "needs --password"),
        (["meter", "add", "X", "--host", "h", "--port", "1", "--interface", "rs485"], "--interface"),
        (["meter", "add", "X", "--host", "h", "--port", "70000"], "port 70000"),
        (["meter", "add", "X", "--host", "h", "--port", "1", "--security", "hls-gmac", "--system-title",
          "4d4d4d0000bc614e", "--ek", EK[:-2], "--ak", AK], "--ek must be 16 bytes"),
        (["meter", "show", "NOPE"], "no meter 'NOPE'"),
        (["meter", "decommission", "NOPE"], "no meter 'NOPE'"),
        (["meter", "list", "--state", "broken"], "--state"),
        (["concentrator", "show", "DC9"], "no concentrator"),
        (["registry", "import", "/nonexistent/fleet.json"], "cannot read registry file"),
    ],
)
def test_bad_input_exits_2_with_one_line(env: dict[str, str], args: list[str], message: str) -> None:
    code, out = _run(*args)
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0] and lines[0].startswith("hes "), out


def test_a_readable_master_key_is_refused(env: dict[str, str]) -> None:
    key = Path(env["HES_MASTER_KEY_FILE"])
    assert _run("meter", "list")[0] == 0  # creates the key
    key.chmod(0o644)
    code, out = _run("meter", "list")
    assert code == 2 and "chmod 600" in out and len(out.strip().splitlines()) == 1


def test_as_a_subprocess(env: dict[str, str], fleet_manifest: tuple[Path, Manifest], tmp_path: Path) -> None:
    path, _ = fleet_manifest
    environment = {**os.environ, **env, "PYTHONPATH": str(ROOT)}

    def hes(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=60)

    done = hes("registry", "import", str(path), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["meters_added"] == 7, done.stderr
    missing = hes("meter", "show", "NOPE")
    assert missing.returncode == 2 and missing.stderr.strip() == "hes meter: no meter 'NOPE' in the registry"
    assert "Traceback" not in missing.stderr
