"""`hes cim deliver|status|retry` through typer's runner and as a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from cim import outbox
from cim.legacy import CIM_MESSAGES, LEGACY_INTERVALS, legacy_counts, load_schemas
from cli.main import app
from hes.db import create_engine_for, session_factory, upgrade
from hes.db.models import Meter
from hes.db.readings import IntervalRow, meter_ids, store_intervals
from hes.db.stored import correlation, listeners
from hes.registry import Registry
from simulators.energy import interval_end, interval_index, profile_intervals
from simulators.fleet import FleetOptions
from tests.cim.conftest import XSD_DIR, assert_valid, legacy_url
from tests.fieldtime import interval_floor, quarter_hour_ahead
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.hes.test_commands import FieldThread

__all__ = ["database_url", "engine", "legacy_url", "master_key", "registry"]  # fixtures from tests/hes, tests/cim

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2024, 3, 1, tzinfo=UTC)
SEED = 7
A_PLUS_15 = "0.0.2.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"


@pytest.fixture
def hes_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def store_days(engine: Engine, days: int) -> None:
    """``days`` meter-days of two channels for one meter, with the outbox installed: one message per day."""
    with session_factory(engine)() as session:
        session.add(Meter(serial="CLI0001", host="127.0.0.1", port=4059, state="commissioned"))
        session.commit()
        meter = meter_ids(session, ["CLI0001"])["CLI0001"]
    rows = [IntervalRow(meter, obis, 2, DAY + timedelta(minutes=15 * (k + 1)), float(k), 0, 30)
            for obis in ("1.0.1.8.0.255", "1.0.2.8.0.255") for k in range(96 * days)]
    was_installed = outbox.on_stored in listeners()
    outbox.install()
    try:
        with correlation("R00000077"), engine.begin() as connection:
            store_intervals(connection, rows)
    finally:
        if not was_installed:
            outbox.uninstall()


@pytest.fixture
def env(database_url: str, legacy_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"HES_DATABASE_URL": database_url, "HES_LEGACY_DATABASE_URL": legacy_url,
              "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_status_deliver_retry_with_an_outage(env: dict[str, str], hes_engine: Engine, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store_days(hes_engine, 3)
    code, out, _ = run("cim", "status", "--json")
    status = json.loads(out)
    assert code == 0 and (status["pending"], status["delivered"], status["failed"], status["discarded"]) == (3, 0, 0, 0)
    assert status["oldest_pending"] is not None

    monkeypatch.setenv("HES_LEGACY_DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'legacy.db'}")
    code, out, err = run("cim", "deliver", "--json")
    assert code == 1 and json.loads(out)["failed"] == 3
    assert err.count("\n") == 1 and "3 message(s) failed" in err and "Traceback" not in err
    code, out, _ = run("cim", "status")
    assert code == 0 and "failed 3" in out and "next re-injection" in out and "last failure" in out

    monkeypatch.setenv("HES_LEGACY_DATABASE_URL", env["HES_LEGACY_DATABASE_URL"])
    code, out, _ = run("cim", "deliver", "--json")
    assert code == 0 and json.loads(out)["delivered"] == 0  # not yet: re-injection in an hour
    code, out, _ = run("cim", "retry", "--json")
    assert code == 0 and json.loads(out) == {"requeued": 3}
    code, out, _ = run("cim", "deliver")
    assert code == 0 and "delivered 3, failed 0, discarded 0" in out
    legacy = create_engine_for(env["HES_LEGACY_DATABASE_URL"])
    assert legacy_counts(legacy)["legacy_interval_readings"] == 3 * 192
    legacy.dispose()
    code, out, _ = run("cim", "status", "--json")
    assert json.loads(out)["delivered"] == 3 and json.loads(out)["oldest_pending"] is None


def test_bad_arguments_and_settings_exit_2_with_one_line(env: dict[str, str], hes_engine: Engine,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run("cim", "retry", "no-such-message")
    assert code == 2 and "not failed or discarded" in err
    monkeypatch.setenv("HES_CIM_REINJECT_AFTER", "soon")
    code, _, err = run("cim", "deliver")
    assert code == 2 and "HES_CIM_REINJECT_AFTER=soon" in err and err.count("\n") == 1
    monkeypatch.delenv("HES_CIM_REINJECT_AFTER")
    monkeypatch.setenv("HES_CIM_XSD_DIR", "/nonexistent")
    code, _, err = run("cim", "deliver")
    assert code == 2 and "cannot load the CIM schema" in err


def test_status_and_deliver_as_a_subprocess(env: dict[str, str], hes_engine: Engine) -> None:
    store_days(hes_engine, 1)
    environment = {**os.environ, **env}
    hes = str(ROOT / ".venv" / "bin" / "hes")
    done = subprocess.run([hes, "cim", "deliver", "--json"], capture_output=True, text=True, env=environment,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["delivered"] == 1
    done = subprocess.run([hes, "cim", "status", "--json"], capture_output=True, text=True, env=environment,
                          timeout=60, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["delivered"] == 1


def test_after_an_n2pload_pass_the_legacy_database_holds_every_interval_once(
        env: dict[str, str], registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's "done when": a simulated fleet, `hes n2pload`, `hes cim deliver`; again: nothing twice."""
    monkeypatch.setenv("HES_DATA_DIR", str(tmp_path / "data"))
    schemas = load_schemas(XSD_DIR)
    was_installed = outbox.on_stored in listeners()
    outbox.install()  # what cli.main does at start (another test may have removed it from this process)
    now = quarter_hour_ahead()  # the passes read the wall clock: the field stands at now, in the same interval
    options = FleetOptions(concentrators=1, meters_per_dc=2, p2p=1, seed=SEED, schedule=False, loss=0.0, epoch=now)
    try:
        with FieldThread(options, now=now) as running:
            registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"), who="test")
            code, _, err = run("n2pload", "--daily")
            assert code == 0, err
            code, out, err = run("cim", "deliver", "--json")
            assert code == 0, err
            first = json.loads(out)
            code, _, err = run("n2pload", "--daily")  # the DC has nothing newer: nothing stored, no message
            assert code == 0, err
            code, out, err = run("cim", "deliver", "--json")
            assert code == 0 and json.loads(out)["delivered"] == 0, err
    finally:
        if not was_installed:
            outbox.uninstall()
    assert first["delivered"] > 0 and first["failed"] == first["discarded"] == 0
    legacy = create_engine_for(env["HES_LEGACY_DATABASE_URL"])
    with legacy.connect() as connection:
        intervals = connection.execute(select(LEGACY_INTERVALS.c.meter, LEGACY_INTERVALS.c.interval_end,
                                              LEGACY_INTERVALS.c.value)
                                       .where(LEGACY_INTERVALS.c.reading_type == A_PLUS_15)).all()
        xml = list(connection.scalars(select(CIM_MESSAGES.c.xml)))
        correlations = set(connection.scalars(select(CIM_MESSAGES.c.correlation_id)))
    legacy.dispose()
    for message in xml:
        assert_valid(message.encode(), schemas)
    assert correlations and all(c.startswith("run:") for c in correlations)
    mark = interval_floor(now)
    start = interval_index(mark - timedelta(days=1))
    want = {(serial, interval_end(r.interval)): Decimal(r.a_plus).scaleb(-3)
            for serial in ("SIM000100000", "SIM000100001")
            for r in profile_intervals(SEED, serial, start, start + 95)}
    assert len(intervals) == len(want) == 2 * 96  # once each
    assert {(m, at): v for m, at, v in intervals} == want
