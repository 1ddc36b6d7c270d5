"""A DC's meter table: parsing what the DC sends (typed errors otherwise), reconciling it with the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concentrator.meter_table import (
    DEFAULT_LAYOUT,
    MeterTableEntry,
    RegisteredMeter,
    parse_meter_table,
    reconcile,
)
from protocols.axdr import Data, decode_data_exact, encode_data
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import DecodeError
from protocols.obis import ObisCode
from protocols.xdlms.selective_access import CaptureObjectDefinition

L = DEFAULT_LAYOUT
COLUMNS = [CaptureObjectDefinition(1, obis, 2) for obis in (L.serial, L.physical_address, L.commissioned, L.last_read,
                                                            L.reachable, L.logical_device, L.identification)]
READ = datetime(2028, 2, 29, 23, 45, tzinfo=UTC)
UNSPECIFIED = bytes([0xFF] * 8 + [0x80, 0x00, 0xFF, 0x00])


def row(serial: str, address: int, *, last: datetime | None = READ, wport: int = 256, ident: str = "HES-SIM SIM-A 1.0",
        reachable: bool = True) -> Data:
    stamp = UNSPECIFIED if last is None else CosemDateTime.from_datetime(
        last.astimezone(timezone(timedelta(hours=1))), deviation=-60).encode()
    return Data.structure((Data.visible_string(serial), Data.octet_string(address.to_bytes(2, "big")),
                           Data.boolean(True), Data.octet_string(stamp), Data.boolean(reachable),
                           Data.long_unsigned(wport), Data.visible_string(ident)))


def test_parses_the_simulated_dc_table_in_any_column_order() -> None:
    rows = Data.array((row("SIM1", 0x10), row("SIM2", 0x11, last=None, wport=257, reachable=False)))
    entries = parse_meter_table(COLUMNS, rows)
    assert entries == [
        MeterTableEntry("SIM1", b"\x00\x10", 256, True, READ, True, "HES-SIM SIM-A 1.0"),
        MeterTableEntry("SIM2", b"\x00\x11", 257, True, None, False, "HES-SIM SIM-A 1.0"),
    ]
    # The columns are found by their logical names, not their position; optional ones may be absent.
    order = [1, 0, 4]
    shuffled = Data.array(Data.structure(tuple(r.value[i] for i in order)) for r in rows.value)
    assert parse_meter_table([COLUMNS[i] for i in order], shuffled) == [
        MeterTableEntry("SIM1", b"\x00\x10", reachable=True), MeterTableEntry("SIM2", b"\x00\x11", reachable=False)]
    # Bytes round trip (what the session hands over is decoded from the wire).
    assert parse_meter_table(COLUMNS, decode_data_exact(encode_data(rows))) == entries


@pytest.mark.parametrize(("columns", "buffer", "message"), [
    (COLUMNS[1:], Data.array(()), "no column 0.128.96.1.0.255"),
    (COLUMNS, Data.structure(()), "not an array"),
    (COLUMNS, Data.array((Data.structure((Data.visible_string("A"),)),)), "structure of 7 columns"),
    (COLUMNS, Data.array((Data.structure((Data.long_unsigned(5), *row("A", 1).value[1:])),)), "expected a string"),
    (COLUMNS, Data.array((Data.structure((Data.visible_string(" "), *row("A", 1).value[1:])),)), "serial"),
    (COLUMNS, Data.array((Data.structure((Data.visible_string("A"), Data.boolean(True), *row("A", 1).value[2:])),)),
     "physical address"),
    (COLUMNS, Data.array((Data.structure((Data.octet_string(b"\xff\xfe"), *row("A", 1).value[1:])),)),
     "not printable"),
])
def test_an_unreadable_table_is_a_decode_error(columns: list[CaptureObjectDefinition], buffer: Data,
                                               message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        parse_meter_table(columns, buffer)


_DATA = st.recursive(
    st.one_of(st.builds(Data.visible_string, st.text(max_size=8)), st.builds(Data.octet_string, st.binary(max_size=14)),
              st.builds(Data.boolean, st.booleans()), st.builds(Data.long_unsigned, st.integers(0, 65535))),
    lambda inner: st.one_of(st.builds(lambda items: Data.structure(tuple(items)), st.lists(inner, max_size=8)),
                            st.builds(lambda items: Data.array(tuple(items)), st.lists(inner, max_size=4))),
    max_leaves=30)


@given(_DATA)
def test_any_table_gives_entries_or_a_decode_error(buffer: Data) -> None:
    try:
        entries = parse_meter_table(COLUMNS, buffer)
    except DecodeError:
        return
    assert all(isinstance(e, MeterTableEntry) and e.serial for e in entries)


def meter(serial: str, address: int | None, *, dc: str | None = "DC1", wport: int | None = 256,
          state: str = "commissioned", missing: datetime | None = None) -> RegisteredMeter:
    return RegisteredMeter(serial, state, dc, wport, None if address is None else address.to_bytes(2, "big"), missing)


def entry(serial: str, address: int, wport: int | None = 256) -> MeterTableEntry:
    return MeterTableEntry(serial, address.to_bytes(2, "big"), wport)


def test_reconciliation_sorts_every_case() -> None:
    since = READ - timedelta(days=2)
    table = [entry("SAME", 0x10), entry("NEW", 0x11, 300), entry("MOVED", 0x12, 257), entry("OTHER-DC", 0x13, 258),
             entry("BACK", 0x14, 259), entry("OLD", 0x15, 260), entry("NEW", 0x16), entry("CLASH", 0x10)]
    registry = [meter("SAME", 0x10), meter("MOVED", 0x40, wport=257), meter("OTHER-DC", 0x13, dc="DC2"),
                meter("BACK", 0x14, wport=259, missing=since), meter("OLD", 0x15, wport=260, state="decommissioned"),
                meter("GONE", 0x20), meter("LONG-GONE", 0x21, missing=since), meter("RETIRED", 0x22,
                                                                                  state="decommissioned")]
    result = reconcile("DC1", table, registry)
    assert [e.serial for e in result.discovered] == ["NEW"]
    assert [(r.serial, r.before) for r in result.readdressed] == [("MOVED", "DC1 LD 257 addr 0040")]
    assert [(r.serial, r.before, r.entry.physical_address) for r in result.relinked] == [
        ("OTHER-DC", "DC2 LD 256 addr 0013", b"\x00\x13")]
    assert [m.serial for m in result.returned] == ["BACK"]
    assert [m.serial for m in result.missing] == ["GONE"]
    assert [m.serial for m in result.still_missing] == ["LONG-GONE"]
    assert result.unchanged == 1
    assert result.ignored == (("OLD", "decommissioned in the registry"), ("NEW", "listed twice in the table"),
                              ("CLASH", "address 0010 is also SAME's in the table"))
    assert result.changes == 5
    assert result.summary() == ("concentrator DC1: 1 discovered, 1 missing, 1 readdressed, 1 relinked, 1 back, "
                                "1 unchanged, 1 still missing, 3 ignored")


def test_a_direct_meter_found_in_a_table_is_relinked_and_a_changed_logical_device_is_readdressed() -> None:
    result = reconcile("DC1", [entry("P2P", 0x10), entry("LD", 0x11, 400), entry("NO-LD", 0x12, None)],
                       [meter("P2P", None, dc=None, wport=None), meter("LD", 0x11, wport=399),
                        meter("NO-LD", 0x12, wport=300)])
    assert [(r.serial, r.before) for r in result.relinked] == [("P2P", "direct")]
    assert [r.serial for r in result.readdressed] == ["LD"]
    assert result.unchanged == 1  # a table without logical devices does not change the registry's


def test_an_unchanged_table_changes_nothing() -> None:
    result = reconcile("DC1", [entry("A", 1), entry("B", 2, 257)], [meter("A", 1), meter("B", 2, wport=257)])
    assert result.changes == 0 and result.unchanged == 2 and not result.ignored
    assert ObisCode(0, 128, 99, 1, 0, 255) == L.table
