"""The MQTT publisher of ``hes run``: drains the outbox to the broker with QoS 1, retrying while it is down.

Messages are queued by whoever stores what they report (``hes.events.outbox``), in the same
transaction, so collection never waits for the broker: it only writes a row. This component
claims pending rows in order (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share
the work; a claim lasts ``CLAIM_SECONDS``), publishes each with QoS 1 (aiomqtt returns once the
broker's PUBACK came), then marks it published. When the broker is unreachable or drops the
connection, it reconnects after a jittered back-off doubling from one second to
``MAX_BACKOFF_S``; unpublished rows stay queued meanwhile (claims are made only while connected,
so an outage costs no attempts; a message refused ``MAX_ATTEMPTS`` times is set aside). A message
published but not marked (a crash between PUBACK and the mark) is sent again: subscribers drop it
by its ``message_id``.
Without ``HES_MQTT_URL`` the component idles (the outbox then keeps the alarms for later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import cast
from urllib.parse import urlsplit

import aiomqtt
from sqlalchemy import Engine, Table, func, or_, select, update

from hes.config import ConfigError
from hes.daemon import DaemonContext
from hes.db.engine import storage_errors
from hes.db.models import utcnow
from hes.events.models import MqttMessage
from hes.events.outbox import install

__all__ = [
    "CLAIM_SECONDS",
    "MAX_ATTEMPTS",
    "MAX_BACKOFF_S",
    "MqttComponent",
    "MqttPublisher",
    "broker_address",
    "claim",
    "component",
    "mark_published",
    "pending_count",
]

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 60.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
BATCH = 100
#: A message the broker refused this many times while connected is left in the outbox with its
#: ``last_error`` rather than blocking the ones behind it.
MAX_ATTEMPTS = 20
_TABLE = cast(Table, MqttMessage.__table__)


def broker_address(url: str) -> tuple[str, int]:
    """(host, port) of ``mqtt://HOST[:PORT]`` (1883 by default); ``ConfigError`` when it is not one."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ConfigError(f"HES_MQTT_URL={url}: expected mqtt://HOST[:PORT] (mqtts is not supported yet)")
    try:
        return parts.hostname, parts.port or 1883
    except ValueError:
        raise ConfigError(f"HES_MQTT_URL={url}: the port is not a number") from None


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    topic: str
    payload: str


def claim(engine: Engine, limit: int = BATCH, lease: float = CLAIM_SECONDS) -> list[_Pending]:
    """Claim up to ``limit`` pending messages, oldest first, for ``lease`` seconds."""
    now = utcnow()
    table = _TABLE
    with storage_errors(engine), engine.begin() as connection:
        query = (
            select(table.c.id, table.c.topic, table.c.payload)
            .where(table.c.published_at.is_(None), table.c.attempts < MAX_ATTEMPTS,
                   or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))
            .order_by(table.c.id)
            .limit(limit)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = [_Pending(int(i), str(t), str(p)) for i, t, p in connection.execute(query)]
        if rows:
            connection.execute(
                update(table).where(table.c.id.in_([r.id for r in rows]))
                .values(claimed_until=now + timedelta(seconds=lease), attempts=table.c.attempts + 1))
        return rows


def mark_published(engine: Engine, ident: int) -> None:
    with storage_errors(engine), engine.begin() as connection:
        connection.execute(update(_TABLE).where(_TABLE.c.id == ident).values(published_at=utcnow(),
                                                                                last_error=None))


def _release(engine: Engine, idents: list[int], error: str) -> None:
    if not idents:
        return
    with storage_errors(engine), engine.begin() as connection:
        connection.execute(update(_TABLE).where(_TABLE.c.id.in_(idents), _TABLE.c.published_at.is_(None))
                           .values(claimed_until=None, last_error=error[:500]))


def pending_count(engine: Engine) -> int:
    """Messages not published yet (those given up after ``MAX_ATTEMPTS`` included)."""
    with storage_errors(engine), engine.connect() as connection:
        query = select(func.count()).select_from(_TABLE).where(_TABLE.c.published_at.is_(None))
        return int(connection.execute(query).scalar_one())


class MqttPublisher:
    """Publishes the outbox of ``engine`` to the broker at ``host:port`` until cancelled (see the module docstring)."""

    def __init__(self, engine: Engine, host: str, port: int, *, identifier: str = "hes",
                 poll: float = 0.5, publish_timeout: float = 10.0) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.identifier = identifier
        self.poll = poll
        self.publish_timeout = publish_timeout
        #: Published messages and broker connections made (for logs and tests).
        self.published = 0
        self.connections = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.identifier,
                                          timeout=self.publish_timeout) as client:
                    self.connections += 1
                    logger.info("MQTT broker %s:%d connected", self.host, self.port)
                    backoff = FIRST_BACKOFF_S
                    await self._drain_forever(client)
            except aiomqtt.MqttError as exc:
                delay = backoff * (0.5 + random.random())
                logger.warning("MQTT broker %s:%d unavailable (%s); retrying in %.1f s", self.host, self.port,
                               exc, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _drain_forever(self, client: aiomqtt.Client) -> None:
        while True:
            batch = await asyncio.to_thread(claim, self.engine)
            if not batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                continue
            for index, message in enumerate(batch):
                try:
                    await client.publish(message.topic, message.payload.encode("utf-8"), qos=1,
                                         timeout=self.publish_timeout)
                except aiomqtt.MqttError as exc:
                    # Not published (or not acknowledged): back to the queue, all of the batch left.
                    await asyncio.to_thread(_release, self.engine, [m.id for m in batch[index:]], str(exc))
                    raise
                await asyncio.to_thread(mark_published, self.engine, message.id)
                self.published += 1


class MqttComponent:
    """``hes run``'s MQTT publisher."""

    name = "mqtt"

    async def run(self, context: DaemonContext) -> None:
        install()
        url = context.settings.mqtt_url
        if url is None:
            logger.info("HES_MQTT_URL is not set: alarms stay in the outbox, nothing is published")
            await context.stop.wait()
            return
        host, port = broker_address(url)
        ident = "hes-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in context.worker_id)[:40]
        publisher = MqttPublisher(context.engine, host, port, identifier=ident)
        task = asyncio.create_task(publisher.run(), name="mqtt-publisher")
        try:
            await context.stop.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def component() -> MqttComponent:
    return MqttComponent()
