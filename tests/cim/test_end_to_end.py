"""End to end: a simulated field read through the head-end, its CIM messages delivered into the legacy database.

Every interval, daily value and event the simulator says the meters hold is in the legacy database
exactly once, with the simulator's value, and every message is valid against the IEC XSDs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cim.delivery import Delivery, outbox_status
from cim.legacy import CIM_MESSAGES, LEGACY_EVENTS, LEGACY_INTERVALS, LEGACY_READINGS, Schemas, legacy_counts
from cim.models import OutboxMessage
from hes.config import Settings
from hes.reads import read_meter
from hes.registry import Registry
from hes.session import Timeouts
from simulators.clock import FieldClock
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at
from simulators.events import EventLog, events_between
from simulators.fleet import Fleet, FleetOptions
from tests.cim.conftest import XSD_DIR, assert_valid
from tests.fieldtime import EPOCH, meter_midnight

SEED = 7
DC_METER = "SIM000100001"  # behind DC0001: read from the concentrator's tables
P2P_METER = "P2P000000001"  # point-to-point, HDLC over TCP
FAST = Timeouts(connect=2.0, read=0.5, release=0.3, retries=1)
DAY_START = meter_midnight(EPOCH) - timedelta(days=2)  # a local (UTC+1) day of the simulated history
DAY_END = DAY_START + timedelta(days=1)
A_PLUS_15 = "0.0.2.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
A_MINUS_15 = "0.0.2.1.19.1.12.0.0.0.0.0.0.0.0.3.72.0"
DAILY = {"1.0.1.8.0.255": "11.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0",
         "1.0.1.8.1.255": "11.0.0.1.1.1.12.0.0.0.0.1.0.0.0.3.72.0",
         "1.0.1.8.2.255": "11.0.0.1.1.1.12.0.0.0.0.2.0.0.0.3.72.0",
         "1.0.2.8.0.255": "11.0.0.1.19.1.12.0.0.0.0.0.0.0.0.3.72.0"}


def events_since(now: datetime) -> datetime:
    """20 days before ``now``, or 30 (a DC keeps 40) when the meters logged nothing in 20 days (a quiet month)."""
    for days in (20, 30):
        since = now - timedelta(days=days)
        if any(events_between(SEED, serial, log, since, now) for serial in (DC_METER, P2P_METER) for log in EventLog):
            break
    return since


def kwh(wh: int) -> Decimal:
    return Decimal(wh).scaleb(-3)


@pytest.mark.usefixtures("installed_outbox")
def test_a_read_field_lands_in_the_legacy_database_once_and_valid(
        registry: Registry, engine: Engine, legacy_url: str, legacy_engine: Engine, schemas: Schemas,
        tmp_path: Path) -> None:
    options = FleetOptions(concentrators=1, meters_per_dc=2, p2p=2, seed=SEED, schedule=False, loss=0.0, epoch=EPOCH)
    fleet = Fleet(options, clock=FieldClock(EPOCH, 0.0))
    since = events_since(EPOCH)
    orders: dict[str, list[str]] = {}

    async def body() -> None:
        async with asyncio.timeout(60), fleet:
            manifest = tmp_path / "fleet.json"
            fleet.write_manifest(manifest)
            registry.import_manifest(manifest, who="test")
            now = fleet.clock.now()
            for serial, mode in ((DC_METER, "concentrated"), (P2P_METER, "gateway")):
                for what, start, end in (("profile", DAY_START, DAY_END), ("daily", DAY_START, DAY_END),
                                         ("events", since, now)):
                    result = await read_meter(registry, serial, what, start=start, end=end, requested_by="tester",
                                              clock=fleet.clock.now, timeouts=FAST, mode=mode)  # type: ignore[arg-type]
                    assert result.ok, (serial, what, result.reason)
                    orders.setdefault(serial, []).append(result.order_number)
                # Read again: nothing new is stored, so no message is written.
                again = await read_meter(registry, serial, "profile", start=DAY_START, end=DAY_END,
                                         requested_by="tester", clock=fleet.clock.now, timeouts=FAST,
                                         mode=mode)  # type: ignore[arg-type]
                assert again.ok and again.stored == 0

    asyncio.run(body())
    now = fleet.clock.now()

    with Session(engine) as session:
        messages = list(session.scalars(select(OutboxMessage)))
    for message in messages:
        assert_valid(message.xml, schemas)
    assert {m.correlation_id for m in messages} <= {n for numbers in orders.values() for n in numbers}

    delivery = Delivery(engine, Settings(legacy_database_url=legacy_url, cim_xsd_dir=XSD_DIR),
                        legacy_engine=legacy_engine)
    report = delivery.deliver_due()
    delivery.close()
    assert (report.delivered, report.failed, report.discarded) == (len(messages), 0, 0), report.reasons
    assert outbox_status(engine).to_json()["delivered"] == len(messages)

    with legacy_engine.connect() as connection:
        intervals = connection.execute(select(LEGACY_INTERVALS.c.meter, LEGACY_INTERVALS.c.reading_type,
                                              LEGACY_INTERVALS.c.interval_end, LEGACY_INTERVALS.c.value)).all()
        readings = connection.execute(select(LEGACY_READINGS.c.meter, LEGACY_READINGS.c.reading_type,
                                             LEGACY_READINGS.c.reading_time, LEGACY_READINGS.c.value)).all()
        events = connection.execute(select(LEGACY_EVENTS.c.meter, LEGACY_EVENTS.c.event_time,
                                           LEGACY_EVENTS.c.event_log, LEGACY_EVENTS.c.event_code)).all()
        assert connection.scalar(select(CIM_MESSAGES.c.message_id).limit(1)) is not None

    want_intervals: dict[tuple[str, str, datetime], Decimal] = {}
    want_readings: dict[tuple[str, str, datetime], Decimal] = {}
    want_events: list[tuple[str, datetime, str, int]] = []
    first = interval_index(DAY_START)
    for serial in (DC_METER, P2P_METER):
        for row in profile_intervals(SEED, serial, first, first + 95):
            want_intervals[serial, A_PLUS_15, interval_end(row.interval)] = kwh(row.a_plus)
            want_intervals[serial, A_MINUS_15, interval_end(row.interval)] = kwh(row.a_minus)
        for midnight in (DAY_START, DAY_END):
            r = registers_at(SEED, serial, midnight)
            for obis, value in (("1.0.1.8.0.255", r.a_plus), ("1.0.1.8.1.255", r.a_plus_t1),
                                ("1.0.1.8.2.255", r.a_plus_t2), ("1.0.2.8.0.255", r.a_minus)):
                want_readings[serial, DAILY[obis], midnight] = kwh(value)
        want_events += [(serial, e.when, f"0.0.99.98.{int(log)}.255", int(e.code))
                        for log in EventLog for e in events_between(SEED, serial, log, since, now)]

    # Exactly once: as many rows as distinct identities, and those are exactly the simulator's.
    assert len(intervals) == len(want_intervals) == 2 * 192
    assert {(m, t, at): v for m, t, at, v in intervals} == want_intervals
    assert len(readings) == len(want_readings)
    assert {(m, t, at): v for m, t, at, v in readings} == want_readings
    assert sorted(events) == sorted(want_events) and want_events
    counts = legacy_counts(legacy_engine)
    assert counts["cim_messages"] == len(messages)
