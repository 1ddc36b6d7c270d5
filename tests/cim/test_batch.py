"""Many meters in one store call (the collector's batches): each meter-day gets the message it gets alone."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from cim import messages, outbox
from cim.messages import IntervalReading, RegisterReading, split_meter_readings
from cim.models import OutboxMessage
from hes.db.readings import RegisterRow, store_intervals, store_registers
from hes.db.stored import correlation
from tests.cim.test_outbox import day_rows, meters

STAMP = datetime(2024, 3, 2, 6, tzinfo=UTC)
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"
# The Header properties that say where a part stands in its set: the only bytes a batch changes.
PART_PROPERTIES = re.compile(rb"<Property><Name>part</Name>.*?<Name>setId</Name><Value>[^<]*</Value></Property>")


def meter_days(meter: str) -> tuple[list[IntervalReading], list[RegisterReading]]:
    """Two UTC days of a meter (some missing, some with qualities) and a daily closure of each."""
    start = datetime(2024, 2, 29, tzinfo=UTC)
    intervals = [
        IntervalReading.unchecked(meter, obis, start + timedelta(minutes=15 * (k + 1)),
                                  None if k % 53 == 7 else 900 + 1_000 * k + channel,
                                  ("1.2.32",) if k % 61 == 3 else ())
        for channel, obis in enumerate((A_PLUS, A_MINUS))
        for k in range(192)
    ]
    registers = [RegisterReading.unchecked(meter, A_PLUS, start + timedelta(days=d), 5_000_000 + d, (), "daily")
                 for d in (1, 2)]
    return intervals, registers


def test_a_batch_of_meters_gives_each_meter_day_its_own_message() -> None:
    serials = [f"SIM{n:09d}" for n in (7, 3, 12, 5)]
    intervals: list[IntervalReading] = []
    registers: list[RegisterReading] = []
    alone = []
    for serial in serials:
        own_intervals, own_registers = meter_days(serial)
        intervals += own_intervals
        registers += own_registers
        alone += split_meter_readings(own_intervals, own_registers, correlation_id="run:1", timestamp=STAMP)
    # The batch interleaved as a collector may give it: by time across meters.
    intervals.sort(key=lambda reading: (reading.end, reading.obis, reading.meter))
    batch = split_meter_readings(intervals, registers, correlation_id="run:1", timestamp=STAMP)

    assert [m.meters for m in batch] == [(serial,) for serial in sorted(serials) for _ in range(2)]
    assert [(m.part, m.parts) for m in batch] == [(n, 8) for n in range(1, 9)]
    assert len({m.set_id for m in batch}) == 1
    by_id = {m.message_id: m for m in alone}
    assert sorted(by_id) == sorted(m.message_id for m in batch)
    for message in batch:
        own = by_id[message.message_id]
        assert message.count == own.count
        assert PART_PROPERTIES.sub(b"", message.xml) == PART_PROPERTIES.sub(b"", own.xml)


def test_message_ids_are_the_uuid5_they_always_were() -> None:
    for name in ("", "MeterReadings\nrun:1\ninterval|M|1.0.1.8.0.255|2024-02-29T00:15:00Z", "hés & <co>\n" * 50):
        assert messages._uuid5(name) == str(uuid.uuid5(messages._ID_NAMESPACE, name))


def test_one_store_of_many_meters_writes_a_message_per_meter_day(engine: Engine) -> None:
    serials = [f"BATCH{n:03d}" for n in range(12)]
    ids = meters(engine, serials)
    day = datetime(2024, 3, 1, tzinfo=UTC)
    outbox.install()
    try:
        with correlation("run:batch"), engine.begin() as connection:
            store_intervals(connection, [row for serial in serials for row in day_rows(ids[serial], day)])
            store_registers(connection, [RegisterRow(ids[serial], A_PLUS, day + timedelta(hours=23), 1_000 + n, 0, 30,
                                                     -60) for n, serial in enumerate(serials)])
    finally:
        outbox.uninstall()
    with engine.connect() as connection:
        rows = connection.execute(select(OutboxMessage.meters, OutboxMessage.item_count, OutboxMessage.part,
                                         OutboxMessage.parts, OutboxMessage.set_id)).all()
    intervals = sorted((r for r in rows if r.item_count == 192), key=lambda r: r.part)
    assert [r.meters for r in intervals] == sorted(serials)
    assert [(r.part, r.parts) for r in intervals] == [(n, 12) for n in range(1, 13)]
    daily = sorted((r for r in rows if r.item_count == 1), key=lambda r: r.part)
    assert [r.meters for r in daily] == sorted(serials)
    assert len(rows) == 24
