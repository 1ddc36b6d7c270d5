"""A concentrator's meter table read and reconciled with the registry; its clock judged and set; on both databases.

Meters join, leave and change address in the simulated DC's table (``simulators.fleet``); the
head-end learns of it only by reading the table (``hes concentrator sync``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from concentrator.clock import ClockPolicy
from hes.commands import Commands
from hes.config import ConfigError, load_settings
from hes.db.models import utcnow
from hes.dcsync import SyncResult, claim_due, sync_concentrator
from hes.devicetypes import SHIPPED
from hes.reads import read_meter
from hes.registry import Registry
from hes.runner import OrderRunner
from scheduler.reports import silent
from tests.hes.test_commands import FAST, FieldThread, small_field

DC = "DC0001"


def run(coroutine: object) -> object:
    async def main() -> object:
        async with asyncio.timeout(60):
            return await coroutine  # type: ignore[misc]

    return asyncio.run(main())


def sync(registry: Registry, field: FieldThread) -> SyncResult:
    runner = OrderRunner(registry, requested_by="tester", timeouts=FAST, clock=field.fleet.clock.now)
    result = run(sync_concentrator(runner, DC, requested_by="tester"))
    assert isinstance(result, SyncResult)
    return result


@pytest.fixture
def field(registry: Registry, tmp_path: Path) -> Iterator[FieldThread]:
    with FieldThread(small_field()) as running:
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        yield running


def test_an_unchanged_table_changes_nothing_and_the_clock_is_judged(registry: Registry, field: FieldThread) -> None:
    result = sync(registry, field)
    assert result.state == "EXE", (result.reason, result.observations)
    assert result.meters_in_table == 3 and result.summary is not None and "3 unchanged" in result.summary
    assert result.clock_deviation is not None and abs(result.clock_deviation) < 1
    info = registry.show_concentrator(DC)
    assert info.reachable is True


def test_joined_left_and_readdressed_meters_are_reconciled(registry: Registry, field: FieldThread) -> None:
    fleet = field.fleet
    joined = fleet.add_meter(DC)
    left = fleet.remove_meter("SIM000100000")
    moved = fleet.readdress_meter("SIM000100002")
    result = sync(registry, field)
    assert result.state == "WARN"
    assert result.summary == (f"concentrator {DC}: 1 discovered, 1 missing, 1 readdressed, 0 relinked, 0 back, "
                              "1 unchanged")
    assert any(f"1 meters no longer in the table: {left.serial}" in o for o in result.observations)

    # Discovered: known, linked, not read until commissioned with its keys.
    found = registry.show_meter(joined.serial)
    assert (found.state, found.concentrator_id, found.logical_device) == ("discovered", DC, joined.wport)
    assert found.physical_address == joined.physical_address.to_bytes(2, "big").hex()
    assert [kind for _, kind, _ in registry.lifecycle(joined.serial)] == ["discovered"]
    before = run(read_meter(registry, joined.serial, "registers", requested_by="tester", timeouts=FAST,
                            clock=fleet.clock.now))
    assert before.state == "FAIL" and "discovered, not commissioned" in before.reason  # type: ignore[attr-defined]
    security = fleet.security(joined.serial)
    from hes.model import MeterSecurity

    registry.commission(joined.serial, MeterSecurity(security.policy, security.password, security.system_title,
                                                     security.ek, security.ak), who="tester")
    after = run(read_meter(registry, joined.serial, "registers", requested_by="tester", timeouts=FAST,
                           clock=fleet.clock.now))
    assert after.state == "EXE", after.reason  # type: ignore[attr-defined]

    # Missing: flagged once, listed by silent, a lifecycle event.
    gone = registry.show_meter(left.serial)
    assert gone.state == "commissioned" and gone.missing_since is not None
    assert "missing from concentrator" in [kind for _, kind, _ in registry.lifecycle(left.serial)]
    report = silent(registry.engine, utcnow() - timedelta(hours=1))
    listed = {m.serial: m for m in report.meters}
    assert left.serial in listed and listed[left.serial].missing_since is not None
    assert "no longer in the meter table" in (listed[left.serial].reason or "")

    # Readdressed: the new address applied, and a gateway read reaches the meter there.
    assert registry.show_meter(moved.serial).physical_address == moved.physical_address.to_bytes(2, "big").hex()
    assert "readdressed" in [kind for _, kind, _ in registry.lifecycle(moved.serial)]
    read = run(read_meter(registry, moved.serial, "clock", requested_by="tester", timeouts=FAST,
                          clock=fleet.clock.now))
    assert read.state == "EXE", read.reason  # type: ignore[attr-defined]

    # A second sync: nothing new (the missing one stays flagged, once).
    again = sync(registry, field)
    assert again.summary is not None and "0 discovered, 0 missing" in again.summary
    assert "1 still missing" in again.summary


def test_a_dc_clock_beyond_the_tolerance_is_a_warning_until_it_is_set(registry: Registry, field: FieldThread) -> None:
    dc = field.fleet.concentrators[DC]
    dc.set_clock_offset(125.0)
    result = sync(registry, field)
    assert result.state == "WARN" and result.clock_deviation == pytest.approx(125.0, abs=1)
    assert any(o.startswith(f"concentrator {DC} clock off by +125 s") for o in result.observations)
    shown = registry.show_concentrator(DC)
    assert shown.clock_deviation == pytest.approx(125.0, abs=1)
    commands = Commands(registry, who="tester", timeouts=FAST, now=field.fleet.clock.now)
    done = run(commands.clock_sync(DC, 10, concentrator=True))
    assert done.state == "EXE" and done.values["set"] is True, done.detail  # type: ignore[attr-defined]
    assert abs(dc.clock_offset()) < 1
    assert registry.show_concentrator(DC).clock_deviation == pytest.approx(0.0, abs=1)
    assert sync(registry, field).state == "EXE"


def test_a_meter_read_through_the_dc_reads_its_clock_when_due(registry: Registry, field: FieldThread) -> None:
    field.fleet.concentrators[DC].set_clock_offset(-40.0)
    now = field.fleet.clock.now

    def read(policy: ClockPolicy) -> tuple[str, list[str]]:
        runner = OrderRunner(registry, requested_by="tester", timeouts=FAST, clock=now, clock_policy=policy)
        result = run(read_meter(registry, "SIM000100001", "clock", requested_by="tester", runner=runner))
        return result.state, result.observations  # type: ignore[attr-defined]

    state, observations = read(ClockPolicy())  # never read: due at the first contact
    assert state == "WARN" and any(o.startswith(f"concentrator {DC} clock off by -40 s") for o in observations)
    checked = registry.show_concentrator(DC).clock_checked_at
    assert checked is not None and registry.show_concentrator(DC).clock_deviation == pytest.approx(-40.0, abs=1)
    state, observations = read(ClockPolicy())  # read within the hour: not again
    assert state == "EXE" and not any("clock off" in o for o in observations)
    assert registry.show_concentrator(DC).clock_checked_at == checked
    field.fleet.concentrators[DC].set_clock_offset(-20.0)
    state, observations = read(ClockPolicy())
    assert registry.show_concentrator(DC).clock_deviation == pytest.approx(-40.0, abs=1)  # not read again
    state, observations = read(ClockPolicy(tolerance=30.0, every=timedelta(0)))  # at every contact
    assert state == "EXE" and registry.show_concentrator(DC).clock_deviation == pytest.approx(-20.0, abs=1)
    field.fleet.concentrators[DC].set_clock_offset(-90.0)
    state, observations = read(ClockPolicy(every=None))  # off: only a sync or a clock sync reads it
    assert state == "EXE" and registry.show_concentrator(DC).clock_deviation == pytest.approx(-20.0, abs=1)


def test_the_daemon_claims_each_dc_once_a_day(registry: Registry, field: FieldThread) -> None:
    now = utcnow()
    assert claim_due(registry.engine, now, 86400) == [DC]
    assert claim_due(registry.engine, now + timedelta(hours=1), 86400) == []  # claimed: another worker skips it
    assert claim_due(registry.engine, now + timedelta(days=1, seconds=1), 86400) == [DC]


def test_the_command_line(registry: Registry, field: FieldThread, database_url: str, tmp_path: Path) -> None:
    env = {"HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
           "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "HES_TOKEN": None}
    field.fleet.add_meter(DC)
    runner = CliRunner()
    done = runner.invoke(app, ["concentrator", "sync", "--all", "--json", "--timeout", "5"], env=env)
    assert done.exit_code == 0, done.output
    (result,) = json.loads(done.stdout)
    assert result["summary"].startswith(f"concentrator {DC}: 1 discovered")
    # The command line judges the DC's clock by the machine's, and the field's clock is pinned elsewhere.
    off = (field.fleet.concentrators[DC].now() - utcnow()).total_seconds()
    assert result["clock_deviation_s"] == pytest.approx(off, abs=5)
    assert result["state"] == ("WARN" if abs(off) > 10 else "EXE")
    assert all(o.startswith(f"concentrator {DC} clock off by") for o in result["observations"])
    listed = runner.invoke(app, ["meter", "list", "--state", "discovered", "--json"], env=env)
    assert [m["serial"] for m in json.loads(listed.stdout)] == ["SIM000100003"]

    # Commissioned with its keys; the policy defaults to what its device type says.
    keys = field.fleet.security("SIM000100003")
    assert keys.policy == "lls" and keys.password  # the seed's draw for the joined meter
    document = json.loads((SHIPPED / "hes-sim-a.json").read_text())
    document.update(name="hes-sim-a-lls", security={"policy": "lls", "client_sap": 1})
    (tmp_path / "lls.json").write_text(json.dumps(document))
    assert runner.invoke(app, ["devicetype", "add", str(tmp_path / "lls.json")], env=env).exit_code == 0
    missing = runner.invoke(app, ["meter", "commission", "SIM000100003", "--device-type", "hes-sim-a-lls"], env=env)
    assert missing.exit_code == 2 and len(missing.stderr.splitlines()) == 1, missing.output
    assert "lls needs --password" in missing.stderr and "Traceback" not in missing.output
    assert registry.show_meter("SIM000100003").state == "discovered"  # nothing changed
    done = runner.invoke(app, ["meter", "commission", "SIM000100003", "--device-type", "hes-sim-a-lls",
                               "--password", keys.password.decode()], env=env)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("meter SIM000100003 commissioned:") and "security lls" in done.stdout
    assert keys.password.decode() not in done.output
    again = runner.invoke(app, ["meter", "commission", "SIM000100003", "--security", "none"], env=env)
    assert again.exit_code == 2 and "only a discovered or installed meter is commissioned" in again.stderr
    read = run(read_meter(registry, "SIM000100003", "registers", requested_by="tester", timeouts=FAST,
                          clock=field.fleet.clock.now))
    assert read.state == "EXE", read.reason  # type: ignore[attr-defined]
    for args, message in ((["concentrator", "sync"], "name one concentrator, or --all"),
                          (["concentrator", "sync", DC, "--all"], "name one concentrator, or --all"),
                          (["concentrator", "sync", "DC9"], "no concentrator 'DC9'"),
                          (["concentrator", "clock", "sync", "DC9"], "no concentrator 'DC9'")):
        bad = runner.invoke(app, args, env=env)
        assert bad.exit_code == 2 and len(bad.stderr.splitlines()) == 1 and message in bad.stderr, bad.output


def test_the_dc_clock_settings() -> None:
    settings = load_settings({"HES_CONCENTRATOR_CLOCK_TOLERANCE": "30", "HES_CONCENTRATOR_CLOCK_EVERY": "0"})
    assert settings.dc_clock == ClockPolicy(30.0, timedelta(0))
    assert load_settings({}).dc_clock == ClockPolicy()
    assert load_settings({"HES_CONCENTRATOR_CLOCK_EVERY": "Off"}).dc_clock == ClockPolicy(every=None)
    for name, value in (("HES_CONCENTRATOR_CLOCK_TOLERANCE", "-5"), ("HES_CONCENTRATOR_CLOCK_TOLERANCE", "soon"),
                        ("HES_CONCENTRATOR_CLOCK_EVERY", "-1"), ("HES_CONCENTRATOR_CLOCK_EVERY", "nan")):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})
