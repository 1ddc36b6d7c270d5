"""Pushed alarms to the real MQTT broker: once each, also across a broker stopped and started again; both databases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlalchemy import update

from hes.config import ConfigError
from hes.events.models import MqttMessage
from hes.events.mqtt import MAX_ATTEMPTS, MqttPublisher, broker_address, claim, mark_published, pending_count
from hes.events.outbox import OutboxMessage, queue
from hes.registry import Registry
from simulators.events import EventCode
from tests.events.helpers import CIPHERED_P2P, DC_METER, events_of, outbox, push_field, wait_for
from tests.events.test_push import run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """A subscriber to ``hes/#`` that keeps every message, reconnecting (persistent session) when the broker is back."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.identifier = f"hes-test-sub-{uuid.uuid4().hex[:8]}"
        self.messages: list[dict[str, Any]] = []
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.identifier, clean_session=False,
                                          timeout=5) as client:
                    await client.subscribe("hes/#", qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        self.messages.append(json.loads(bytes(message.payload)))
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.2)

    def count(self, message_id: str) -> int:
        return sum(1 for m in self.messages if m.get("message_id") == message_id)


@contextlib.asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_broker_address() -> None:
    assert broker_address("mqtt://127.0.0.1:1883") == ("127.0.0.1", 1883)
    assert broker_address("mqtt://broker.example") == ("broker.example", 1883)
    for bad in ("http://x", "mqtt://", "mqtt://h:port"):
        with pytest.raises(ConfigError):
            broker_address(bad)


def test_the_outbox_queues_a_message_once_and_claims_are_exclusive(registry: Registry) -> None:
    message = OutboxMessage("m1", "hes/p2p/X/alarm", "alarm", {"meter": "X"})
    with registry.engine.begin() as connection:
        assert queue(connection, [message, message]) == 1
        assert queue(connection, [message]) == 0
    first = claim(registry.engine)
    assert [m.topic for m in first] == ["hes/p2p/X/alarm"]
    assert json.loads(first[0].payload) == {"message_id": "m1", "kind": "alarm", "meter": "X"}
    assert claim(registry.engine) == []  # claimed: another publisher leaves it alone
    assert pending_count(registry.engine) == 1
    # A claim that lapsed (its publisher died) is taken again; one refused too often is set aside.
    assert [m.id for m in claim(registry.engine, lease=-1)] == [] and len(claim(registry.engine, lease=0)) == 0
    with registry.engine.begin() as connection:
        connection.execute(update(MqttMessage).values(claimed_until=None))
    assert [m.topic for m in claim(registry.engine, lease=-1)] == ["hes/p2p/X/alarm"]
    assert [m.topic for m in claim(registry.engine)] == ["hes/p2p/X/alarm"]
    with registry.engine.begin() as connection:
        connection.execute(update(MqttMessage).values(claimed_until=None, attempts=MAX_ATTEMPTS))
    assert claim(registry.engine) == [] and pending_count(registry.engine) == 1
    mark_published(registry.engine, first[0].id)
    assert pending_count(registry.engine) == 0


@pytest.mark.mqtt
def test_a_pushed_cover_open_reaches_the_topic_once(registry: Registry, tmp_path: Path,
                                                    mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker

    async def body() -> None:
        collector = Collector(host, port)
        async with push_field(registry, tmp_path) as f, background(collector.run()):
            await asyncio.wait_for(collector.subscribed.wait(), 10)
            publisher = MqttPublisher(registry.engine, host, port, identifier=f"hes-test-{uuid.uuid4().hex[:8]}",
                                      poll=0.05)
            async with background(publisher.run()):
                await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
                await f.sender.tamper(DC_METER, EventCode.METER_COVER_REMOVED)
                await wait_for(lambda: f.listener.accepted == 2, "both pushes were taken")
                queued = outbox(registry)
                assert len(queued) == 2
                await wait_for(lambda: all(collector.count(m.message_id) for m in queued), "both on the broker")
                await asyncio.sleep(0.5)  # time for a duplicate to show up, if one were sent
            assert [collector.count(m.message_id) for m in queued] == [1, 1]
            got = {m["meter"]: m for m in collector.messages if m["message_id"] in {q.message_id for q in queued}}
            assert sorted(got) == [CIPHERED_P2P, DC_METER]
            assert got[DC_METER]["concentrator"] == "DC0001"
            first = got[CIPHERED_P2P]
            assert first["meter"] == CIPHERED_P2P and first["name"] == "meter cover removed"
            assert first["criticality"] == "critical" and first["kind"] == "alarm"
            assert pending_count(registry.engine) == 0
            assert len(events_of(registry, CIPHERED_P2P)) == 1

    run(body)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Mosquitto of this test's own (free port, persistence on), so stopping it disturbs no one."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    store = tmp_path / "mosquitto"
    store.mkdir()
    config = tmp_path / "mosquitto.conf"
    # Started as root, Mosquitto drops to its own user, which cannot write pytest's private folder.
    user = "user root\n" if os.geteuid() == 0 else ""
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                      f"persistence_location {store}/\n{user}")
    yield port, config


def start_broker(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_broker(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


async def broker_up(port: int) -> None:
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)


@pytest.mark.mqtt
def test_alarms_queued_while_the_broker_is_down_arrive_once_when_it_is_back(
        registry: Registry, tmp_path: Path, mqtt_broker: tuple[str, int], own_broker: tuple[int, Path]) -> None:
    port, config = own_broker
    process = start_broker(config)

    async def body() -> None:
        nonlocal process
        await broker_up(port)
        collector = Collector("127.0.0.1", port)
        publisher = MqttPublisher(registry.engine, "127.0.0.1", port, identifier=f"hes-test-{uuid.uuid4().hex[:8]}",
                                  poll=0.05, publish_timeout=2.0)
        async with push_field(registry, tmp_path) as f, background(collector.run()), background(publisher.run()):
            await asyncio.wait_for(collector.subscribed.wait(), 10)
            await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: len(collector.messages) == 1, "the first alarm arrived")

            await asyncio.to_thread(stop_broker, process)
            # Collection goes on while the broker is down: pushes are taken and stored, alarms queued.
            await f.sender.tamper(DC_METER, EventCode.TERMINAL_COVER_REMOVED)
            await f.sender.push_alarm(CIPHERED_P2P, 1 << 13)
            await wait_for(lambda: f.listener.accepted == 3, "pushes taken while the broker is down")
            assert len(events_of(registry, DC_METER)) == 1 and len(events_of(registry, CIPHERED_P2P)) == 2
            await asyncio.sleep(1.0)  # the publisher fails to reach the broker meanwhile, and keeps trying
            assert pending_count(registry.engine) == 2

            process = await asyncio.to_thread(start_broker, config)
            await broker_up(port)
            await wait_for(lambda: pending_count(registry.engine) == 0, "the queue drained", limit=40)
            queued = outbox(registry)
            await wait_for(lambda: all(collector.count(m.message_id) for m in queued), "all alarms arrived",
                           limit=20)
            await asyncio.sleep(0.5)
            assert [collector.count(m.message_id) for m in queued] == [1, 1, 1]
            assert publisher.connections >= 2

    try:
        run(body, limit=90)
    finally:
        stop_broker(process)
