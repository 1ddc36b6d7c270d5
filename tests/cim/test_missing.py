"""Known missing intervals: N2PLoad declares a gap lost, CIM carries it as ReadingQuality 2.5.259, the legacy side
stores NULL, and a value read later after all replaces the NULL there (never the other way), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from cim.delivery import Delivery
from cim.legacy import LEGACY_INTERVALS, Schemas, integrate, parse_message
from cim.messages import MISSING_QUALITY, IntervalReading, meter_readings_message
from cim.models import OutboxMessage
from cim.outbox import on_stored
from hes.config import Settings
from hes.db.models import Meter
from hes.db.readings import IntervalRow, MissingInterval, store_intervals
from hes.db.stored import StoredBatch, add_listener, correlation, remove_listener
from hes.reads import read_meter
from scheduler.collection_models import CollectionGap
from scheduler.n2pload import GAP_GIVE_UP_ATTEMPTS, collect_profile
from simulators.energy import INTERVAL, interval_end, interval_index, profile_intervals
from tests.cim.conftest import XSD_DIR, assert_valid
from tests.scheduler.test_n2pload import DC_B, FAST, SEED, START, dc_reads, field, item, meter_loses, run

A_PLUS_15 = "0.0.2.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
A_MINUS_15 = "0.0.2.1.19.1.12.0.0.0.0.0.0.0.0.3.72.0"
CHANNELS = {"1.0.1.8.0.255": A_PLUS_15, "1.0.2.8.0.255": A_MINUS_15}

Legacy = dict[tuple[str, datetime], tuple[Decimal | None, str | None]]


def kwh(wh: int) -> Decimal:
    return Decimal(wh).scaleb(-3)


def legacy_rows(engine: Engine, serial: str) -> Legacy:
    """(ReadingType, interval end) -> (value, qualities) of one meter; each identity must be there once."""
    with engine.connect() as connection:
        rows = connection.execute(select(LEGACY_INTERVALS.c.reading_type, LEGACY_INTERVALS.c.interval_end,
                                         LEGACY_INTERVALS.c.value, LEGACY_INTERVALS.c.qualities).where(
            LEGACY_INTERVALS.c.meter == serial)).all()
    out = {(code, end): (value, qualities) for code, end, value, qualities in rows}
    assert len(out) == len(rows)
    return out


def simulated(serial: str, first: int, last: int) -> dict[tuple[str, datetime], Decimal]:
    out: dict[tuple[str, datetime], Decimal] = {}
    for row in profile_intervals(SEED, serial, first, last):
        out[A_PLUS_15, interval_end(row.interval)] = kwh(row.a_plus)
        out[A_MINUS_15, interval_end(row.interval)] = kwh(row.a_minus)
    return out


def outbox_xml(engine: Engine) -> dict[str, bytes]:
    with Session(engine) as session:
        return {m.message_id: m.xml for m in session.scalars(select(OutboxMessage))}


def deliver(engine: Engine, legacy_url: str, legacy_engine: Engine, expected: int) -> None:
    delivery = Delivery(engine, Settings(legacy_database_url=legacy_url, cim_xsd_dir=XSD_DIR),
                        legacy_engine=legacy_engine)
    try:
        report = delivery.deliver_due()
    finally:
        delivery.close()
    assert (report.delivered, report.failed, report.discarded) == (expected, 0, 0), report.reasons


@pytest.mark.usefixtures("installed_outbox")
def test_a_lost_gap_reaches_the_legacy_database_as_known_missing_and_a_late_read_fills_it(
        tmp_path: Path, engine: Engine, master_key: Any, legacy_url: str, legacy_engine: Engine, schemas: Schemas,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = interval_index(START)
    # The DC never gets intervals first+10 and first+11 of meter DC_B; a field import brings first+11
    # before the gap is declared lost, so only first+10 is known missing.
    lost = frozenset({first + 10, first + 11})
    told: list[StoredBatch] = []

    def listen(_connection: Connection, batch: StoredBatch) -> None:
        if batch.missing:
            told.append(batch)

    async def body() -> None:
        async with field(tmp_path, engine, master_key) as (fleet, registry, context):
            with Session(engine) as session:
                meter_id = session.scalars(select(Meter.id).where(Meter.serial == DC_B)).one()
            with meter_loses(monkeypatch, DC_B, lost):
                for attempt in range(1, GAP_GIVE_UP_ATTEMPTS + 1):
                    fleet.clock.jump(INTERVAL)
                    await dc_reads(fleet)
                    if attempt == GAP_GIVE_UP_ATTEMPTS:
                        (imported,) = profile_intervals(SEED, DC_B, first + 11, first + 11)
                        with engine.begin() as connection:
                            assert store_intervals(connection, [
                                IntervalRow(meter_id, obis, 2, interval_end(first + 11), value, 0, 30)
                                for obis, value in (("1.0.1.8.0.255", imported.a_plus),
                                                    ("1.0.2.8.0.255", imported.a_minus))]) == 2
                    with correlation("run:7"):
                        outcome = await collect_profile(context, item(context, DC_B))
                    assert outcome.state == "WARN", outcome
                    assert bool(told) == (attempt == GAP_GIVE_UP_ATTEMPTS)
                # A later pass tells nothing again.
                fleet.clock.jump(INTERVAL)
                await dc_reads(fleet)
                with correlation("run:8"):
                    await collect_profile(context, item(context, DC_B))
            with Session(engine) as session:
                (gap,) = session.scalars(select(CollectionGap)).all()
                assert gap.state == "lost"

            (batch,) = told
            assert batch.correlation_id == "run:7" and not (batch.intervals or batch.registers or batch.events)
            assert sorted(batch.missing, key=lambda m: m.obis) == [
                MissingInterval(meter_id, "1.0.1.8.0.255", 2, interval_end(first + 10)),
                MissingInterval(meter_id, "1.0.2.8.0.255", 2, interval_end(first + 10))]

            messages = outbox_xml(engine)
            for xml in messages.values():
                assert_valid(xml, schemas)
            deliver(engine, legacy_url, legacy_engine, len(messages))
            now = fleet.clock.now()
            # The first pass ran one interval after START: it looked back one day from then.
            want: dict[tuple[str, datetime], tuple[Decimal | None, str | None]] = {
                key: (value, None) for key, value in simulated(DC_B, first + 1, interval_index(now) - 1).items()}
            for code in CHANNELS.values():
                want[code, interval_end(first + 10)] = (None, MISSING_QUALITY)
            got = legacy_rows(legacy_engine, DC_B)
            assert {key: value for key, (value, _) in got.items()} == {key: value for key, (value, _) in want.items()}
            missing = {key for key, (value, _) in got.items() if value is None}
            assert missing == {(code, interval_end(first + 10)) for code in CHANNELS.values()}
            assert all(MISSING_QUALITY in (got[key][1] or "").split() for key in missing)
            assert not any(MISSING_QUALITY in (q or "").split() for key, (_, q) in got.items() if key not in missing)
            missing_messages = {xml for xml in messages.values() if MISSING_QUALITY.encode() in xml}
            assert len(missing_messages) == 1 and b"<CorrelationID>run:7</CorrelationID>" in next(
                iter(missing_messages))

            # The meter had the interval after all: read locally (through the DC as a gateway), it fills the NULL.
            result = await read_meter(registry, DC_B, "profile", start=interval_end(first + 8),
                                      end=interval_end(first + 12), requested_by="tester", clock=fleet.clock.now,
                                      timeouts=FAST, mode="gateway")
            assert result.ok and result.stored == 2, result
        later = {k: v for k, v in outbox_xml(engine).items() if k not in messages}
        assert len(later) == 1
        ((fill_id, fill_xml),) = later.items()
        assert_valid(fill_xml, schemas)
        assert MISSING_QUALITY.encode() not in fill_xml
        deliver(engine, legacy_url, legacy_engine, 1)
        filled = legacy_rows(legacy_engine, DC_B)
        for code in CHANNELS.values():
            value, qualities = filled[code, interval_end(first + 10)]
            assert value == want_value(code, first + 10) and MISSING_QUALITY not in (qualities or "").split()
        assert len(filled) == len(got)
        with legacy_engine.connect() as connection:
            ids = set(connection.scalars(select(LEGACY_INTERVALS.c.message_id).where(
                LEGACY_INTERVALS.c.interval_end == interval_end(first + 10))))
        assert ids == {fill_id}

        # The message that said "missing", integrated again (a re-injection), does not undo the value.
        (missing_xml,) = missing_messages
        integrate(legacy_engine, missing_xml, now=datetime.now(UTC))
        assert legacy_rows(legacy_engine, DC_B) == filled

    add_listener(listen)
    try:
        run(body, limit=90)
    finally:
        remove_listener(listen)


def want_value(code: str, interval: int) -> Decimal:
    return simulated(DC_B, interval, interval)[code, interval_end(interval)]


DAY = datetime(2024, 2, 28, tzinfo=UTC)


def test_a_value_replaces_a_missing_interval_on_the_legacy_side_never_the_other_way(
        legacy_engine: Engine, schemas: Schemas) -> None:
    end, other = DAY + timedelta(minutes=15), DAY + timedelta(minutes=30)
    said_missing = meter_readings_message([IntervalReading("M1", "1.0.1.8.0.255", end, None),
                                           IntervalReading("M1", "1.0.1.8.0.255", other, 5000)],
                                          correlation_id="run:1", timestamp=DAY)
    read_later = meter_readings_message([IntervalReading("M1", "1.0.1.8.0.255", end, 1234, ("1.2.32",)),
                                         IntervalReading("M1", "1.0.1.8.0.255", other, 9999)],
                                        correlation_id="run:1", timestamp=DAY)
    # Same identities and correlation, different news: different MessageIDs (the outbox keeps both).
    assert said_missing.message_id != read_later.message_id
    for message in (said_missing, read_later):
        assert_valid(message.xml, schemas)
    now = datetime.now(UTC)
    assert integrate(legacy_engine, said_missing.xml, now=now).new_rows == 2
    assert legacy_rows(legacy_engine, "M1") == {(A_PLUS_15, end): (None, MISSING_QUALITY),
                                                (A_PLUS_15, other): (Decimal("5.000"), None)}
    # The value fills the NULL (with its own qualities); the value already there stays the first one.
    assert integrate(legacy_engine, read_later.xml, now=now).new_rows == 1
    filled = {(A_PLUS_15, end): (Decimal("1.234"), "1.2.32"), (A_PLUS_15, other): (Decimal("5.000"), None)}
    assert legacy_rows(legacy_engine, "M1") == filled
    # Missing again, or the same messages again: nothing changes.
    for message in (said_missing, read_later):
        assert integrate(legacy_engine, message.xml, now=now).new_rows == 0
    assert legacy_rows(legacy_engine, "M1") == filled


def test_the_outbox_sends_missing_intervals_without_a_value_and_a_value_wins(
        engine: Engine, registry: Any, fleet_manifest: tuple[Path, Any], schemas: Schemas) -> None:
    registry.import_manifest(fleet_manifest[0])
    with Session(engine) as session:
        meter_id, serial = session.execute(select(Meter.id, Meter.serial).order_by(Meter.serial).limit(1)).one()
    ends = [DAY + timedelta(minutes=15 * k) for k in (1, 2, 3)]
    batch = StoredBatch(
        intervals=[IntervalRow(meter_id, "1.0.1.8.0.255", 2, ends[2], 7000, 0, 30)],
        correlation_id="run:5",
        missing=[MissingInterval(meter_id, obis, 2, at) for at in ends for obis in CHANNELS]
        + [MissingInterval(meter_id, "1.0.99.98.0.255", 2, ends[0])],  # no ReadingType: left out
    )
    assert StoredBatch(missing=batch.missing) and not StoredBatch()
    with engine.begin() as connection:
        on_stored(connection, batch)
    (xml,) = outbox_xml(engine).values()
    assert_valid(xml, schemas)
    assert f"<mRID>{serial}</mRID>".encode() in xml and b"<CorrelationID>run:5</CorrelationID>" in xml
    assert _parse(xml) == {
        (A_PLUS_15, ends[0]): (None, MISSING_QUALITY), (A_MINUS_15, ends[0]): (None, MISSING_QUALITY),
        (A_PLUS_15, ends[1]): (None, MISSING_QUALITY), (A_MINUS_15, ends[1]): (None, MISSING_QUALITY),
        (A_PLUS_15, ends[2]): (Decimal("7.000"), None), (A_MINUS_15, ends[2]): (None, MISSING_QUALITY),
    }


def _parse(xml: bytes) -> Legacy:
    return {(row["reading_type"], row["interval_end"]): (row["value"], row["qualities"])
            for row in parse_message(xml).intervals}
