"""N2PLoad's ``assemble``: the column-wise path for the usual buffer gives exactly the row-by-row result.

``hes.profiles.interval_rows`` builds a clean buffer's interval rows with C loops (``_columnwise``);
anything unusual (a missing or corrupted value) goes row by row. Both must agree on every row, its
order, quality bits, the watermark, the gaps and the observations, for buffers with statuses, filled
times, gaps and several time zones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hes.profiles
from hes.profiles import Dated, ProfileRead, ProfileShape
from protocols.cosem import CaptureObjectDefinition, ProfileColumn, ScalerUnit
from protocols.cosem.profile import ProfileRow
from protocols.errors import DecodeError
from protocols.obis import ObisCode
from scheduler.n2pload.assemble import Assembled, assemble
from scheduler.n2pload.plan import Kind, Plan

START = datetime(2026, 11, 1, tzinfo=UTC)
CLOCK = CaptureObjectDefinition(8, ObisCode.parse("0.0.1.0.0.255"), 2, 0)
STATUS = CaptureObjectDefinition(1, ObisCode.parse("0.0.96.10.7.255"), 2, 0)
CHANNELS = [CaptureObjectDefinition(3, ObisCode.parse(f"1.0.{c}.8.0.255"), 2, 0) for c in (1, 2, 3)]
PROFILE = Kind(ObisCode.parse("1.0.99.1.0.255"), "profile", "load profile")


def _shape(channels: int) -> ProfileShape:
    columns = (ProfileColumn.of(CLOCK, None), ProfileColumn.of(STATUS, None),
               *(ProfileColumn.of(d, ScalerUnit(-1, 30)) for d in CHANNELS[:channels]))
    return ProfileShape(columns, 900, CLOCK)


def _plan(first: bool, lost: set[datetime]) -> Plan:
    return Plan(meter_id=7, serial="M7", dc_id="DC1", start=START, end=START + timedelta(days=1), first=first,
                shape_text=None, open_gaps=[], lost_gaps=lost)


rows_strategy = st.lists(
    st.tuples(st.integers(1, 96), st.sampled_from([0, 0, 0, 1, 0x80, 0x81]), st.booleans(),
              st.sampled_from([0, 60, -300]), st.lists(st.integers(0, 2**31), min_size=3, max_size=3)),
    max_size=60, unique_by=lambda r: r[0])


def _read(raw: list[tuple[int, int, bool, int, list[int]]], channels: int, bad: object = None) -> ProfileRead:
    rows = []
    for index, status, filled, offset, values in sorted(raw):
        at = (START + timedelta(minutes=15 * index)).astimezone(timezone(timedelta(minutes=offset)))
        cells = [at, status, *values[:channels]]
        rows.append(ProfileRow(at, status, tuple(cells), filled))
    if bad is not None and rows:
        row = rows[len(rows) // 2]
        rows[len(rows) // 2] = row._replace(values=(*row.values[:-1], bad))
    return ProfileRead(_shape(channels), rows, False)


def _assembled(plan: Plan, read: ProfileRead) -> Assembled | DecodeError:
    try:
        return assemble(plan, PROFILE, read)
    except DecodeError as exc:
        return exc


def _both(plan: Plan, read: ProfileRead, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    fast = _assembled(plan, read)
    with monkeypatch.context() as patched:
        patched.setattr(hes.profiles, "_columnwise", lambda *args: None)
        slow = _assembled(plan, read)
    return fast, slow


@settings(max_examples=150, deadline=None)
@given(raw=rows_strategy, channels=st.integers(1, 3), first=st.booleans(), lose=st.booleans())
def test_the_column_wise_rows_equal_the_row_by_row_ones(raw: list[tuple[int, int, bool, int, list[int]]],
                                                        channels: int, first: bool, lose: bool) -> None:
    lost = {START + timedelta(minutes=15 * i) for i in range(1, 97)} if lose else set()
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = _both(_plan(first, lost), _read(raw, channels), monkeypatch)
    assert isinstance(fast, Assembled) and isinstance(slow, Assembled)
    assert fast.intervals == slow.intervals
    assert [type(row) for row in fast.intervals] == [type(row) for row in slow.intervals]
    assert (fast.mark, fast.found, fast.given_up, fast.observations) == (
        slow.mark, slow.found, slow.given_up, slow.observations)


@pytest.mark.parametrize("bad", [None, 1.5, b"\x01"])
def test_a_missing_or_corrupted_value_takes_the_row_by_row_path(bad: object, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = [(i, 0, False, 60, [i, 2 * i, 3 * i]) for i in range(1, 11)]
    read = _read(raw, 2, bad=bad)
    if bad is None:  # a None value: skipped, the other channel's value kept
        row = read.rows[5]
        read.rows[5] = row._replace(values=(*row.values[:-1], None))
    times = [r.time.astimezone(UTC) for r in read.rows]  # type: ignore[union-attr]
    dated = Dated(times, {r.time.astimezone(UTC): r for r in read.rows}, 0)  # type: ignore[union-attr]
    assert hes.profiles._columnwise(7, dated, [(2, "a", 2, 0, 30), (3, "b", 2, 0, 30)], set()) is None
    fast, slow = _both(_plan(True, set()), read, monkeypatch)
    if bad is None:
        assert isinstance(fast, Assembled) and isinstance(slow, Assembled)
        assert fast.intervals == slow.intervals and len(fast.intervals) == 19
    else:
        # A value that is not an integer: the same typed error either way, and no retry helps (the same answer).
        assert isinstance(fast, DecodeError) and isinstance(slow, DecodeError) and str(fast) == str(slow)
        assert "a value is not an integer" in str(fast) and not fast.retryable
