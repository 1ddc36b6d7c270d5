"""The outbox's fast path (``cim.fast``) makes exactly the messages the general path makes, or leaves them to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, select

from cim import fast, messages, outbox
from cim.messages import CimError, CimMessage
from cim.reading_types import ReadingTypeEntry, default_tables
from hes.db.models import Meter
from hes.db.readings import IntervalRow, RegisterRow
from hes.db.stored import StoredBatch
from tests.cim.test_outbox import meters

STAMP = datetime(2024, 3, 2, 6, tzinfo=UTC)
START = datetime(2024, 2, 28, 20, tzinfo=UTC)
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"
# The defaults' channels in kWh, one in Wh whose OBIS is the start of another's, one in MWh, one in mWh (values
# written through Decimal), and one without an interval ReadingType (left out, logged).
CHANNELS = (A_PLUS, A_MINUS, "1.0.1.8.0.25", "1.0.2.29.0.255", "1.0.3.29.0.255", "1.0.3.8.0.255")
TABLES = replace(default_tables(), reading_types={
    **default_tables().reading_types,
    ("interval", "1.0.1.8.0.25"): ReadingTypeEntry("0.0.2.1.1.1.12.0.0.0.0.0.0.0.0.0.72.0", "Wh"),
    ("interval", "1.0.2.29.0.255"): ReadingTypeEntry("0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.6.72.0", "MWh"),
    ("interval", "1.0.3.29.0.255"): ReadingTypeEntry("0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.-3.72.0", "mWh"),
})
SERIALS = ["SIM000000007", "SIM000000003", "A&B<1>", "SIM000000012"]


def general(connection: Connection, batch: StoredBatch, config: outbox.OutboxConfig) -> list[CimMessage]:
    """What the outbox built before the fast path: ``cim_values`` then ``build_messages``."""
    values = outbox.cim_values(connection, batch.intervals, batch.registers, batch.events, config.tables,
                               missing=batch.missing)
    return outbox.build_messages(*values, config, batch.correlation_id, STAMP)


def outcome(build: Callable[[], list[CimMessage]]) -> list[CimMessage] | str:
    try:
        return build()
    except CimError as exc:
        return f"{type(exc).__name__}: {exc}"


def registered(engine: Engine) -> list[int]:
    """The meters' ids, registered by the first example (the engine is the test's, shared by its examples)."""
    with engine.connect() as connection:
        found: dict[str, int] = {serial: ident for serial, ident in connection.execute(select(Meter.serial, Meter.id))}
    if not found:
        found = meters(engine, SERIALS)
    return [found[serial] for serial in SERIALS]


def clean_day(meter_id: int, start: datetime, count: int = 96) -> list[IntervalRow]:
    return [IntervalRow(meter_id, obis, 2, start + timedelta(minutes=15 * (k + 1)), 999 + 1_000 * k + c, 0, 30, 0, 0)
            for k in range(count) for c, obis in enumerate((A_PLUS, A_MINUS))]


@st.composite
def batches(draw: st.DrawFn, ids: list[int]) -> tuple[StoredBatch, int]:
    """Several meters' rows crossing UTC midnight, now and then a row the fast path leaves to the general one."""
    intervals: list[IntervalRow] = []
    registers: list[RegisterRow] = []
    for meter_id in draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4, unique=True)):
        first = draw(st.integers(0, 40))
        count = draw(st.integers(1, 40))
        channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=3, unique=True))
        for k in range(first, first + count):
            for obis in channels:
                end = START + timedelta(minutes=15 * k)
                value: float = draw(st.one_of(st.integers(0, 10**9), st.integers(-2_000, 2_000)))
                status, quality, scaler, unit = 0, 0, 0, 30
                odd = draw(st.integers(0, 40))
                if odd == 1:
                    status = 0x80
                elif odd == 2:
                    quality = 1
                elif odd == 3:
                    value = float(value)  # as the database gives it back
                elif odd == 4:
                    value += 0.5
                elif odd == 5:
                    scaler = draw(st.sampled_from([-1, 1]))
                elif odd == 6:
                    unit = 31  # not the ReadingType's unit: left out, logged
                elif odd == 7:
                    end = end.astimezone(UTC).replace(microsecond=1)
                intervals.append(IntervalRow(meter_id, obis, 2, end, value, scaler, unit, status, quality))
        for day in range(3):
            if draw(st.booleans()):  # a daily closure (local midnight) or a register read
                time = START.replace(hour=23, minute=draw(st.sampled_from([0, 7]))) + timedelta(days=day - 1)
                registers.append(RegisterRow(meter_id, A_PLUS, time, draw(st.integers(0, 10**8)), 0, 30, -60))
    if intervals and draw(st.integers(0, 9)) == 0:
        intervals.append(draw(st.sampled_from(intervals)))  # a duplicate: the general path's error
    if draw(st.booleans()):
        intervals = draw(st.permutations(intervals))
    correlation = draw(st.sampled_from([None, "run:1", "plan & <2>"]))
    return StoredBatch(intervals=intervals, registers=registers, correlation_id=correlation), \
        draw(st.sampled_from([10_000, 40, 7]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_fast_path_gives_the_general_paths_messages_byte_for_byte(engine: Engine, data: st.DataObject) -> None:
    ids = registered(engine)
    batch, max_values = data.draw(batches(ids))
    config = outbox.OutboxConfig(TABLES, max_values=max_values)
    with engine.connect() as connection:
        expected = outcome(lambda: general(connection, batch, config))
        got = outcome(lambda: outbox.messages_for(connection, batch, config, STAMP))
    assert got == expected


def test_a_clean_store_is_written_by_the_fast_path_alone(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = meters(engine, SERIALS)
    rows = [row for meter_id in ids.values() for row in clean_day(meter_id, START.replace(hour=12))]
    batch = StoredBatch(intervals=rows, registers=[
        RegisterRow(meter_id, A_PLUS, START.replace(hour=23), 5_000_000 + meter_id, 0, 30, -60)
        for meter_id in ids.values()
    ], correlation_id="run:7")
    config = outbox.OutboxConfig(default_tables())
    built: list[object] = []
    real_build = messages._build

    def counted(*args: Any, **kwargs: Any) -> CimMessage:
        built.append(args[1])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(fast, "_build", counted)
    with engine.connect() as connection:
        expected = general(connection, batch, config)
        assert outbox.messages_for(connection, batch, config, STAMP) == expected
        assert built == []  # 4 meters x 2 UTC days, none through the general path
        assert len(expected) == 8

        # One interval with a status bit: its meter-day (only) through the general path, the same messages.
        flagged = list(rows)
        flagged[5] = flagged[5]._replace(status=0x80)
        batch = StoredBatch(intervals=flagged, registers=batch.registers, correlation_id="run:7")
        assert outbox.messages_for(connection, batch, config, STAMP) == general(connection, batch, config)
        assert len(built) == 1
