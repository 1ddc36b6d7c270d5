"""Shared by the events tests: a field with a push listener in one event loop, and waiting for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from hes.db.models import EventRecord, Meter
from hes.events.models import MqttMessage
from hes.events.push import PushHandler, PushListener
from hes.registry import Registry
from simulators.clock import FieldClock
from simulators.fleet import Fleet, FleetOptions
from simulators.push import PushSender
from tests.hes.test_commands import FIELD_NOW, SEED

__all__ = ["PushField", "events_of", "outbox", "push_field", "run", "wait_for"]

# With seed 11: P2P000000000 (wrapper) and SIM000100001 (behind DC0001) use HLS-GMAC; P2P000000001 too.
CIPHERED_P2P = "P2P000000000"
DC_METER = "SIM000100001"


def field_options(**changes: object) -> FleetOptions:
    base = FleetOptions(concentrators=1, meters_per_dc=3, p2p=2, seed=SEED, schedule=False, plc_latency=0.0,
                        loss=0.0)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class PushField:
    fleet: Fleet
    listener: PushListener
    sender: PushSender


@contextlib.asynccontextmanager
async def push_field(registry: Registry, tmp_path: Path, **changes: object) -> AsyncIterator[PushField]:
    """A running field registered in ``registry``, a push listener on a free port, meters pushing to it."""
    fleet = Fleet(field_options(**changes), clock=FieldClock(FIELD_NOW, 0.0))
    async with fleet:
        manifest = tmp_path / "fleet.json"
        fleet.write_manifest(manifest)
        await asyncio.to_thread(registry.import_manifest, manifest, who="test")
        listener = PushListener(PushHandler(registry))
        await listener.start()
        sender = PushSender(fleet, "127.0.0.1", listener.bound_port)
        sender.attach()
        try:
            yield PushField(fleet, listener, sender)
        finally:
            sender.detach()
            await listener.stop()


T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]], limit: float = 60.0) -> T:
    """Run ``body`` in a new event loop, bounded by ``limit`` seconds."""
    async def main() -> T:
        async with asyncio.timeout(limit):
            return await body()

    return asyncio.run(main())


async def wait_for(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


def events_of(registry: Registry, serial: str) -> list[EventRecord]:
    with Session(registry.engine) as db:
        meter_id = db.scalar(select(Meter.id).where(Meter.serial == serial))
        return list(db.scalars(select(EventRecord).where(EventRecord.meter_id == meter_id)
                               .order_by(EventRecord.event_time)))


def outbox(registry: Registry) -> list[MqttMessage]:
    with Session(registry.engine) as db:
        return list(db.scalars(select(MqttMessage).order_by(MqttMessage.id)))
