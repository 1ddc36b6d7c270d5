"""The exact bytes of built messages are pinned: a faster builder must give what the first one gave.

The files under ``tests/cim/golden/`` were written by the builder before its hot path was made
cheaper (a meter-day, a local day cut into two UTC meter-days, events with text to escape).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cim.messages import (
    CimMessage,
    DeviceEvent,
    IntervalReading,
    RegisterReading,
    split_end_device_events,
    split_meter_readings,
)
from cim.reading_types import default_tables

GOLDEN = Path(__file__).parent / "golden"
METER = "SIM000100001"
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"
STAMP = datetime(2024, 2, 28, 6, 30, 15, 123456, tzinfo=UTC)
CORRELATION = "plan-7/run-2026-11-30"


def meter_day() -> list[CimMessage]:
    """A UTC day of 96 x 2 intervals (two known missing) and two daily closures: one message."""
    day = datetime(2024, 2, 27, tzinfo=UTC)
    intervals = [
        IntervalReading(METER, obis, day + timedelta(minutes=15 * (k + 1)),
                        None if k in (10, 50) else 1_000_000 + 37 * k + channel)
        for channel, obis in enumerate((A_PLUS, A_MINUS))
        for k in range(96)
    ]
    registers = [
        RegisterReading(METER, A_PLUS, day + timedelta(days=1), 1_003_552, kind="daily"),
        RegisterReading(METER, A_MINUS, day + timedelta(days=1), 2_000_001, kind="daily"),
    ]
    return split_meter_readings(intervals, registers, correlation_id=CORRELATION, timestamp=STAMP, source="hes",
                                tables=default_tables())


def local_day() -> list[CimMessage]:
    """A local (UTC+1) day: two UTC meter-days, so two parts; qualities and a Decimal value."""
    start = datetime(2024, 2, 27, 23, tzinfo=UTC)
    intervals = [
        IntervalReading(METER, obis, start + timedelta(minutes=15 * (k + 1)), 1_000_000 + 37 * k + channel)
        for channel, obis in enumerate((A_PLUS, A_MINUS))
        for k in range(96)
    ]
    intervals[10] = IntervalReading(METER, A_PLUS, intervals[10].end, None)
    intervals[11] = IntervalReading(METER, A_PLUS, intervals[11].end, 1_000_407, ("1.2.32",))
    intervals[100] = IntervalReading(METER, A_MINUS, intervals[100].end, Decimal("1000.5"), ("1.4.5", "1.2.32"))
    registers = [
        RegisterReading(METER, A_PLUS, start + timedelta(days=1), 1_003_552, kind="daily"),
        RegisterReading(METER, A_MINUS, start + timedelta(days=1), 2_000_001, kind="daily"),
    ]
    return split_meter_readings(intervals, registers, correlation_id=CORRELATION, timestamp=STAMP, source="hes",
                                tables=default_tables())


def events() -> list[CimMessage]:
    start = datetime(2024, 2, 27, 23, tzinfo=UTC)
    return split_end_device_events(
        [DeviceEvent(METER, "0.0.99.98.0.255", 1, start + timedelta(hours=3), "Power down & <up>"),
         DeviceEvent(METER, "0.0.99.98.0.255", 2, start + timedelta(hours=4))],
        correlation_id=CORRELATION, timestamp=STAMP, tables=default_tables(),
    )


@pytest.mark.parametrize("name, build", [("meter_day", meter_day), ("local_day", local_day), ("events", events)])
def test_messages_are_byte_identical_to_the_pinned_ones(name: str, build: object) -> None:
    expected = json.loads((GOLDEN / "messages.json").read_text())
    messages = build()  # type: ignore[operator]  # one of the builders above
    assert messages
    for message in messages:
        file = f"{name}_{message.part}.xml" if message.parts > 1 else f"{name}.xml"
        assert message.xml == (GOLDEN / file).read_bytes(), file
        assert {
            "message_id": message.message_id, "noun": message.noun, "correlation_id": message.correlation_id,
            "part": message.part, "parts": message.parts, "set_id": message.set_id, "meters": list(message.meters),
            "count": message.count,
        } == expected[file]
    assert len(messages) == sum(1 for file in expected if file.startswith(f"{name}.") or file.startswith(f"{name}_"))


def test_readings_made_unchecked_give_the_same_bytes() -> None:
    """The outbox makes its readings with ``unchecked`` (values from storage): the message must not differ."""
    day = datetime(2024, 2, 27, tzinfo=UTC)
    intervals = [
        IntervalReading.unchecked(METER, obis, day + timedelta(minutes=15 * (k + 1)),
                                  None if k in (10, 50) else 1_000_000 + 37 * k + channel)
        for channel, obis in enumerate((A_PLUS, A_MINUS))
        for k in range(96)
    ]
    registers = [
        RegisterReading.unchecked(METER, A_PLUS, day + timedelta(days=1), 1_003_552, (), "daily"),
        RegisterReading.unchecked(METER, A_MINUS, day + timedelta(days=1), 2_000_001, (), "daily"),
    ]
    assert intervals[10].qualities == ("2.5.259",)
    messages = split_meter_readings(iter(intervals), iter(registers), correlation_id=CORRELATION, timestamp=STAMP,
                                    source="hes", tables=default_tables())
    assert [m.xml for m in messages] == [(GOLDEN / "meter_day.xml").read_bytes()]
    assert messages == meter_day()


@pytest.mark.parametrize("intervals, registers, error", [
    (["not a reading"], [], "intervals must be given as IntervalReading, not str"),
    ([], [3], "registers must be given as RegisterReading, not int"),
    # A duplicate found first still reports the wrong kind given later, as the checks always did.
    (["twice", "twice", 1.5], [], "intervals must be given as IntervalReading, not float"),
    (["twice", "twice"], [None], "registers must be given as RegisterReading, not NoneType"),
    (["twice", "twice"], [], "given twice: interval SIM000100001 1.0.1.8.0.255 2024-02-27T00:15:00Z"),
])
def test_wrong_inputs_give_the_errors_they_always_gave(intervals: list[object], registers: list[object],
                                                        error: str) -> None:
    from cim.messages import CimInputError

    reading = IntervalReading(METER, A_PLUS, datetime(2024, 2, 27, 0, 15, tzinfo=UTC), 1)
    given = [reading if item == "twice" else item for item in intervals]
    with pytest.raises(CimInputError, match=f"^{error}$"):
        split_meter_readings(given, registers, correlation_id=CORRELATION, timestamp=STAMP)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    meter=st.text(min_size=1, max_size=12).filter(lambda text: text.strip() != ""),
    correlation=st.one_of(st.none(), st.text(min_size=1, max_size=12).filter(lambda text: text.strip() != "")),
    source=st.sampled_from(["hes", "HES & <co>", "hés-1"]),
)
def test_messages_written_as_text_equal_what_lxml_writes(meter: str, correlation: str | None, source: str) -> None:
    """Whatever the serial, correlation and source: the text path gives lxml's bytes, or defers to lxml."""
    from cim import messages

    tables = default_tables()
    day = datetime(2024, 2, 27, tzinfo=UTC)
    readings: list[IntervalReading | RegisterReading] = [
        IntervalReading.unchecked(meter, A_PLUS, day + timedelta(minutes=15), 1_000_000, ("1.2.32",)),
        IntervalReading.unchecked(meter, A_MINUS, day + timedelta(minutes=15), None),
        RegisterReading.unchecked(meter, A_PLUS, day + timedelta(days=1), 1_003_552, (), "daily"),
    ]
    part = messages._Part(1, 2, "set-id")
    header = {"message_id": "id-1", "correlation_id": correlation, "timestamp": STAMP, "source": source, "part": part}
    try:
        payload = messages._meter_readings_payload(readings, tables)
        expected: bytes | None = messages._envelope("MeterReadings", payload, **header)  # type: ignore[arg-type]
    except (messages.CimInputError, ValueError):  # XML cannot carry it: the text path must not write it either
        expected = None
    written = messages._meter_readings_bytes(readings, tables, **header)  # type: ignore[arg-type]
    if written is not None:
        assert written == expected
    if meter.isalnum() and (correlation is None or correlation.isalnum()):
        assert written is not None  # plain text takes the text path
