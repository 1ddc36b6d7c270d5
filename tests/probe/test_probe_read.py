"""The field read over a pty pair against the simulated optical port, and its import into the head-end.

Every value is checked against ``simulators.energy`` and against what a remote read of the same
range stores; every test runs on SQLite and PostgreSQL (the ``registry`` fixture).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hes.db.counters import counter_state
from hes.db.models import AssetEvent, EventRecord, IntervalValue, Meter, RegisterReading
from hes.db.stored import StoredBatch, add_listener, remove_listener
from hes.events.models import ConcentratorEvent
from hes.probe.bundle import BundleError, write_bundle
from hes.probe.importer import import_bundle
from hes.probe.keys import KeyFile, export_key_file, open_key_file, write_key_file
from hes.probe.models import FieldImport
from hes.probe.read import WHATS, ProbeRequest, ProbeRequestError, ProbeWhat, Progress, WrongDevice, probe_read
from hes.probe.serial_link import OpticalLine
from hes.reads import read_meter
from hes.registry import Registry
from hes.session import Timeouts
from simulators.energy import interval_end, interval_index, profile_intervals, registers_at
from simulators.events import EventLog
from tests.probe.field import DC, DC_METERS, METER, SEED, OpticalField, optical_field

PASSPHRASE = "correct horse battery"
A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"
TIMEOUTS = Timeouts(connect=2.0, read=1.0, release=0.5, retries=1)


def probe(field: OpticalField, port_path: str, keys: KeyFile, request: ProbeRequest, *, retries: int = 2,
          seen: list[Progress] | None = None) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with asyncio.timeout(60):
            line = OpticalLine(port_path, settle=0.02, timeout=1.0, retries=retries)
            return await probe_read(line, keys, request, retries=retries, timeouts=TIMEOUTS,
                                    progress=(seen.append if seen is not None else None))

    return asyncio.run(read())


def counts(registry: Registry) -> tuple[int, int, int]:
    with Session(registry.engine) as session:
        return (session.scalar(select(func.count()).select_from(IntervalValue)) or 0,
                session.scalar(select(func.count()).select_from(RegisterReading)) or 0,
                session.scalar(select(func.count()).select_from(EventRecord)) or 0)


def stored_intervals(registry: Registry, serial: str) -> dict[tuple[datetime, str], float]:
    with Session(registry.engine) as session:
        rows = session.execute(select(IntervalValue.interval_end, IntervalValue.obis, IntervalValue.value)
                               .join(Meter, Meter.id == IntervalValue.meter_id).where(Meter.serial == serial))
        return {(end, obis): value for end, obis, value in rows}


def stored_registers(registry: Registry, serial: str) -> dict[tuple[datetime, str], float]:
    with Session(registry.engine) as session:
        rows = session.execute(select(RegisterReading.capture_time, RegisterReading.obis, RegisterReading.value)
                               .join(Meter, Meter.id == RegisterReading.meter_id).where(Meter.serial == serial))
        return {(at, obis): value for at, obis, value in rows}


def expected_profile(serial: str, start: datetime, end: datetime) -> dict[tuple[datetime, str], float]:
    """Intervals ending in (start, end], both channels, from the simulator's energy model."""
    first, last = interval_index(start), interval_index(end) - 1
    want: dict[tuple[datetime, str], float] = {}
    for row in profile_intervals(SEED, serial, first, last):
        at = interval_end(row.interval)
        want[at, A_PLUS] = row.a_plus
        want[at, A_MINUS] = row.a_minus
    return want


def export_and_open(registry: Registry, path: Path, **kwargs: Any) -> KeyFile:
    export_key_file(registry, path, PASSPHRASE, **kwargs)
    return open_key_file(path, PASSPHRASE)


# --- a meter --------------------------------------------------------------------------------------------------


def test_a_meter_read_at_its_optical_port_imports_the_values_a_remote_read_stores_exactly_once(
    registry: Registry, tmp_path: Path
) -> None:
    stored_batches: list[StoredBatch] = []

    def listener(_connection: object, batch: StoredBatch) -> None:
        stored_batches.append(batch)

    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export_and_open(registry, tmp_path / "keys.json", meters=[METER])
        block = keys.content.device(METER)
        assert block is not None and block.counters is not None  # HLS-GMAC: counters reserved for the probe
        hes_next = counter_state(registry.engine, METER, 1)
        assert hes_next is not None and hes_next[0] == block.counters.limit  # the head-end skips the block
        start, end = field.day()
        seen: list[Progress] = []
        payload = probe(field, field.meter_port.client_path, keys, ProbeRequest(WHATS, start, end), seen=seen)

        assert payload["partial"] is False and payload["why"] is None
        assert payload["device"] == {"kind": "meter", "id": METER, "identification": "/HES6\\2SIM00000001"}
        assert payload["tool"]["name"] == "hes probe" and payload["what"] == list(WHATS)
        (record,) = payload["meters"]
        assert record["read"] == list(WHATS) and record["failed"] == {}
        assert [(p.step, p.state) for p in seen] == [(w, s) for w in WHATS for s in ("start", "done")]
        # The probe used counters of its block only, and wrote the next free one back into the key file.
        used = open_key_file(tmp_path / "keys.json", PASSPHRASE).content.next_counters[f"{METER}/1"]
        assert block.counters.start < used <= block.counters.limit

        bundle = tmp_path / "meter.bundle"
        write_bundle(bundle, payload, keys.content.bundle_key)
        assert counts(registry) == (0, 0, 0)
        add_listener(listener)
        try:
            result = import_bundle(registry, bundle, who="tester")
        finally:
            remove_listener(listener)
        assert not result.already and result.meters == (METER,)
        assert (result.new_intervals, result.new_registers, result.new_events) == \
            (result.intervals, result.registers, result.events)
        after = counts(registry)
        assert after == (result.intervals, result.registers, result.events)
        assert result.intervals == 192  # a day of 15-minute intervals, two channels
        # The meter's last counter the probe accepted became the head-end's replay floor.
        assert record["client_sap"] == 1 and record["last_received"] is not None
        assert counter_state(registry.engine, METER, 1) == (block.counters.limit, record["last_received"])
        # The store listeners (the CIM outbox) saw the imported rows, under the import's correlation.
        assert {b.correlation_id for b in stored_batches} == {f"import:{result.bundle_id}"}
        assert sum(len(b.intervals) for b in stored_batches) == 192

        # The values are the simulator's.
        assert stored_intervals(registry, METER) == expected_profile(METER, start, end)
        truth = registers_at(SEED, METER, field.now)
        registers = stored_registers(registry, METER)
        assert registers[field.now, A_PLUS] == truth.a_plus and registers[field.now, A_MINUS] == truth.a_minus
        # Daily billing values: captured at the meters' local midnight (UTC+1), one in a UTC day.
        (midnight,) = {at for at, _ in registers if at != field.now}
        assert start < midnight < end and midnight.hour == 23
        daily = registers_at(SEED, METER, midnight)
        assert {obis: value for (at, obis), value in registers.items() if at == midnight} == {
            A_PLUS: daily.a_plus, "1.0.1.8.1.255": daily.a_plus_t1, "1.0.1.8.2.255": daily.a_plus_t2,
            A_MINUS: daily.a_minus}

        # Events: over a hundred days, where the meter's logs have entries (before any remote read: the
        # probe's counters lie below those the head-end takes after the export).
        since = field.now - timedelta(days=100)
        events = probe(field, field.meter_port.client_path, keys, ProbeRequest(("events",), since, field.now))
        write_bundle(tmp_path / "events.bundle", events, keys.content.bundle_key)
        imported = import_bundle(registry, tmp_path / "events.bundle")
        meter = field.fleet.meter(METER)
        want_events = {(f"0.0.99.98.{int(log)}.255", int(e.code), e.when) for log in EventLog
                       for e in meter.log_entries(log, field.now) if since <= e.when <= field.now}
        assert imported.new_events == imported.events == len(want_events) > 0
        with Session(registry.engine) as session:
            rows = session.execute(select(EventRecord.log_obis, EventRecord.event_code, EventRecord.event_time))
            assert {tuple(row) for row in rows} == want_events
        after = counts(registry)

        # Importing again changes nothing and says so.
        again = import_bundle(registry, bundle, who="tester")
        assert again.already and again.new == 0 and counts(registry) == after
        with Session(registry.engine) as session:
            assert session.scalar(select(func.count()).select_from(FieldImport)) == 2  # the day, the events
            details = session.scalars(select(AssetEvent.detail).where(AssetEvent.kind == "data received")
                                      .order_by(AssetEvent.id)).all()
            assert len(details) == 2 and result.bundle_id in (details[0] or "")

        # A remote read of the same range finds every row already stored, with the same values.
        before = stored_intervals(registry, METER), stored_registers(registry, METER)
        for what, since_ in (("profile", start), ("daily", start), ("events", since)):
            until = end if what != "events" else field.now
            remote = asyncio.run(read_meter(registry, METER, what, start=since_, end=until, requested_by="tester"))
            assert remote.ok and remote.stored == 0, (what, remote.reason, remote.stored)
        remote = asyncio.run(read_meter(registry, METER, "registers", requested_by="tester"))
        assert remote.ok and remote.stored == 0
        remote_profile = asyncio.run(read_meter(registry, METER, "profile", start=start, end=end,
                                                requested_by="tester"))
        assert {(v.time, v.obis): v.value for v in remote_profile.values} == expected_profile(METER, start, end)
        assert (stored_intervals(registry, METER), stored_registers(registry, METER)) == before
        assert counts(registry) == after


def test_another_meter_at_the_port_is_refused_on_its_serial_number(registry: Registry, tmp_path: Path) -> None:
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export_and_open(registry, tmp_path / "keys.json", meters=[METER])
        # The same keys filed under another serial: the association works, the identity check does not.
        device = keys.content.device(METER)
        assert device is not None
        content = replace(keys.content, devices=(replace(device, ident="P2P000000009"),))
        write_key_file(tmp_path / "other.json", content, PASSPHRASE)
        other = open_key_file(tmp_path / "other.json", PASSPHRASE)
        start, end = field.day()
        with pytest.raises(WrongDevice, match="the device answering is 'P2P000000001', not P2P000000009"):
            probe(field, field.meter_port.client_path, other, ProbeRequest(("profile",), start, end))


def test_requests_the_key_file_cannot_serve_are_refused_before_the_port_is_touched(
    registry: Registry, fleet_manifest: Any, tmp_path: Path
) -> None:
    registry.import_manifest(fleet_manifest[0])
    keys = export_and_open(registry, tmp_path / "keys.json", meters=["P2P000000000", "P2P000000001"])
    cases: list[tuple[ProbeRequest, str]] = [
        (ProbeRequest(("profile",)), "keys for 2 meters: name the one at the port with --meter"),
        (ProbeRequest(("profile",), meters=("SIM000100000",)), "no keys for meter SIM000100000"),
        (ProbeRequest(("profile",), concentrator=DC), f"no keys for concentrator {DC}"),
        (ProbeRequest(("voltage",), meters=("P2P000000000",)), "cannot read 'voltage'"),  # type: ignore[arg-type]
        (ProbeRequest(("profile",), datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC),
                      meters=("P2P000000000",)), "the range is empty"),
    ]
    for request, message in cases:
        with pytest.raises(ProbeRequestError, match=message):
            asyncio.run(probe_read("/nonexistent/tty", keys, request))


# --- a concentrator -----------------------------------------------------------------------------------------------


def test_a_concentrator_read_at_its_optical_port_gives_its_tables_and_its_meters_data(
    registry: Registry, tmp_path: Path
) -> None:
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export_and_open(registry, tmp_path / "keys.json", concentrator=DC)
        assert [d.ident for d in keys.content.devices] == [DC, *DC_METERS]
        end = field.now  # up to now: the DC logged its power-up when the field started
        start = end - timedelta(days=1)
        whats: tuple[ProbeWhat, ...] = ("profile", "events")
        payload = probe(field, field.dc_port.client_path, keys, ProbeRequest(whats, start, end, concentrator=DC))

        assert payload["partial"] is False, payload["why"]
        assert payload["device"] == {"kind": "concentrator", "id": DC, "identification": "/HES5\\2DC0001"}
        dc = payload["concentrator"]
        assert dc["id"] == DC and dc["clock"] == field.now.isoformat().replace("+00:00", "Z")
        assert dc["meter_table"]["columns"][0] == "0.128.96.1.0.255"
        assert [row[0] for row in dc["meter_table"]["rows"]] == list(DC_METERS)
        assert [row[2] for row in dc["meter_table"]["rows"]] == [True, True, True]  # commissioned
        assert [m["serial"] for m in payload["meters"]] == list(DC_METERS)
        assert all(m["via"] == f"concentrator {DC}" and m["read"] == list(whats) for m in payload["meters"])
        assert dc["events"] == [[dc["clock"], 2]]  # power up (IDIS code 2), at the field's start
        assert dc["client_sap"] == 1 and dc["last_received"] is not None  # the DC ciphers (HLS-GMAC)

        bundle = tmp_path / "dc.bundle"
        write_bundle(bundle, payload, keys.content.bundle_key)
        result = import_bundle(registry, bundle)
        assert result.device_kind == "concentrator" and result.device_id == DC
        assert result.meters == DC_METERS and result.new_intervals == 3 * 192
        for serial in DC_METERS:
            assert stored_intervals(registry, serial) == expected_profile(serial, start, end)
        assert (result.concentrator_events, result.new_concentrator_events) == (1, 1)
        with Session(registry.engine) as session:
            logged = session.execute(select(ConcentratorEvent.concentrator_id, ConcentratorEvent.event_code,
                                            ConcentratorEvent.event_time)).all()
            assert [tuple(row) for row in logged] == [(DC, 2, field.now)]
        again = import_bundle(registry, bundle)
        assert again.already and again.new == 0
        dc_counters = counter_state(registry.engine, DC, 1)
        assert dc_counters is not None and dc_counters[1] == dc["last_received"]
        with Session(registry.engine) as session:
            record = session.get(FieldImport, result.bundle_id)
            assert record is not None and record.detail["concentrator"]["meter_table"] == dc["meter_table"]
        # Through the head-end's own route (the DC over the WAN, gateway) the same rows are already there.
        for serial in DC_METERS:
            remote = asyncio.run(read_meter(registry, serial, "profile", start=start, end=end, requested_by="t"))
            assert remote.ok and remote.stored == 0, remote.reason


# --- partial reads ---------------------------------------------------------------------------------------------------


def test_a_probe_that_stops_answering_mid_read_gives_a_partial_bundle_importable_for_what_it_holds(
    registry: Registry, tmp_path: Path
) -> None:
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export_and_open(registry, tmp_path / "keys.json", meters=[METER])
        stopper = field.stop_after(12)  # the profile session needs fewer APDUs: the port stops during "daily"
        start, end = field.day()
        seen: list[Progress] = []
        payload = probe(field, field.meter_port.client_path, keys, ProbeRequest(WHATS, start, end), retries=1,
                        seen=seen)
        assert field.call(lambda: asyncio.wait_for(stopper.stopped.wait(), 5)) is True
        assert payload["partial"] is True and payload["stopped"] is True
        (record,) = payload["meters"]
        assert record["read"] == ["profile"] and list(record["failed"]) == ["daily"]
        assert payload["why"].startswith(f"{METER}: daily: ") and "after 2 tries" in payload["why"]
        assert ("daily", "retry") in [(p.step, p.state) for p in seen]
        assert ("daily", "failed") in [(p.step, p.state) for p in seen]

        bundle = tmp_path / "partial.bundle"
        write_bundle(bundle, payload, keys.content.bundle_key)
        result = import_bundle(registry, bundle)
        assert result.partial and result.new_intervals == 192 and result.registers == 0
        assert stored_intervals(registry, METER) == expected_profile(METER, start, end)


# --- refusals --------------------------------------------------------------------------------------------------------


def _made_bundle(registry: Registry, field: OpticalField, tmp_path: Path) -> tuple[Path, dict[str, Any], KeyFile]:
    registry.import_manifest(field.manifest)
    keys = export_and_open(registry, tmp_path / "keys.json", meters=[METER])
    start, end = field.day()
    payload = probe(field, field.meter_port.client_path, keys, ProbeRequest(("profile",), start, end))
    bundle = tmp_path / "meter.bundle"
    write_bundle(bundle, payload, keys.content.bundle_key)
    return bundle, payload, keys


def test_modified_forged_or_foreign_bundles_are_refused_whole(registry: Registry, tmp_path: Path) -> None:
    with optical_field(tmp_path) as field:
        bundle, payload, keys = _made_bundle(registry, field, tmp_path)
    # One digit of one interval value: the line after the first interval's end time in the file.
    lines = bundle.read_text().splitlines()
    first_end = payload["meters"][0]["intervals"][0][2]
    at = next(i for i, line in enumerate(lines) if line.strip() == f'"{first_end}",') + 1
    digits = lines[at].strip().rstrip(",")
    assert int(digits) == payload["meters"][0]["intervals"][0][3]
    lines[at] = lines[at].replace(digits, str(int(digits) ^ 1), 1)
    modified = tmp_path / "modified.bundle"
    modified.write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError, match="was modified after it was written"):
        import_bundle(registry, modified)

    broken = tmp_path / "broken.bundle"
    broken.write_bytes(bundle.read_bytes()[:-40])
    with pytest.raises(BundleError, match="not JSON"):
        import_bundle(registry, broken)

    # Re-signed with a key this head-end never issued (a forger without the key file).
    forged = tmp_path / "forged.bundle"
    write_bundle(forged, payload, b"\x00" * 32)
    with pytest.raises(BundleError, match="was modified after it was written"):
        import_bundle(registry, forged)

    foreign = tmp_path / "foreign.bundle"
    write_bundle(foreign, {**payload, "export_id": "00000000-0000-0000-0000-000000000000"}, keys.content.bundle_key)
    with pytest.raises(BundleError, match="which this head-end did not issue"):
        import_bundle(registry, foreign)

    # A key holder filing data under a meter the key file was not made for.
    stranger = json.loads(json.dumps(payload))
    stranger["meters"][0]["serial"] = "P2P000000000"
    strange = tmp_path / "stranger.bundle"
    write_bundle(strange, stranger, keys.content.bundle_key)
    with pytest.raises(BundleError, match="P2P000000000, for which its key file"):
        import_bundle(registry, strange)

    assert counts(registry) == (0, 0, 0)
    with Session(registry.engine) as session:
        assert session.scalar(select(func.count()).select_from(FieldImport)) == 0
    assert import_bundle(registry, bundle).new_intervals == 192  # the untouched bundle imports


def test_a_bundle_of_an_unregistered_meter_is_refused(registry: Registry, tmp_path: Path) -> None:
    with optical_field(tmp_path) as field:
        bundle, _payload, _keys = _made_bundle(registry, field, tmp_path)
    registry_meter = registry.show_meter(METER)
    with Session(registry.engine) as session, session.begin():
        meter = session.get(Meter, registry_meter.id)
        assert meter is not None
        meter.serial = "RENAMED0001"
    with pytest.raises(BundleError, match=f"meters {METER} of bundle .* are not registered"):
        import_bundle(registry, bundle)
    assert counts(registry) == (0, 0, 0)


def test_field_read_times_are_the_probe_clock(registry: Registry, tmp_path: Path) -> None:
    with optical_field(tmp_path) as field:
        _bundle, payload, _keys = _made_bundle(registry, field, tmp_path)
    started = datetime.fromisoformat(payload["started_at"])
    finished = datetime.fromisoformat(payload["finished_at"])
    assert started <= finished <= datetime.now(UTC) and finished - started < timedelta(minutes=5)


def test_after_a_remote_read_the_meter_refuses_the_older_counters_of_a_key_file(
    registry: Registry, tmp_path: Path
) -> None:
    with optical_field(tmp_path) as field:
        registry.import_manifest(field.manifest)
        keys = export_and_open(registry, tmp_path / "keys.json", meters=[METER])
        remote = asyncio.run(read_meter(registry, METER, "registers", requested_by="tester"))
        assert remote.ok
        payload = probe(field, field.meter_port.client_path, keys, ProbeRequest(("registers",)))
    (record,) = payload["meters"]
    assert payload["partial"] is True and record["read"] == []
    assert "invocation counter it has seen" in record["failed"]["registers"], record["failed"]


def test_two_imports_of_one_bundle_at_once_store_it_once(registry: Registry, tmp_path: Path) -> None:
    with optical_field(tmp_path) as field:
        bundle, payload, _keys = _made_bundle(registry, field, tmp_path)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _n: import_bundle(registry, bundle), range(2)))
    assert sorted(r.already for r in results) == [False, True]
    assert counts(registry) == (192, 0, 0)
    assert {r.bundle_id for r in results} == {payload["bundle_id"]}
