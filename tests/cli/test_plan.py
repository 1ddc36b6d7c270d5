"""`hes plan ...`: create, list, show, run, tag, discover, through typer's runner and as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from hes.devicetypes import SHIPPED
from hes.registry import Registry
from simulators.energy import interval_index
from simulators.fleet import FleetOptions
from tests.fieldtime import profile_state, quarter_hour_ahead
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.hes.test_commands import FieldThread

__all__ = ["database_url", "engine", "master_key", "registry"]  # the database fixtures, on both databases

ROOT = Path(__file__).resolve().parents[2]
SEED = 7
DC_METER, DC_OTHER, P2P = "SIM000100000", "SIM000100001", "P2P000000000"


@pytest.fixture
def hes_env(database_url: str, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the CLI reads: the test database and the registry's master key."""
    env = {"HES_DATABASE_URL": database_url, "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"),
           "HES_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def field(registry: Registry, tmp_path: Path) -> Iterator[FieldThread]:
    """A small field frozen at the present instant (the CLI's clock agrees with the meters'), registered."""
    now = quarter_hour_ahead()
    options = FleetOptions(concentrators=1, meters_per_dc=2, p2p=1, seed=SEED, schedule=False, loss=0.0, epoch=now)
    with FieldThread(options, now=now) as running:
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        yield running


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_create_list_run_and_show_a_plan(hes_env: dict[str, str], field: FieldThread, tmp_path: Path) -> None:
    serials = tmp_path / "meters.txt"
    serials.write_text(f"# the pilot\n{DC_METER}\n\n{P2P}  # direct\n{DC_METER}\n")
    code, out, err = invoke(["plan", "create", "pilot", "--meters", str(serials), "--commands", "registers,clock",
                             "--retries", "1", "--retry-delay", "1s", "--priority", "5", "--every", "1h"])
    assert code == 0, err
    assert out.strip() == "plan pilot created: list of 2 meters; registers,clock; interval 1h"

    code, out, err = invoke(["plan", "list", "--json"])
    assert code == 0, err
    listed = {p["name"]: p for p in json.loads(out)}
    assert set(listed) == {"pilot", "default-daily", "n2pload"}
    assert listed["pilot"]["selection"] == {"kind": "list", "value": [DC_METER, P2P]}
    assert listed["pilot"]["retries"] == 1 and listed["pilot"]["retry_delay_s"] == 1.0
    assert listed["default-daily"]["builtin"] and listed["default-daily"]["trigger"]["kind"] == "cron"

    code, out, err = invoke(["plan", "show", "pilot"])
    assert code == 0 and out.splitlines()[-1] == "no run yet"

    code, out, err = invoke(["plan", "run", "pilot"])
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("run 1 of plan pilot (manual, run:1): done; 4 items, 2 meters:")
    # one line per meter and command, a meter's commands in order
    assert [line.split()[:3] for line in lines[1:]] == [
        [DC_METER, "registers", "EXE"], [DC_METER, "clock", "EXE"], [P2P, "registers", "EXE"], [P2P, "clock", "EXE"]]

    code, out, err = invoke(["plan", "show", "pilot", "--json"])
    assert code == 0, err
    shown = json.loads(out)
    assert shown["plan"]["name"] == "pilot" and shown["run"]["run"] == 1
    assert shown["run"]["summary"]["EXE"] == 4 and shown["run"]["summary"]["stored"] == 10  # 5 registers each
    assert {(i["serial"], i["command"], i["state"]) for i in shown["run"]["items"]} == {
        (s, c, "EXE") for s in (DC_METER, P2P) for c in ("registers", "clock")}
    code, out, err = invoke(["plan", "show", "pilot", "--run", "1"])
    assert code == 0 and out.splitlines()[1].startswith("recent runs: 1 (manual, done, "), out
    assert out.splitlines()[2] == lines[0]
    assert invoke(["plan", "show", "n2pload", "--run", "1"])[0] == 2  # a run of another plan


def test_a_run_with_failures_exits_1_and_says_why(hes_env: dict[str, str], field: FieldThread,
                                                  registry: Registry) -> None:
    registry.decommission(DC_OTHER)
    field.fleet.set_outage("DC0001")
    assert invoke(["plan", "create", "dc", "--concentrator", "DC0001", "--commands", "clock"])[0] == 0
    code, out, err = invoke(["plan", "run", "dc", "--json", "--timeout", "2"])
    assert code == 1
    data = json.loads(out)
    assert data["state"] == "done" and data["summary"]["FAIL"] == 1
    (item,) = data["items"]
    assert item["serial"] == DC_METER and item["reason"].startswith("concentrator DC0001 is unreachable")
    (line,) = err.splitlines()
    assert line.startswith("hes plan: run 1 of plan dc") and "FAIL 1" in line


def test_tags_select_meters(hes_env: dict[str, str], field: FieldThread) -> None:
    code, out, err = invoke(["plan", "tag", "feeder-7", DC_METER, P2P])
    assert code == 0 and out.strip() == "tag feeder-7: 2 meters tagged", err
    assert invoke(["plan", "tag", "feeder-7", P2P, "--remove"])[1].strip() == "tag feeder-7: 1 meters untagged"
    assert invoke(["plan", "create", "tagged", "--tag", "feeder-7", "--commands", "clock"])[0] == 0
    code, out, err = invoke(["plan", "run", "tagged", "--json"])
    assert code == 0, err
    assert [i["serial"] for i in json.loads(out)["items"]] == [DC_METER]


def test_discovery_and_device_types_drive_the_support_check(hes_env: dict[str, str], field: FieldThread,
                                                           registry: Registry, tmp_path: Path) -> None:
    code, out, err = invoke(["plan", "discover", P2P, "NOPE"])
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{P2P}: ") and lines[0].endswith(" objects")
    assert lines[1] == "NOPE: FAIL: meter NOPE is not registered (a retry will not help)"
    registry.add_meter("ACME0001", host="127.0.0.1", port=1, make="Acme", model="AM-1")
    # A make without event logs, added as a device type file (no code).
    document = json.loads((SHIPPED / "idis-default.json").read_text())
    document.update(name="acme-am1", match={"make": "Acme", "model": "AM-1"})
    document["objects"]["event_logs"] = []
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(document))
    code, out, err = invoke(["devicetype", "add", str(path)])
    assert code == 0 and out.strip().startswith("device type acme-am1 added"), err
    listed = {t["name"]: t for t in json.loads(invoke(["devicetype", "list", "--json"])[1])}
    assert listed["acme-am1"]["source"] == "added" and listed["acme-am1"]["event_logs"] == []
    serials = Path(hes_env["HES_DATA_DIR"]) / "list.txt"
    serials.write_text(f"{P2P}\nACME0001\n")
    assert invoke(["plan", "create", "mixed", "--meters", str(serials), "--commands", "profile,events"])[0] == 0
    code, out, err = invoke(["plan", "run", "mixed", "--json", "--no-wait", "--timeout", "1"])
    items = {(i["serial"], i["command"]): i for i in json.loads(out)["items"]}
    # the discovered meter has both objects; the Acme type has a profile but no event log
    first = interval_index(field.fleet.clock.now() - timedelta(days=1))  # a first pass: the last day
    assert items[(P2P, "profile")]["state"] == profile_state(SEED, P2P, first, first + 95)
    assert items[(P2P, "events")]["state"] in ("EXE", "WARN")
    assert items[("ACME0001", "events")]["state"] == "UNSUPPORTED"
    assert "events objects in device type acme-am1" in items[("ACME0001", "events")]["reason"]
    assert items[("ACME0001", "profile")]["state"] != "UNSUPPORTED"  # supported: run (and the port is closed)


_OBJECTS = ('"objects": {"registers": [{"obis": "1.0.1.8.0.255", "name": "a"}], '
            '"load_profile": {"obis": "1.0.99.1.0.255"}}')


@pytest.mark.parametrize(("content", "message"), [
    ("{", "not JSON"),
    ('{"format": "hes-devicetype/9"}', "format is 'hes-devicetype/9'"),
    ('{"format": "hes-devicetype/1", "name": "x y"}', "name 'x y'"),
    ('{"format": "hes-devicetype/1", "name": "x", "objects": {"registers": [{"obis": "1.0.1.8", "name": "a"}]}}',
     "objects.registers[0].obis: '1.0.1.8' is not an OBIS code"),
    ('{"format": "hes-devicetype/1", "name": "x", "objects": {"registers": [{"obis": "1.0.1.8.0.255", "name": "a"}],'
     ' "load_profile": {"obis": "1.0.99.1.0.255", "capture": ["3/1.0.1.8.0.255/2"]}}}', "no clock"),
    ('{"format": "hes-devicetype/1", "name": "x", "referencing": "short", "objects": {}}', "only logical-name"),
    ('{"format": "hes-devicetype/1", "name": "x", "security": {"ciphering": "dedicated"}, ' + _OBJECTS + '}',
     "security.ciphering must be service-specific or general-glo, not 'dedicated'"),
    ('{"format": "hes-devicetype/1", "name": "x", "push": {"accept_encryption_only": "yes"}, ' + _OBJECTS + '}',
     "push.accept_encryption_only must be true or false"),
])
def test_a_bad_device_type_file_is_one_line_naming_the_field(hes_env: dict[str, str], tmp_path: Path, content: str,
                                                             message: str) -> None:
    path = tmp_path / "type.json"
    path.write_text(content)
    for command in ("validate", "add"):
        code, _out, err = invoke(["devicetype", command, str(path)])
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (command, err)
    assert invoke(["devicetype", "show", "x"])[0] == 2


@pytest.mark.parametrize(("args", "message"), [
    (["create", "p", "--commands", "clock"], "exactly one of --meters FILE, --concentrator ID, --tag T, --all"),
    (["create", "p", "--all", "--tag", "t", "--commands", "clock"], "exactly one of"),
    (["create", "p", "--all", "--commands", "voltage"], "unknown command voltage"),
    (["create", "p", "--all", "--commands", "clock", "--window", "25:00-01:00"], "hours 00-23"),
    (["create", "p", "--all", "--commands", "clock", "--every", "soon"], "--every 'soon' is not a duration"),
    (["create", "p", "--all", "--commands", "clock", "--cron", "* *"], "--cron '* *'"),
    (["create", "p", "--all", "--commands", "clock", "--every", "1h", "--at", "2030-01-01T00:00Z"], "at most one"),
    (["create", "p", "--all", "--commands", "clock", "--from", "yesterday"], "--from 'yesterday' is not"),
    (["create", "p", "--all", "--commands", "clock", "--at", "2020-01-01T00:00Z"], "is in the past"),
    (["create", "p", "--meters", "/nonexistent/list", "--commands", "clock"], "--meters /nonexistent/list: cannot"),
    (["create", "p", "--concentrator", "DC9", "--commands", "clock"], "no concentrator 'DC9'"),
    (["create", "default-daily", "--all", "--commands", "clock"], "exists already"),
    (["show", "nope"], "no plan 'nope'"),
    (["run", "nope"], "no plan 'nope'"),
    (["run", "default-daily", "--concurrency", "0"], "--concurrency 0"),
])
def test_bad_arguments_exit_2_with_one_line(hes_env: dict[str, str], args: list[str], message: str) -> None:
    code, out, err = invoke(["plan", *args])
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("hes plan: ") and message in line, line


def test_plan_as_a_subprocess(hes_env: dict[str, str], field: FieldThread) -> None:
    env = {**os.environ, **hes_env}
    hes = [sys.executable, "-m", "cli"]
    created = subprocess.run([*hes, "plan", "create", "nightly", "--all", "--commands", "daily,events",
                              "--from", "-2d", "--window", "22:00-04:00", "--cron", "0 23 * * *"],
                             capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    listed = subprocess.run([*hes, "plan", "list"], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    assert ("nightly: all commissioned meters; daily,events; cron 0 23 * * *; retries 0 every 300 s; priority 0, "
            "window 22:00-04:00") in listed.stdout.splitlines()
    bad = subprocess.run([*hes, "plan", "run", "missing"], capture_output=True, text=True, timeout=60, env=env,
                         cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.strip() == "hes plan: no plan 'missing' (hes plan list shows them)"


def test_a_plan_runs_on_schedule_in_hes_run(hes_env: dict[str, str], field: FieldThread) -> None:
    env = {**os.environ, **hes_env, "HES_SCHEDULER_POLL": "0.2"}
    created = subprocess.run([sys.executable, "-m", "cli", "plan", "create", "often", "--all", "--commands",
                              "clock", "--every", "2s"], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    daemon = subprocess.Popen([sys.executable, "-m", "cli", "run", "--only", "scheduler"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            shown = subprocess.run([sys.executable, "-m", "cli", "plan", "show", "often", "--json"],
                                   capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
            run = json.loads(shown.stdout)["run"]
            if run is not None and run["state"] == "done":
                break
            assert daemon.poll() is None and time.monotonic() < deadline, (shown.stdout, daemon.poll())
            time.sleep(0.5)
            # The clock commands compare the meters' clocks with the wall clock (60 s tolerance): the frozen
            # field is kept at the wall clock's second, or a loaded machine's slow minute makes one WARN.
            clock = field.fleet.clock
            clock.jump(datetime.now(UTC).replace(microsecond=0) - clock.now())
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    # every meter's clock, read on schedule (a run fires every 2 s: runs may overlap, each meter's reads in turn)
    shown = subprocess.run([sys.executable, "-m", "cli", "plan", "show", "often", "--run", str(run["run"]), "--json"],
                           capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert run["trigger"] == "schedule" and run["summary"]["EXE"] == 3, (run["summary"], shown.stdout, err[-2000:])


def test_an_unreachable_database_exits_1_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HES_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/hes")
    monkeypatch.setenv("HES_DATA_DIR", str(tmp_path / "data"))
    for args in (["plan", "list"], ["n2pload"]):
        code, out, err = invoke(args)
        assert code == 1 and out == ""
        (line,) = err.splitlines()
        assert "unavailable" in line and line.startswith(("hes plan: database", "hes n2pload: database")), line
