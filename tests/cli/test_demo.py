"""``hes demo``: the in-memory session and the simulated field through the head-end, every value checked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.demo import parts as demo_module
from cli.main import app
from hes.db import create_engine_for
from hes.db.models import AuditEntry, IntervalValue, Order, RegisterReading
from protocols.axdr import Data, encode_data
from simulators import energy
from tests.fieldtime import EPOCH, profile_state, utc_midnight
from tests.hes.conftest import database_url

__all__ = ["database_url"]  # the SQLite / PostgreSQL fixture of tests/hes

runner = CliRunner()
#: The field instant of the demo runs that pin one (2026-11-20T10:07:30Z by default).
FIELD_NOW = EPOCH + timedelta(days=994, hours=10, minutes=7, seconds=30)


def test_demo_session_reads_and_checks_everything() -> None:
    report = demo_module.run_session()
    assert [s.result for s in report.steps] == ["EXE"] * 8
    assert report.checked == 4 and report.mismatches == []
    assert len(report.rows) == 96
    # the rows are the meter's own function, interval by interval
    expected = report.rows[0].values[1]
    assert expected == sum(demo_module.interval_energy("DEMO00000001", i)[0] for i in range(97))
    # invocation counters strictly increase and were handed out before use
    used = report.invocation_counters_used
    assert used == sorted(set(used)) and used[0] == 1


def counts(url: str) -> dict[str, int]:
    engine = create_engine_for(url)
    try:
        with Session(engine) as db:
            return {
                "orders": db.scalar(select(func.count()).select_from(Order)) or 0,
                "registers": db.scalar(select(func.count()).select_from(RegisterReading)) or 0,
                "intervals": db.scalar(select(func.count()).select_from(IntervalValue)) or 0,
                "audit": db.scalar(select(func.count()).select_from(AuditEntry)) or 0,
                "pending": db.scalar(select(func.count()).where(Order.state == "PENDING")) or 0,
            }
    finally:
        engine.dispose()


def test_the_field_demo_checks_everything_and_runs_twice(database_url: str, tmp_path: Path) -> None:
    # Both runs at the same field instant: a second run then reads exactly the same values.
    field_now = FIELD_NOW
    report = asyncio.run(demo_module.run_field(tmp_path / "data", database_url=database_url, field_now=field_now))
    assert report.ok, report.mismatches
    assert (report.concentrators, report.meters) == (2, 8)
    commands = [row.command for row in report.rows]
    assert commands.count("read registers") == 8 and commands.count("read profile") == 2
    assert commands.count("disconnect") == 2 and commands.count("reconnect") == 2 and "clock sync" in commands
    # 8 meters x 4 registers, 2 x 96 intervals x A+/A-, every value compared with simulators.energy
    assert report.checked >= 8 * 4 + 2 + 4 * 2 + 3
    first = counts(database_url)
    assert first["orders"] == len(report.rows) and first["pending"] == 0
    assert first["intervals"] == 2 * 96 * 2

    again = asyncio.run(demo_module.run_field(tmp_path / "data", database_url=database_url, field_now=field_now))
    assert again.ok, again.mismatches
    second = counts(database_url)
    # New orders, but no reading stored twice.
    assert second["orders"] == 2 * first["orders"] and second["intervals"] == first["intervals"]
    assert second["registers"] == first["registers"]


def test_demo_command_prints_all_three_parts(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "Read load profile" in result.stdout
    assert "0 mismatches" in result.stdout
    assert "field: " in result.stdout and "against the simulator, 0 mismatches" in result.stdout
    assert (tmp_path / "d" / "hes.db").exists() and (tmp_path / "d" / "fleet.json").exists()
    # Part 3: N2PLoad, completeness and CIM, in databases of its own beside the field's.
    assert "a second pass stored 0 more" in result.stdout
    assert "8/8 meters complete, 768/768 intervals (100.0%)" in result.stdout
    assert "in both databases, 0 mismatches" in result.stdout
    assert (tmp_path / "d" / "collection" / "hes-legacy.db").exists()


def test_collection_part_stores_and_delivers_every_interval_once(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from cim.legacy import LEGACY_INTERVALS
    from cli.demo.collection import run_collection

    field_now = FIELD_NOW
    report = asyncio.run(run_collection(tmp_path / "c", field_now=field_now))
    assert report.mismatches == []
    # 8 meters x 2 days x 96 intervals x A+/A-, in the head-end and, once each, in the legacy database.
    assert report.intervals_stored == report.legacy_intervals == 8 * 2 * 96 * 2
    assert report.checked == 8 * 96 * 2 and report.second_pass_new == 0
    assert report.completeness["intervals_share"] == 1.0 and report.completeness["below_threshold"] == []
    again = asyncio.run(run_collection(tmp_path / "c", field_now=field_now))
    assert again.mismatches == [] and again.second_pass_new == 0
    legacy = create_engine(f"sqlite:///{tmp_path / 'c' / 'hes-legacy.db'}")
    with legacy.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(LEGACY_INTERVALS)) == report.legacy_intervals
    legacy.dispose()


def test_collection_part_on_a_field_ahead_of_the_wall_clock(tmp_path: Path) -> None:
    """The plans stamp their items in field time and the worker judges them due by the same clock: a field
    instant after today (a pinned one, moved by HES_TEST_EPOCH) is collected, not left pending."""
    from cli.demo.collection import SEED, run_collection

    ahead = utc_midnight(datetime.now(UTC)) + timedelta(days=30, hours=10, minutes=7)
    report = asyncio.run(run_collection(tmp_path / "c", field_now=ahead))
    assert report.mismatches == [] and report.day == (utc_midnight(ahead) - timedelta(days=1)).date()
    assert report.intervals_stored == report.legacy_intervals == 8 * 2 * 96 * 2
    # The two days since the meters were installed (WARN where the simulator flags a power cut), their daily values.
    first = energy.interval_index(utc_midnight(ahead) - timedelta(days=2))
    assert sorted((serial, command, state) for serial, command, state, _ in report.items) == sorted(
        (serial, command, profile_state(SEED, serial, first, first + 191) if command == "profile" else "EXE")
        for serial in {serial for serial, _, _, _ in report.items} for command in ("profile", "daily"))
    assert len(report.items) == 16


def test_a_collected_value_that_disagrees_with_the_simulator_is_caught(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cli.demo.collection import run_collection

    real = energy.profile_intervals

    def shifted(seed: energy.Seed, serial: str, first: int, last: int,
                windows: object = ()) -> object:
        for row in real(seed, serial, first, last, windows):  # type: ignore[arg-type]
            yield row._replace(a_plus=row.a_plus + 1) if serial == "SIM000100001" and row.interval == last else row

    monkeypatch.setattr(energy, "profile_intervals", shifted)
    report = asyncio.run(run_collection(tmp_path / "c", field_now=utc_midnight(FIELD_NOW)))
    assert any("SIM000100001 1.0.1.8.0.255" in line for line in report.mismatches)


def test_a_wrong_value_from_the_meter_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    original = demo_module.DemoMeter.attribute

    def lying(self: demo_module.DemoMeter, request: object) -> object:
        value = original(self, request)  # type: ignore[arg-type]
        if getattr(request, "descriptor").instance_id == demo_module.A_PLUS:  # noqa: B009
            return encode_data(Data.double_long_unsigned(1))
        return value

    monkeypatch.setattr(demo_module.DemoMeter, "attribute", lying)
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 1
    assert "A+: read 1" in result.stderr


def test_a_field_value_that_disagrees_with_the_simulator_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = energy.registers_at

    def off_by_one(seed: energy.Seed, serial: str, when: object, windows: object = ()) -> energy.Registers:
        value = real(seed, serial, when, windows)  # type: ignore[arg-type]
        return value._replace(a_minus=value.a_minus + 1) if serial == "P2P000000001" else value

    monkeypatch.setattr(energy, "registers_at", off_by_one)
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 1
    assert "P2P000000001 register 1.0.2.8.0.255" in result.stderr


def test_demo_as_a_real_process(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "demo"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "0 mismatches" in done.stdout and "against the simulator, 0 mismatches" in done.stdout
    assert list(tmp_path.iterdir()) == []  # the temporary data folder is gone; nothing left in the working folder
