"""The real services the suite relies on answer: PostgreSQL and the MQTT broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest


@pytest.mark.postgres
def test_postgres_answers(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, connect_timeout=5) as conn:
        row = conn.execute("SELECT 1 + 1").fetchone()
    assert row == (2,)


@pytest.mark.mqtt
def test_mqtt_broker_delivers_a_qos1_message(mqtt_broker: tuple[str, int]) -> None:
    import aiomqtt

    host, port = mqtt_broker
    topic = f"hes-test/{uuid.uuid4().hex}"

    async def round_trip() -> bytes:
        async with aiomqtt.Client(host, port, identifier=f"hes-test-{uuid.uuid4().hex[:8]}") as client:
            await client.subscribe(topic, qos=1)
            await client.publish(topic, b"ping", qos=1)
            async with asyncio.timeout(5):
                async for message in client.messages:
                    return bytes(message.payload)  # type: ignore[arg-type]
        raise AssertionError("no message")

    assert asyncio.run(round_trip()) == b"ping"
