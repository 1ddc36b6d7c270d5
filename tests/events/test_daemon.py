"""`hes run` as a real process: a cover-open pushed by a simulated meter reaches the events table and the broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hes.registry import Registry
from simulators.clock import FieldClock
from simulators.events import EventCode
from simulators.fleet import Fleet
from simulators.push import PushSender
from tests.events.helpers import CIPHERED_P2P, events_of, field_options
from tests.events.test_mqtt import Collector, background, free_port
from tests.events.test_push import run
from tests.hes.test_commands import FIELD_NOW


@pytest.mark.mqtt
def test_hes_run_takes_a_pushed_cover_open_to_the_events_table_and_the_topic(
        registry: Registry, tmp_path: Path, database_url: str, mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    push_port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HES_")},
           "HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
           "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"),
           "HES_PUSH_LISTEN": f"127.0.0.1:{push_port}", "HES_MQTT_URL": f"mqtt://{host}:{port}"}
    hes = str(Path(sys.executable).with_name("hes"))

    async def body() -> None:
        fleet = Fleet(field_options(), clock=FieldClock(FIELD_NOW, 0.0))
        async with fleet:
            fleet.write_manifest(tmp_path / "fleet.json")
            await asyncio.to_thread(registry.import_manifest, tmp_path / "fleet.json", who="test")
            daemon = subprocess.Popen([hes, "run", "--only", "push-listener", "--only", "mqtt", "--worker-id",
                                       f"test-{uuid.uuid4().hex[:6]}"], env=env, stderr=subprocess.PIPE, text=True)
            collector = Collector(host, port)
            try:
                async with background(collector.run()):
                    await asyncio.wait_for(collector.subscribed.wait(), 10)
                    sender = PushSender(fleet, "127.0.0.1", push_port)
                    sender.attach()
                    async with asyncio.timeout(20):
                        while True:  # the daemon is listening once a push is delivered
                            event = await sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
                            if sender.sent:
                                break
                            await asyncio.sleep(0.2)
                        while not any(m.get("meter") == CIPHERED_P2P for m in collector.messages):
                            await asyncio.sleep(0.05)
                    got = [m for m in collector.messages if m.get("meter") == CIPHERED_P2P]
                    assert got[0]["name"] == "meter cover removed" and got[0]["criticality"] == "critical"
                    stored = events_of(registry, CIPHERED_P2P)
                    assert [(e.event_code, e.event_time) for e in stored] == [(44, event.when)]
            finally:
                daemon.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.to_thread(daemon.communicate, timeout=20)
        assert daemon.returncode == 0, stderr
        assert "components: push-listener, mqtt" in stderr and "hes run: stopped" in stderr

    run(body, limit=60)
