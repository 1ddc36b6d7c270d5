"""CIM message building: every kind valid against the IEC XSDs, values exact, stable MessageIDs, bounded parts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from cim.legacy import Schemas, parse_message
from cim.messages import (
    MESSAGE_NS,
    METER_READINGS_NS,
    CimInputError,
    DeviceEvent,
    IntervalReading,
    RegisterReading,
    UnknownEventType,
    UnknownReadingType,
    end_device_events_message,
    meter_readings_message,
    split_end_device_events,
    split_meter_readings,
)
from cim.reading_types import TableError, default_tables, load_tables
from tests.cim.conftest import assert_valid

DAY = datetime(2024, 2, 27, 23, 0, tzinfo=UTC)
M = {"m": MESSAGE_NS, "r": METER_READINGS_NS}
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"
A_PLUS_15 = "0.0.2.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"
DAILY_A_PLUS = "11.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0"


def day_of_intervals(meter: str = "SIM000100001", start: datetime = DAY) -> list[IntervalReading]:
    return [
        IntervalReading(meter, obis, start + timedelta(minutes=15 * (k + 1)), 1_000_000 + 37 * k + channel)
        for channel, obis in enumerate((A_PLUS, A_MINUS))
        for k in range(96)
    ]


def header(xml: bytes, name: str) -> str | None:
    found: str | None = etree.fromstring(xml).findtext(f"m:Header/m:{name}", namespaces=M)
    return found


def test_a_meter_day_validates_and_carries_the_values_exactly(schemas: Schemas) -> None:
    intervals = day_of_intervals()
    intervals[10] = IntervalReading("SIM000100001", A_PLUS, intervals[10].end, None)  # known missing
    intervals[11] = IntervalReading("SIM000100001", A_PLUS, intervals[11].end, 1_000_407, ("1.2.32",))
    registers = [
        RegisterReading("SIM000100001", A_PLUS, DAY + timedelta(days=1), 1_003_552, kind="daily"),
        RegisterReading("SIM000100001", "1.0.32.7.0.255", DAY + timedelta(hours=5, seconds=7), Decimal("231.4")),
    ]
    message = meter_readings_message(intervals, registers, correlation_id="R00000042", timestamp=DAY)
    assert_valid(message.xml, schemas)
    assert header(message.xml, "Verb") == "created" and header(message.xml, "Noun") == "MeterReadings"
    assert header(message.xml, "CorrelationID") == "R00000042" and header(message.xml, "Source") == "hes"
    assert header(message.xml, "MessageID") == message.message_id and header(message.xml, "Timestamp") == \
        "2024-02-27T23:00:00Z"
    root = etree.fromstring(message.xml)
    blocks = root.findall(".//r:IntervalBlocks", M)
    a_minus_15 = A_PLUS_15.replace(".1.1.1.", ".1.19.1.", 1)
    assert [b.find("r:ReadingType", M).get("ref") for b in blocks] == [A_PLUS_15, a_minus_15]
    first = blocks[0].findall("r:IntervalReadings", M)
    assert len(first) == 96 and first[0].findtext("r:timeStamp", namespaces=M) == "2024-02-27T23:15:00Z"
    assert first[0].findtext("r:value", namespaces=M) == "1000.000"  # 1 000 000 Wh in kWh
    assert first[1].findtext("r:value", namespaces=M) == "1000.037"
    assert first[10].find("r:value", M) is None
    assert [q.get("ref") for q in first[10].iterfind(".//r:ReadingQualityType", M)] == ["2.5.259"]
    assert [q.get("ref") for q in first[11].iterfind(".//r:ReadingQualityType", M)] == ["1.2.32"]
    readings = {r.find("r:ReadingType", M).get("ref"): r.findtext("r:value", namespaces=M)
                for r in root.iterfind(".//r:Readings", M)}
    assert readings == {DAILY_A_PLUS: "1003.552", "0.0.0.6.0.1.54.0.0.0.0.0.0.0.128.0.29.0": "231.4"}
    # What the integration step reads back is what was given.
    parsed = parse_message(message.xml, schemas)
    values = {(i["reading_type"], i["interval_end"]): i["value"] for i in parsed.intervals}
    for reading in intervals:
        code = A_PLUS_15 if reading.obis == A_PLUS else A_PLUS_15.replace(".1.1.1.", ".1.19.1.", 1)
        expected = None if reading.value is None else Decimal(reading.value).scaleb(-3)
        assert values[code, reading.end] == expected
    assert parsed.rows == 192 + 2 and parsed.skipped == 0


def test_events_validate_with_their_end_device_event_types(schemas: Schemas) -> None:
    events = [
        DeviceEvent("SIM000100001", "0.0.99.98.0.255", 1, DAY + timedelta(hours=3), "power down"),
        DeviceEvent("SIM000100001", "0.0.99.98.0.255", 2, DAY + timedelta(hours=4), "power up"),
        DeviceEvent("SIM000100001", "0.0.99.98.2.255", 62, DAY + timedelta(hours=5)),
        DeviceEvent("P2P000000001", "0-0:99.98.1*255", 44, DAY + timedelta(hours=6), "meter cover removed"),
    ]
    message = end_device_events_message(events, correlation_id="run:7", timestamp=DAY)
    assert_valid(message.xml, schemas)
    parsed = parse_message(message.xml, schemas)
    assert {(e["meter"], e["event_type"], e["event_code"], e["event_log"]) for e in parsed.events} == {
        ("SIM000100001", "3.26.0.85", 1, "0.0.99.98.0.255"), ("SIM000100001", "3.26.0.216", 2, "0.0.99.98.0.255"),
        ("SIM000100001", "3.31.0.68", 62, "0.0.99.98.2.255"), ("P2P000000001", "3.12.29.212", 44, "0.0.99.98.1.255"),
    }
    assert len({e["event_mrid"] for e in parsed.events}) == 4


def test_message_ids_are_stable_and_depend_on_what_is_carried() -> None:
    intervals = day_of_intervals()
    one = meter_readings_message(intervals, correlation_id="R1", timestamp=DAY)
    again = meter_readings_message(list(reversed(intervals)), correlation_id="R1", timestamp=DAY + timedelta(hours=1))
    assert one.message_id == again.message_id  # rebuilt later, in another order: the same id
    assert meter_readings_message(intervals, correlation_id="R2", timestamp=DAY).message_id != one.message_id
    assert meter_readings_message(intervals[:-1], correlation_id="R1", timestamp=DAY).message_id != one.message_id
    same = meter_readings_message(intervals, correlation_id="R1", timestamp=DAY)
    assert same.xml == one.xml  # deterministic bytes


def test_large_runs_are_split_per_meter_day_and_linked(schemas: Schemas) -> None:
    midnight = datetime(2024, 2, 28, tzinfo=UTC)  # a meter-day is a UTC day
    intervals = [*day_of_intervals("A", midnight), *day_of_intervals("A", midnight + timedelta(days=1)),
                 *day_of_intervals("B", midnight)]
    messages = split_meter_readings(intervals, correlation_id="run:3", timestamp=DAY)
    assert len(messages) == 3 and [m.count for m in messages] == [192, 192, 192]
    assert [m.meters for m in messages] == [("A",), ("A",), ("B",)]
    assert {m.set_id for m in messages} == {messages[0].set_id} and [m.part for m in messages] == [1, 2, 3]
    for message in messages:
        assert_valid(message.xml, schemas)
        properties = {p.findtext("m:Name", namespaces=M): p.findtext("m:Value", namespaces=M)
                      for p in etree.fromstring(message.xml).iterfind("m:Header/m:Property", M)}
        assert properties == {"part": str(message.part), "parts": "3", "setId": message.set_id}
    bounded = split_meter_readings(intervals, correlation_id="run:3", timestamp=DAY, max_values=50)
    assert all(m.count <= 50 for m in bounded) and sum(m.count for m in bounded) == len(intervals)
    carried = [(i["meter"], i["reading_type"], i["interval_end"]) for m in bounded
               for i in parse_message(m.xml).intervals]
    assert len(carried) == len(set(carried)) == len(intervals)
    assert len(split_meter_readings(intervals, correlation_id="x", timestamp=DAY, per="all")) == 1
    assert len(split_meter_readings(intervals, correlation_id="x", timestamp=DAY, per="meter")) == 2
    assert split_meter_readings([], correlation_id="x", timestamp=DAY) == []
    events = [DeviceEvent("A", "0.0.99.98.0.255", 1, DAY + timedelta(days=d, hours=1)) for d in range(3)]
    parts = split_end_device_events(events, correlation_id="x", timestamp=DAY)
    assert [m.count for m in parts] == [1, 1, 1]
    for message in parts:
        assert_valid(message.xml, schemas)


@given(st.integers(-10**15, 10**15), st.integers(-6, 6))
def test_numbers_are_written_exactly(raw: int, scaler: int) -> None:
    value: int | Decimal = raw if scaler >= 0 else Decimal(raw).scaleb(scaler)
    if scaler > 0:
        value = raw * 10**scaler
    message = meter_readings_message([IntervalReading("M", A_PLUS, DAY, value)], correlation_id="c", timestamp=DAY)
    text = etree.fromstring(message.xml).findtext(".//r:value", namespaces=M)
    assert Decimal(text) == Decimal(value).scaleb(-3)


def test_bad_inputs_are_typed_errors() -> None:
    naive = datetime(2024, 1, 1)
    with pytest.raises(CimInputError, match="naive"):
        IntervalReading("M", A_PLUS, naive, 1)
    with pytest.raises(CimInputError, match="OBIS"):
        IntervalReading("M", "not obis", DAY, 1)
    with pytest.raises(CimInputError, match="int or Decimal"):
        IntervalReading("M", A_PLUS, DAY, 1.5)  # type: ignore[arg-type]
    with pytest.raises(CimInputError, match="given twice"):
        meter_readings_message([IntervalReading("M", A_PLUS, DAY, 1)] * 2, correlation_id="c", timestamp=DAY)
    with pytest.raises(UnknownReadingType):
        meter_readings_message([IntervalReading("M", "1.0.99.99.0.255", DAY, 1)], correlation_id="c", timestamp=DAY)
    with pytest.raises(UnknownEventType):
        end_device_events_message([DeviceEvent("M", "0.0.99.98.0.255", 250, DAY)], correlation_id="c",
                                  timestamp=DAY)
    with pytest.raises(CimInputError, match="XML"):
        meter_readings_message([IntervalReading("M\x01", A_PLUS, DAY, 1)], correlation_id="c", timestamp=DAY)
    with pytest.raises(CimInputError, match="at least one"):
        meter_readings_message([], correlation_id="c", timestamp=DAY)
    with pytest.raises(CimInputError, match="max_values"):
        split_meter_readings(day_of_intervals(), correlation_id="c", timestamp=DAY, max_values=0)


def test_text_is_escaped_and_times_normalised_to_utc(schemas: Schemas) -> None:
    plus_one = timezone(timedelta(hours=1))
    reading = IntervalReading("A&B<C>", A_PLUS, datetime(2024, 2, 28, 0, 15, tzinfo=plus_one), 5)
    message = meter_readings_message([reading], correlation_id="c&d", timestamp=DAY)
    assert_valid(message.xml, schemas)
    parsed = parse_message(message.xml)
    assert parsed.intervals[0]["meter"] == "A&B<C>" and parsed.correlation_id == "c&d"
    assert parsed.intervals[0]["interval_end"] == datetime(2024, 2, 27, 23, 15, tzinfo=UTC)
    # Stored outside any order or plan run: no CorrelationID at all (the schema makes it optional).
    uncorrelated = meter_readings_message([reading], correlation_id=None, timestamp=DAY)
    assert_valid(uncorrelated.xml, schemas)
    assert header(uncorrelated.xml, "CorrelationID") is None and uncorrelated.message_id != message.message_id


def test_tables_from_a_file_replace_the_defaults(tmp_path: Path) -> None:
    table = tmp_path / "cim.json"
    table.write_text(json.dumps({
        "reading_types": [{"kind": "interval", "obis": "1-0:1.8.0*255", "code": "0.0.7.4.1.1.12.0.0.0.0.0.0.0.0.0.72.0",
                           "name": "hourly A+ delta Wh"}],
        "event_types": [{"code": 1, "type": "3.26.0.85", "name": "outage"}],
        "status_bits": {"7": "1.2.32"},
        "quality_bits": {"2": "2.5.259"},
    }))
    tables = load_tables(table)
    message = meter_readings_message([IntervalReading("M", A_PLUS, DAY, 1234)], correlation_id="c", timestamp=DAY,
                                     tables=tables)
    assert etree.fromstring(message.xml).findtext(".//r:value", namespaces=M) == "1234"  # multiplier 0: Wh
    assert tables.status_qualities(0x80) == ("1.2.32",) and tables.quality_qualities(0x04) == ("2.5.259",)
    assert tables.event_type("0.0.99.98.1.255", 1).code == "3.26.0.85"  # no log: any log
    for bad, match in [("{", "not JSON"), ("[]", "JSON object"),
                       ('{"reading_types": [{"kind": "x", "obis": "1.0.1.8.0.255", "code": "1", "name": "n"}]}',
                        "kind"),
                       ('{"status_bits": {"40": "1.2.32"}}', "bit number"),
                       ('{"quality_bits": {"1": "bad"}}', "quality code")]:
        table.write_text(bad)
        with pytest.raises(TableError, match=match):
            load_tables(table)
    with pytest.raises(TableError, match="cannot read"):
        load_tables(tmp_path / "missing.json")
    assert default_tables().reading_type(A_PLUS, "daily").code == DAILY_A_PLUS
