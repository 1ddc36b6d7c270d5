"""`hes export cim`: the stored data of a range as schema-valid CIM XML files and a CSV; bad arguments exit 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from cim.legacy import Schemas, parse_message
from cli.main import app
from hes.db import create_engine_for, session_factory, upgrade
from hes.db.models import Meter
from hes.db.readings import (
    EventRow,
    IntervalRow,
    RegisterRow,
    meter_ids,
    store_events,
    store_intervals,
    store_registers,
)
from tests.cim.conftest import assert_valid, schemas
from tests.hes.conftest import database_url

__all__ = ["database_url", "schemas"]

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def stored(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Two meters with two days of profile, a daily closure and an event each; the environment pointing at them."""
    engine: Engine = create_engine_for(database_url)
    upgrade(engine)
    with session_factory(engine)() as session:
        for n, serial in enumerate(("EXP0001", "EXP0002")):
            session.add(Meter(serial=serial, host="127.0.0.1", port=4059 + n, state="commissioned"))
        session.commit()
        ids = meter_ids(session, ["EXP0001", "EXP0002"])
    with engine.begin() as connection:
        for meter in ids.values():
            store_intervals(connection, [
                IntervalRow(meter, obis, 2, DAY + timedelta(minutes=15 * (k + 1)), float(10_000 + k * 7 + n), 0, 30)
                for n, obis in enumerate(("1.0.1.8.0.255", "1.0.2.8.0.255")) for k in range(192)
            ])
            store_registers(connection, [RegisterRow(meter, "1.0.1.8.0.255", DAY + timedelta(hours=23), 12_345.0,
                                                     0, 30, -60)])
            store_events(connection, [EventRow(meter, "0.0.99.98.0.255", 1, DAY + timedelta(hours=4), "power down")])
    engine.dispose()
    env = {"HES_DATABASE_URL": database_url, "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_export_writes_valid_xml_and_a_csv_of_the_stored_values(stored: dict[str, str], tmp_path: Path,
                                                                 schemas: Schemas) -> None:
    out = tmp_path / "export"
    code, text, err = run("export", "cim", "--from", "2024-03-01T00:00Z", "--to", "2024-03-02T00:00Z",
                          "--out", str(out), "--json")
    assert code == 0, err
    result = json.loads(text)
    # One meter-day of readings and one of events per meter (the second day is outside the range).
    assert result["messages"] == 4 and result["values"] == 2 * (192 + 1 + 1)
    for name in result["files"]:
        xml = Path(name).read_bytes()
        assert_valid(xml, schemas)
        assert parse_message(xml).correlation_id == "export:2024-03-01T00:00:00Z/2024-03-02T00:00:00Z"
    with (out / "readings.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result["values"]
    intervals = {(r["meter"], r["time"]): Decimal(r["value"]) for r in rows
                 if r["kind"] == "interval" and r["code"].startswith("0.0.2.1.1.")}
    assert intervals[("EXP0001", "2024-03-01T00:15:00Z")] == Decimal("10.000")
    assert intervals[("EXP0002", "2024-03-02T00:00:00Z")] == Decimal(10_000 + 95 * 7).scaleb(-3)
    assert {r["value"] for r in rows if r["kind"] == "reading"} == {"12.345"}
    assert {r["code"] for r in rows if r["kind"] == "event"} == {"3.26.0.85"}
    # The same range again gives the same MessageIDs.
    code, text, _ = run("export", "cim", "--from", "2024-03-01T00:00Z", "--to", "2024-03-02T00:00Z",
                        "--out", str(tmp_path / "again"), "--json")
    assert code == 0 and json.loads(text)["message_ids"] == result["message_ids"]


def test_export_of_some_meters(stored: dict[str, str], tmp_path: Path) -> None:
    code, text, _ = run("export", "cim", "--from", "2024-03-01T00:00Z", "--to", "2024-03-03T00:00Z",
                        "--out", str(tmp_path / "one"), "--meters", "EXP0002", "--json")
    assert code == 0, (text, _)
    assert json.loads(text)["messages"] == 3 and json.loads(text)["values"] == 384 + 2
    listing = tmp_path / "meters.txt"
    listing.write_text("# the second meter\nEXP0002\n")
    code, text, _ = run("export", "cim", "--from", "2024-03-01T00:00Z", "--to", "2024-03-03T00:00Z",
                        "--out", str(tmp_path / "two"), "--meters-file", str(listing))
    assert code == 0 and "wrote 3 message(s) with 386 value(s)" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "yesterday", "--to", "2024-03-02T00:00Z"], "not an ISO 8601 time"),
    (["--from", "2024-03-01T00:00", "--to", "2024-03-02T00:00Z"], "needs a time zone"),
    (["--from", "2024-03-02T00:00Z", "--to", "2024-03-01T00:00Z"], "the range is empty"),
    (["--from", "2024-03-01T00:00Z", "--to", "2024-03-02T00:00Z", "--meters", "NOPE"], "unknown meter: NOPE"),
    (["--from", "2024-03-01T00:00Z", "--to", "2024-03-02T00:00Z", "--meters", "A", "--meters-file", "f"],
     "not both"),
])
def test_bad_arguments_exit_2_with_one_line(stored: dict[str, str], tmp_path: Path, args: list[str],
                                            message: str) -> None:
    code, _, err = run("export", "cim", *args, "--out", str(tmp_path / "x"))
    assert code == 2 and message in err and err.count("\n") == 1


def test_an_output_that_is_a_file_is_refused(stored: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    code, _, err = run("export", "cim", "--from", "2024-03-01T00:00Z", "--to", "2024-03-02T00:00Z", "--out",
                       str(target))
    assert code == 2 and "is a file" in err


def test_export_as_a_subprocess(stored: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "hes"), "export", "cim", "--from", "2024-03-01T00:00Z", "--to",
         "2024-03-02T00:00Z", "--out", str(tmp_path / "sub"), "--json"],
        capture_output=True, text=True, env={**os.environ, **stored}, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["messages"] == 4 and (tmp_path / "sub" / "readings.csv").is_file()
