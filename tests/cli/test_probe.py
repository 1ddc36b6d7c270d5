"""`hes probe keys export`, `hes probe read` and `hes import`: typer's runner and real subprocesses, over a pty pair.

The simulated field and its optical ports run in a thread (``tests.probe.field``); the CLI opens the
pty like a USB optical head. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tty
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from hes.db.models import EventRecord, IntervalValue, RegisterReading, utcnow
from hes.probe.keys import open_key_file, write_key_file
from hes.probe.models import FieldImport
from hes.registry import Registry
from simulators.energy import interval_end, interval_index, profile_intervals
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.probe.field import DC, DC_METERS, METER, SEED, OpticalField, optical_field

__all__ = ["database_url", "engine", "master_key", "registry"]  # the database fixtures, on both databases

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse battery"
HES = Path(sys.executable).parent / "hes"


@pytest.fixture
def hes_env(database_url: str, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the CLI reads: the test database, the registry's master key, no passphrase variable."""
    env = {"HES_DATABASE_URL": database_url, "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"),
           "HES_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HES_PROBE_PASSPHRASE", raising=False)
    return env


def counts(registry: Registry) -> list[int]:
    """Interval values, register readings, events and imported bundles stored."""
    with Session(registry.engine) as session:
        return [session.scalar(select(func.count()).select_from(model)) or 0
                for model in (IntervalValue, RegisterReading, EventRecord, FieldImport)]


def day(field: OpticalField) -> tuple[str, str]:
    start, end = field.day()
    return start.strftime("%Y-%m-%dT%H:%MZ"), end.strftime("%Y-%m-%dT%H:%MZ")


def export(runner: CliRunner, tmp_path: Path, *args: str) -> Path:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    keys = tmp_path / "keys.json"
    result = runner.invoke(app, ["probe", "keys", "export", *args, "--out", str(keys), "--expires", "1d",
                                 "--passphrase-file", str(passphrase)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"key file {keys} (export ") and "valid until" in result.stdout
    return keys


def test_read_a_meter_as_a_subprocess_import_it_once_and_refuse_a_tampered_copy(
    hes_env: dict[str, str], registry: Registry, tmp_path: Path
) -> None:
    runner = CliRunner()
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export(runner, tmp_path, "--meters", METER)
        bundle = tmp_path / "meter.bundle"
        start, end = day(field)
        env = {**os.environ, **hes_env, "HES_PROBE_PASSPHRASE": PASSPHRASE}
        command = [str(HES) if HES.exists() else sys.executable, *([] if HES.exists() else ["-m", "cli"])]
        # The field laptop has no head-end database: the probe must not need one.
        field_env = {**env, "HES_DATABASE_URL": "sqlite:////nonexistent-folder/hes.db"}
        done = subprocess.run(
            [*command, "probe", "read", "--port", field.meter_port.client_path, "--meter", METER,
             "--what", "profile,daily,events,registers", "--from", start, "--to", end, "--keys", str(keys),
             "--out", str(bundle), "--timeout", "2"],
            cwd=ROOT, env=field_env, capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    # Plain progress lines (stdout is not a terminal), then the summary.
    assert lines[:2] == [f"[1/4] {METER} profile start", f"[1/4] {METER} profile done: 192 interval values, "
                         "0 registers, 0 events so far"]
    assert lines[-1].startswith(f"bundle {bundle} (complete): meter {METER}, 1 meters, 192 interval values, "
                                "9 register readings, 0 events; sha256 ")

    assert counts(registry) == [0, 0, 0, 0]
    result = runner.invoke(app, ["import", str(bundle)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("imported bundle ") and \
        f"(meter {METER}): 1 meters; 192 interval values (192 new), 9 register readings (9 new), 0 events (0 new)" \
        in result.stdout
    stored = counts(registry)
    assert stored == [192, 9, 0, 1]
    with Session(registry.engine) as session:
        rows = session.execute(select(IntervalValue.interval_end, IntervalValue.value)
                               .where(IntervalValue.obis == "1.0.1.8.0.255"))
        values = {at: value for at, value in rows}
    first = interval_index(field.day()[0])
    assert values == {interval_end(r.interval): r.a_plus for r in profile_intervals(SEED, METER, first, first + 95)}

    again = subprocess.run([*command, "import", str(bundle), "--json"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["already_imported"] is True and data["new"] == {"intervals": 0, "registers": 0, "events": 0,
                                                                      "concentrator_events": 0}
    assert counts(registry) == stored

    # One byte of one value changed: refused with one line, exit 2, nothing stored.
    text = bundle.read_text()
    value = json.loads(text)["bundle"]["meters"][0]["intervals"][5]
    marker = f'"{value[2]}",\n      {value[3]},'
    assert text.count(marker) == 1
    tampered = tmp_path / "tampered.bundle"
    tampered.write_text(text.replace(marker, f'"{value[2]}",\n      {value[3] ^ 1},'))
    result = runner.invoke(app, ["import", str(tampered)])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line == f"hes import: bundle {tampered} was modified after it was written (its MAC does not match): " \
                   "refused, nothing stored"
    assert counts(registry) == stored


def test_wrong_passphrase_expired_key_file_and_bad_arguments_exit_2_with_one_line(
    hes_env: dict[str, str], registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export(runner, tmp_path, "--meters", METER)
        opened = open_key_file(keys, PASSPHRASE)
        expired = tmp_path / "expired.json"
        write_key_file(expired, replace(opened.content, expires_at=utcnow() - timedelta(minutes=1)), PASSPHRASE)
        base = ["probe", "read", "--port", field.meter_port.client_path, "--what", "registers",
                "--out", str(tmp_path / "out.bundle")]
        cases = [
            ({}, ["--keys", str(keys)], "hes probe: no passphrase: give --passphrase-file or set HES_PROBE_PASSPHRASE"),
            ({"HES_PROBE_PASSPHRASE": "not the passphrase"}, ["--keys", str(keys)],
             f"hes probe: cannot open key file {keys}: wrong passphrase, or the file was modified"),
            ({"HES_PROBE_PASSPHRASE": PASSPHRASE}, ["--keys", str(expired)],
             f"hes probe: key file {expired} (export {opened.content.export_id}) expired at "),
            ({"HES_PROBE_PASSPHRASE": PASSPHRASE}, ["--keys", str(keys), "--what", "voltage"],
             "hes probe: --what 'voltage': one or more of profile, daily, events, registers"),
            ({"HES_PROBE_PASSPHRASE": PASSPHRASE}, ["--keys", str(keys), "--parity", "odd"],
             "hes probe: --parity 'odd': auto, uart or software"),
            ({"HES_PROBE_PASSPHRASE": PASSPHRASE}, ["--keys", str(keys), "--from", "yesterday"],
             "hes probe: --from 'yesterday' is not an ISO 8601"),
            ({"HES_PROBE_PASSPHRASE": PASSPHRASE}, ["--keys", str(keys), "--meter", "SIM000100000"],
             "hes probe: the key file holds no keys for meter SIM000100000"),
            ({"HES_PROBE_PASSPHRASE": PASSPHRASE}, ["--keys", str(keys), "--out", str(keys)],
             f"hes probe: --out {keys} exists: choose another name"),
        ]
        for env, args, message in cases:
            monkeypatch.delenv("HES_PROBE_PASSPHRASE", raising=False)
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            result = runner.invoke(app, [*base, *args])
            assert result.exit_code == 2, (args, result.output)
            (line,) = result.stderr.splitlines()
            assert line.startswith(message), line
            assert not (tmp_path / "out.bundle").exists()
        assert field.meter_port.sign_ons == 0  # refused before the port was touched

        # The head on nothing (a silent line): one line, exit 1, no bundle.
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            monkeypatch.setenv("HES_PROBE_PASSPHRASE", PASSPHRASE)
            result = runner.invoke(app, ["probe", "read", "--port", os.ttyname(slave), "--what", "registers",
                                         "--keys", str(keys), "--out", str(tmp_path / "out.bundle"),
                                         "--timeout", "0.3", "--retries", "0"])
        finally:
            os.close(master)
            os.close(slave)
        assert result.exit_code == 1, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"hes probe: meter {METER}: nothing read: {METER}: registers: ") and \
            "no answer to the sign-on" in line and line.endswith("; no bundle written")
        assert not (tmp_path / "out.bundle").exists()

    for args, message in [
        (["--meters", METER, "--expires", "1y"], "hes probe keys: --expires '1y'"),
        (["--meters", "NOPE", "--expires", "1d"], "hes probe keys: no meter 'NOPE' in the registry"),
        (["--expires", "1d"], "hes probe keys: name the meters (--meters) or a concentrator"),
    ]:
        monkeypatch.setenv("HES_PROBE_PASSPHRASE", PASSPHRASE)
        result = runner.invoke(app, ["probe", "keys", "export", *args, "--out", str(tmp_path / "k2.json")])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith(message), line


def test_a_probe_that_stops_mid_read_leaves_a_partial_bundle_that_imports(
    hes_env: dict[str, str], registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("HES_PROBE_PASSPHRASE", PASSPHRASE)
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export(runner, tmp_path, "--meters", METER)
        field.stop_after(12)
        start, end = day(field)
        bundle = tmp_path / "partial.bundle"
        result = runner.invoke(app, ["probe", "read", "--port", field.meter_port.client_path, "--what",
                                     "profile,daily,registers", "--from", start, "--to", end, "--keys", str(keys),
                                     "--out", str(bundle), "--timeout", "1", "--retries", "1", "--json"])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"hes probe: partial bundle {bundle} written: {METER}: daily: ")
    assert line.endswith("(after 2 tries)")
    summary = json.loads(result.stdout)
    assert summary["partial"] is True and summary["rows"] == {"intervals": 192, "registers": 0, "events": 0}
    payload = json.loads(bundle.read_text())["bundle"]
    assert payload["partial"] is True and payload["meters"][0]["read"] == ["profile"]

    result = runner.invoke(app, ["import", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "(partial: " in result.stdout and "192 interval values (192 new)" in result.stdout
    assert counts(registry) == [192, 0, 0, 1]


def test_read_a_concentrator_and_its_meters_through_its_optical_port(
    hes_env: dict[str, str], registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("HES_PROBE_PASSPHRASE", PASSPHRASE)
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export(runner, tmp_path, "--concentrator", DC)
        start, end = day(field)
        bundle = tmp_path / "dc.bundle"
        result = runner.invoke(app, ["probe", "read", "--port", field.dc_port.client_path, "--concentrator", DC,
                                     "--meter", f"{DC_METERS[1]},{DC_METERS[2]}", "--what", "profile",
                                     "--from", start, "--to", end, "--keys", str(keys), "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"[1/3] {DC} concentrator start"
    assert f"bundle {bundle} (complete): concentrator {DC}, 2 meters, 384 interval values" in result.stdout
    result = runner.invoke(app, ["import", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["device"] == {"kind": "concentrator", "id": DC} and data["meters"] == list(DC_METERS[1:])
    assert data["concentrator_events"] == 0  # --what profile: its event log was not asked for
    assert data["new"]["intervals"] == 384  # a day of two channels for each of the two meters
    with Session(registry.engine) as session:
        rows = session.execute(select(IntervalValue.interval_end, IntervalValue.value)
                               .where(IntervalValue.obis == "1.0.2.8.0.255"))
        exported = sorted(value for _, value in rows)
    first = interval_index(field.day()[0])
    assert exported == sorted(r.a_minus for serial in DC_METERS[1:]
                              for r in profile_intervals(SEED, serial, first, first + 95))
