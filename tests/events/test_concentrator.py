"""`hes concentrator events`: the DC's own event log read, named, stored once, queued for MQTT; both databases."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.main import app
from hes.events.concentrator import read_concentrator_events
from hes.events.models import ConcentratorEvent
from hes.registry import Registry
from tests.events.helpers import outbox
from tests.hes.test_commands import FAST, FIELD_NOW, FieldThread, small_field

runner = CliRunner()


def test_the_dc_event_log_is_read_and_stored_once(registry: Registry, tmp_path: Path, database_url: str) -> None:
    with FieldThread(small_field()) as field:
        registry.import_manifest(field.write_manifest(tmp_path / "fleet.json"))
        dc = field.fleet.concentrators["DC0001"]
        # A meter the DC can no longer reach: the DC logs it on its next read cycle.
        field.fleet.set_unreachable("SIM000100000", FIELD_NOW - timedelta(hours=1), timedelta(days=1))
        assert field.call(dc.read_cycle()) == 2
        start, end = FIELD_NOW - timedelta(hours=1), FIELD_NOW + timedelta(hours=1)
        result = asyncio.run(read_concentrator_events(registry, "DC0001", start=start, end=end,
                                                      requested_by="tester", timeouts=FAST))
        assert [(e.code, e.name, e.criticality.label) for e in result.events] == [
            (2, "power up", "warning"), (200, "meter unreachable", "warning")]
        assert result.stored == 2

        env = {"HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
               "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "HES_TOKEN": None}
        again = runner.invoke(app, ["concentrator", "events", "DC0001", "--from", start.isoformat(),
                                    "--to", end.isoformat(), "--json"], env=env)
    assert again.exit_code == 0, again.output
    body = json.loads(again.stdout)
    assert body["stored"] == 0 and [e["code"] for e in body["events"]] == [2, 200]
    with Session(registry.engine) as db:
        rows = list(db.scalars(select(ConcentratorEvent).order_by(ConcentratorEvent.event_code)))
    assert [(r.concentrator_id, r.event_code, r.event_time) for r in rows] == [
        ("DC0001", 2, FIELD_NOW), ("DC0001", 200, FIELD_NOW)]
    assert [m.topic for m in outbox(registry)] == ["hes/DC0001/concentrator/event"] * 2

    listed = runner.invoke(app, ["events", "list", "--concentrator", "DC0001", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    body = json.loads(listed.stdout)
    assert sorted((e["device"], e["kind"], e["code"], e["name"], e["criticality"]) for e in body["events"]) == [
        ("DC0001", "concentrator", 2, "power up", "warning"),
        ("DC0001", "concentrator", 200, "meter unreachable", "warning")]
    assert body["mqtt_pending"] == 2
    none = runner.invoke(app, ["events", "list", "--min-criticality", "alarm", "--since", "7d"], env=env)
    assert none.exit_code == 0 and none.stdout.splitlines()[0] == "no events"
    bad = runner.invoke(app, ["events", "list", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.stderr


def test_an_unknown_concentrator_is_one_line(registry: Registry, tmp_path: Path, database_url: str) -> None:
    env = {"HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
           "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "HES_TOKEN": None}
    result = runner.invoke(app, ["concentrator", "events", "DC9999"], env=env)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "DC9999" in result.stderr
