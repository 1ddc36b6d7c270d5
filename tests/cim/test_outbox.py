"""The outbox and its delivery: messages written with the data, delivered once, re-injected after an outage."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from cim import outbox
from cim.delivery import Delivery, outbox_status, retry
from cim.legacy import CIM_MESSAGES, LEGACY_EVENTS, LEGACY_INTERVALS, LEGACY_READINGS, Schemas, legacy_counts
from cim.messages import MESSAGE_NS
from cim.models import OutboxMessage
from hes.config import Settings
from hes.db import create_engine_for, session_factory
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
from hes.db.stored import correlation
from tests.cim.conftest import assert_valid

DAY = datetime(2024, 3, 1, tzinfo=UTC)
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def meters(engine: Engine, serials: list[str]) -> dict[str, int]:
    with session_factory(engine)() as session:
        for n, serial in enumerate(serials):
            session.add(Meter(serial=serial, host="127.0.0.1", port=4000 + n, state="commissioned"))
        session.commit()
        return meter_ids(session, serials)


def day_rows(meter_id: int, day: datetime = DAY, status: int = 0) -> list[IntervalRow]:
    return [
        IntervalRow(meter_id, obis, 2, day + timedelta(minutes=15 * (k + 1)), float(500_000 + 11 * k + c), 0, 30,
                    status if k == 5 else 0, 1 if status and k == 5 else 0)
        for c, obis in enumerate((A_PLUS, A_MINUS))
        for k in range(96)
    ]


def outbox_rows(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at, OutboxMessage.part)))


def settings(legacy_url: str, **overrides: object) -> Settings:
    return Settings(legacy_database_url=legacy_url, **overrides)  # type: ignore[arg-type]


@pytest.mark.usefixtures("installed_outbox")
def test_stored_rows_get_their_messages_in_the_same_transaction(engine: Engine, schemas: Schemas) -> None:
    ids = meters(engine, ["M1", "M2"])
    with correlation("R00000001"), engine.begin() as connection:
        assert store_intervals(connection, day_rows(ids["M1"], status=0x80) + day_rows(ids["M2"])) == 384
        assert store_registers(connection, [
            RegisterRow(ids["M1"], A_PLUS, DAY + timedelta(hours=23), 1_234_567.0, 0, 30, -60),  # local midnight
            RegisterRow(ids["M1"], "1.0.32.7.0.255", DAY + timedelta(hours=9, seconds=3), 2314.0, -1, 35, -60),
        ]) == 2
        assert store_events(connection, [EventRow(ids["M2"], "0.0.99.98.0.255", 1, DAY + timedelta(hours=2),
                                                  "power down")]) == 1
    rows = outbox_rows(engine)
    assert [(r.noun, r.meters, r.item_count, r.state) for r in rows] == [
        ("MeterReadings", "M1", 192, "PENDING"), ("MeterReadings", "M2", 192, "PENDING"),
        ("MeterReadings", "M1", 2, "PENDING"), ("EndDeviceEvents", "M2", 1, "PENDING"),
    ]
    assert {r.correlation_id for r in rows} == {"R00000001"}
    for row in rows:
        assert_valid(row.xml, schemas)
    text = rows[0].xml.decode()
    assert "<value>500.000</value>" in text and "<value>501.045</value>" in text  # 500 000 Wh, 500 000 + 11*95
    assert '<ReadingQualityType ref="1.2.32"/>' in text  # the power-down bit of the status word
    registers = rows[2].xml.decode()
    assert "11.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0" in registers and "<value>1234.567</value>" in registers
    assert "<value>231.4</value>" in registers  # decivolts with scaler -1

    # The same rows again: nothing new, no message. A rolled-back store leaves no message either.
    with engine.begin() as connection:
        assert store_intervals(connection, day_rows(ids["M1"])) == 0
    with pytest.raises(RuntimeError), engine.begin() as connection:
        store_intervals(connection, day_rows(ids["M1"], DAY + timedelta(days=1)))
        raise RuntimeError("the caller fails after storing")
    assert len(outbox_rows(engine)) == 4


@pytest.mark.usefixtures("installed_outbox")
def test_codes_not_in_the_table_never_stop_storage(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    ids = meters(engine, ["M1"])
    with caplog.at_level(logging.WARNING), engine.begin() as connection:
        rows = [IntervalRow(ids["M1"], "1.0.99.97.0.255", 2, DAY + timedelta(minutes=15), 1.0)]
        assert store_intervals(connection, rows) == 1
        assert store_events(connection, [EventRow(ids["M1"], "0.0.99.98.0.255", 231, DAY)]) == 1
        wrong_unit = [IntervalRow(ids["M1"], A_PLUS, 2, DAY + timedelta(minutes=15), 1.0, 0, 32)]  # varh, not Wh
        assert store_intervals(connection, wrong_unit) == 1
    assert outbox_rows(engine) == []
    assert "no interval ReadingType for 1.0.99.97.0.255" in caplog.text
    assert "no EndDeviceEventType for event 231" in caplog.text and "DLMS unit 32" in caplog.text


def test_a_batch_repeating_a_key_tells_each_new_row_once(engine: Engine) -> None:
    ids = meters(engine, ["M1"])
    seen: list[int] = []
    from hes.db.stored import add_listener, remove_listener

    def listener(_: object, batch: object) -> None:
        seen.append(len(batch.intervals))  # type: ignore[attr-defined]

    add_listener(listener)
    try:
        row = IntervalRow(ids["M1"], A_PLUS, 2, DAY + timedelta(minutes=15), 1.0)
        other = IntervalRow(ids["M1"], A_PLUS, 2, DAY + timedelta(minutes=30), 2.0)
        with engine.begin() as connection:
            assert store_intervals(connection, [row, row, other]) == 2
            assert store_intervals(connection, [row, other, IntervalRow(ids["M1"], A_PLUS, 2, DAY, 3.0)]) == 1
    finally:
        remove_listener(listener)
    assert seen == [2, 1]


@pytest.mark.usefixtures("installed_outbox")
def test_delivery_puts_every_value_in_the_legacy_database_once(engine: Engine, legacy_url: str,
                                                               legacy_engine: Engine) -> None:
    ids = meters(engine, ["M1"])
    with correlation("run:5"), engine.begin() as connection:
        store_intervals(connection, day_rows(ids["M1"]))
        store_registers(connection, [RegisterRow(ids["M1"], A_PLUS, DAY + timedelta(hours=23), 9_999.0, 0, 30, -60)])
        store_events(connection, [EventRow(ids["M1"], "0.0.99.98.2.255", 62, DAY + timedelta(hours=1))])
    delivery = Delivery(engine, settings(legacy_url), legacy_engine=legacy_engine)
    report = delivery.deliver_due()
    assert (report.delivered, report.failed, report.discarded) == (3, 0, 0)
    assert legacy_counts(legacy_engine) == {"cim_messages": 3, "legacy_interval_readings": 192,
                                            "legacy_readings": 1, "legacy_events": 1}
    with legacy_engine.connect() as connection:
        values = dict(connection.execute(select(LEGACY_INTERVALS.c.interval_end, LEGACY_INTERVALS.c.value)
                                         .where(LEGACY_INTERVALS.c.reading_type.like("%.1.1.12.%"))).all())
        assert values == {r.interval_end: Decimal(int(r.value)).scaleb(-3) for r in day_rows(ids["M1"])
                          if r.obis == A_PLUS}
        assert connection.scalar(select(LEGACY_READINGS.c.value)) == Decimal("9.999")
        assert connection.scalar(select(LEGACY_EVENTS.c.event_type)) == "3.31.0.68"
        assert set(connection.scalars(select(CIM_MESSAGES.c.correlation_id))) == {"run:5"}
    assert outbox_status(engine).to_json()["delivered"] == 3
    # Re-injected by hand (or by a worker that died before recording DELIVERED): still once on the legacy side.
    with engine.begin() as connection:
        connection.execute(update(OutboxMessage).values(state="FAILED"))
    assert retry(engine, None) == 3
    assert delivery.deliver_due().delivered == 3
    assert legacy_counts(legacy_engine) == {"cim_messages": 3, "legacy_interval_readings": 192,
                                            "legacy_readings": 1, "legacy_events": 1}
    delivery.close()


@pytest.mark.usefixtures("installed_outbox")
def test_legacy_database_down_then_back_delivers_everything_once(engine: Engine, legacy_url: str,
                                                                  legacy_engine: Engine, tmp_path: Path) -> None:
    ids = meters(engine, ["M1", "M2"])
    with correlation("run:9"), engine.begin() as connection:
        store_intervals(connection, day_rows(ids["M1"]) + day_rows(ids["M2"]))
    clock = Clock(datetime.now(UTC))
    down_url = (f"sqlite:///{tmp_path / 'no-such-folder' / 'legacy.db'}" if legacy_url.startswith("sqlite")
                else "postgresql+psycopg://postgres@127.0.0.1:1/test")  # port 1: nothing listens
    down = Delivery(engine, settings(down_url), clock=clock)
    report = down.deliver_due()
    assert (report.delivered, report.failed) == (0, 2)
    rows = outbox_rows(engine)
    assert {r.state for r in rows} == {"FAILED"} and all("legacy database" in (r.reason or "") for r in rows)
    assert all(r.next_attempt_at == clock.now + timedelta(hours=1) for r in rows)
    status = outbox_status(engine).to_json()
    assert (status["pending"], status["failed"], status["delivered"], status["discarded"]) == (0, 2, 0, 0)
    assert status["next_reinjection"] is not None and "legacy database" in status["last_failure"]
    down.close()

    # Back up, but before the re-injection delay: nothing is due yet.
    up = Delivery(engine, settings(legacy_url), legacy_engine=legacy_engine, clock=clock)
    assert up.deliver_due().delivered == 0
    clock.now += timedelta(hours=1)
    assert up.deliver_due().delivered == 2
    assert up.deliver_due().delivered == 0
    assert legacy_counts(legacy_engine)["legacy_interval_readings"] == 384
    assert legacy_counts(legacy_engine)["cim_messages"] == 2
    with legacy_engine.connect() as connection:
        received = set(connection.scalars(select(CIM_MESSAGES.c.message_id)))
    assert received == {r.message_id for r in rows}  # re-injected with the same MessageIDs
    assert {r.state for r in outbox_rows(engine)} == {"DELIVERED"}
    assert all(r.attempts == 2 for r in outbox_rows(engine))


def test_invalid_messages_are_discarded_or_failed_with_their_reason(
        engine: Engine, legacy_url: str, legacy_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    now = datetime.now(UTC)
    empty = (f'<?xml version="1.0"?><EventMessage xmlns="{MESSAGE_NS}"><Header><Verb>created</Verb>'
             f"<Noun>MeterReadings</Noun><MessageID>empty-1</MessageID></Header><Payload>"
             '<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#"><MeterReading>'
             "<IntervalBlocks><IntervalReadings><timeStamp>2024-03-01T00:15:00Z</timeStamp><value>1</value>"
             "</IntervalReadings></IntervalBlocks></MeterReading></MeterReadings></Payload></EventMessage>")
    broken = b"<EventMessage><Header>"
    with engine.begin() as connection:
        for message_id, xml in (("empty-1", empty.encode()), ("broken-1", broken)):
            connection.execute(OutboxMessage.__table__.insert(), {  # type: ignore[attr-defined]
                "message_id": message_id, "noun": "MeterReadings", "correlation_id": None, "set_id": None,
                "part": 1, "parts": 1, "meters": "", "item_count": 1, "xml": xml, "state": "PENDING",
                "attempts": 0, "created_at": now, "next_attempt_at": now,
            })
    delivery = Delivery(engine, settings(legacy_url), legacy_engine=legacy_engine)
    with caplog.at_level(logging.WARNING):
        report = delivery.deliver_due()
    assert (report.delivered, report.discarded, report.failed) == (0, 1, 1)
    states = {r.message_id: (r.state, r.reason) for r in outbox_rows(engine)}
    assert states["empty-1"][0] == "DISCARDED"
    assert "carries no readings, load-curve or event identifiers" in (states["empty-1"][1] or "")
    assert states["broken-1"][0] == "FAILED" and "not well-formed" in (states["broken-1"][1] or "")
    assert "empty-1 discarded" in caplog.text
    assert legacy_counts(legacy_engine)["cim_messages"] == 0
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
    delivery.close()


def test_delivery_validates_against_the_xsds_when_told_where_they_are(
        engine: Engine, legacy_url: str, legacy_engine: Engine, schemas: Schemas) -> None:
    from tests.cim.conftest import XSD_DIR

    now = datetime.now(UTC)
    # Schema-invalid (an IntervalBlock without its ReadingType) but with identifiers the structural check accepts.
    xml = (f'<?xml version="1.0"?><EventMessage xmlns="{MESSAGE_NS}"><Header><Verb>created</Verb>'
           f"<Noun>MeterReadings</Noun><MessageID>bad-xsd</MessageID></Header><Payload>"
           '<MeterReadings xmlns="http://iec.ch/TC57/2011/MeterReadings#"><MeterReading><Meter><mRID>M</mRID></Meter>'
           "<Readings><timeStamp>2024-03-01T00:15:00Z</timeStamp><value>x</value><ReadingType ref=\"1\"/></Readings>"
           "</MeterReading></MeterReadings></Payload></EventMessage>")
    with engine.begin() as connection:
        connection.execute(OutboxMessage.__table__.insert(), {  # type: ignore[attr-defined]
            "message_id": "bad-xsd", "noun": "MeterReadings", "part": 1, "parts": 1, "meters": "M",
            "item_count": 1, "xml": xml.encode(), "state": "PENDING", "attempts": 0, "created_at": now,
            "next_attempt_at": now,
        })
    delivery = Delivery(engine, settings(legacy_url, cim_xsd_dir=XSD_DIR), legacy_engine=legacy_engine)
    assert delivery.deliver_due().failed == 1
    (row,) = outbox_rows(engine)
    assert row.state == "FAILED" and "not valid against MeterReadings.xsd" in (row.reason or "")
    delivery.close()


def test_outbox_install_follows_the_settings(tmp_path: Path) -> None:
    from hes.db.stored import listeners

    was_installed = outbox.on_stored in listeners()
    outbox.install(Settings(cim_outbox=False))
    assert outbox.on_stored not in listeners()
    table = tmp_path / "t.json"
    table.write_text('{"reading_types": []}')
    outbox.install(Settings(cim_tables=table, cim_split="meter", cim_max_values=7))
    try:
        assert outbox.on_stored in listeners()
        assert outbox.config().per == "meter" and outbox.config().max_values == 7
        assert outbox.config().tables.reading_types == {}
    finally:
        outbox.uninstall()
    assert outbox.on_stored not in listeners()
    if was_installed:  # as cli.main left it for the tests that follow
        outbox.install()


def test_a_missing_legacy_engine_url_is_created_from_the_settings(engine: Engine, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    delivery = Delivery(engine, settings(url))
    assert delivery.deliver_due().delivered == 0
    delivery.close()
    legacy = create_engine_for(url)
    assert legacy_counts(legacy) == {"cim_messages": 0, "legacy_interval_readings": 0, "legacy_readings": 0,
                                     "legacy_events": 0}
    legacy.dispose()


@pytest.mark.usefixtures("installed_outbox")
def test_hes_run_delivers_through_its_cim_component(engine: Engine, registry: object, legacy_url: str,
                                                    legacy_engine: Engine) -> None:
    import asyncio

    from cli.run import load_components
    from hes.daemon import DaemonContext, supervise
    from hes.registry import Registry

    ids = meters(engine, ["M1"])
    with engine.begin() as connection:
        store_intervals(connection, day_rows(ids["M1"]))
    (component,) = load_components(["cim-delivery"])
    assert component.name == "cim-delivery"
    assert isinstance(registry, Registry)
    context = DaemonContext(settings=settings(legacy_url), engine=engine, registry=registry, worker_id="test")

    async def main() -> None:
        async with asyncio.timeout(30):
            task = asyncio.create_task(supervise([component], context, handle_signals=False))
            while outbox_status(engine).counts.get("DELIVERED", 0) < 1:
                await asyncio.sleep(0.05)
            context.stop.set()
            await task

    asyncio.run(main())
    assert legacy_counts(legacy_engine)["legacy_interval_readings"] == 192


@pytest.mark.usefixtures("installed_outbox")
def test_a_constraint_refusal_fails_that_message_and_the_others_go_through(
        engine: Engine, legacy_url: str, legacy_engine: Engine) -> None:
    from sqlalchemy import text

    ids = meters(engine, ["M1"])
    with engine.begin() as connection:
        store_intervals(connection, day_rows(ids["M1"]))
        store_events(connection, [EventRow(ids["M1"], "0.0.99.98.0.255", 1, DAY + timedelta(hours=2))])
    # The legacy side added a column it requires: every event insert breaks a NOT NULL constraint.
    with legacy_engine.begin() as connection:
        connection.execute(text(
            "CREATE TABLE legacy_events (event_mrid VARCHAR(64) PRIMARY KEY, meter VARCHAR(64) NOT NULL, "
            "event_type VARCHAR(32) NOT NULL, event_time TIMESTAMP NOT NULL, event_log VARCHAR(24), "
            "event_code INTEGER, reason VARCHAR(255), message_id VARCHAR(64) NOT NULL, "
            "billing_ref VARCHAR(16) NOT NULL)"))
    delivery = Delivery(engine, settings(legacy_url), legacy_engine=legacy_engine)
    report = delivery.deliver_due()
    delivery.close()
    assert (report.delivered, report.failed) == (1, 1)
    states = {r.noun: (r.state, r.reason or "") for r in outbox_rows(engine)}
    assert states["MeterReadings"][0] == "DELIVERED"
    assert states["EndDeviceEvents"][0] == "FAILED" and "refused" in states["EndDeviceEvents"][1]
    counts = legacy_counts(legacy_engine)
    # The refused message left nothing behind: not even its cim_messages row (one transaction per message).
    assert counts["cim_messages"] == 1 and counts["legacy_interval_readings"] == 192 and counts["legacy_events"] == 0


@pytest.mark.usefixtures("installed_outbox")
def test_values_that_cannot_be_built_are_stored_and_recorded_discarded(engine: Engine,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    ids = meters(engine, ["BAD\x01SERIAL"])
    with caplog.at_level(logging.ERROR), engine.begin() as connection:
        assert store_intervals(connection, day_rows(ids["BAD\x01SERIAL"])) == 192  # the data is kept
    (row,) = outbox_rows(engine)
    assert row.state == "DISCARDED" and (row.reason or "").startswith("not built:") and row.item_count == 192
    assert "could not be put into a MeterReadings message" in caplog.text
    assert retry(engine, [row.message_id]) == 0  # nothing to deliver: it stays discarded
    assert outbox_status(engine).to_json()["discarded"] == 1


def test_a_broken_table_file_keeps_the_data_and_says_why(engine: Engine, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from hes.db.stored import listeners

    was_installed = outbox.on_stored in listeners()
    table = tmp_path / "broken.json"
    table.write_text("{ not json")
    monkeypatch.setenv("HES_CIM_TABLES", str(table))
    outbox.install_from_environment()  # what every hes command does at start: the file is read on first use
    try:
        ids = meters(engine, ["M1"])
        with engine.begin() as connection:
            assert store_intervals(connection, day_rows(ids["M1"])) == 192
    finally:
        if was_installed:
            outbox.install()
        else:
            outbox.uninstall()
    (row,) = outbox_rows(engine)
    assert row.state == "DISCARDED" and "not JSON" in (row.reason or "")
    monkeypatch.setenv("HES_CIM_OUTBOX", "off")
    outbox.install_from_environment()
    assert outbox.on_stored not in listeners()
    if was_installed:
        outbox.install()


@pytest.mark.usefixtures("installed_outbox")
def test_a_pass_can_be_bounded_and_releases_what_it_did_not_deliver(engine: Engine, legacy_url: str,
                                                                    legacy_engine: Engine) -> None:
    ids = meters(engine, ["M1"])
    with engine.begin() as connection:
        store_intervals(connection, day_rows(ids["M1"]) + day_rows(ids["M1"], DAY + timedelta(days=1))
                        + day_rows(ids["M1"], DAY + timedelta(days=2)))
    delivery = Delivery(engine, settings(legacy_url), legacy_engine=legacy_engine, batch=2)
    assert delivery.deliver_due(limit=1).delivered == 1
    assert all(r.claimed_by is None and r.lease_until is None for r in outbox_rows(engine))
    assert delivery.deliver_due().delivered == 2
    delivery.close()
    assert legacy_counts(legacy_engine)["legacy_interval_readings"] == 3 * 192
