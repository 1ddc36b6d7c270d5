"""What the head-end reads and stores equals what an independent client (gurux-dlms) reads from the same meter.

The read goes through ``hes.reads.read_meter`` (checks, order, session, storage); the stored rows are
then compared with gurux's own read of the same point-to-point meter, and both with the simulator's
deterministic function. The field is frozen, so every value has one right answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.objects import GXDLMSRegister
from gurux_dlms.secure import GXDLMSSecureClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from hes.db.counters import counter_state
from hes.db.models import IntervalValue, Meter, RegisterReading
from hes.reads import read_meter
from hes.registry import Registry
from simulators.energy import INTERVAL, interval_index, profile_intervals, registers_at
from tests.hes.test_commands import FIELD_NOW, P2P_WRAPPER, SEED, FieldThread, small_field
from tests.peers.gurux_peer import decode_data as gurux_decode_data
from tests.simulators.test_peers_read import REGISTERS, GuruxSession, profile_rows

CLIENT_TITLE = bytes.fromhex("4755525558000001")  # gurux's own system title, distinct from the head-end's


def _gurux_client(field: FieldThread, serial: str, first_counter: int) -> GXDLMSSecureClient:
    security = field.fleet.security(serial)
    client = GXDLMSSecureClient(True, 1, 1, Authentication.HIGH_GMAC, None, InterfaceType.WRAPPER)
    client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
    client.ciphering.systemTitle = CLIENT_TITLE
    client.ciphering.blockCipherKey = security.ek
    client.ciphering.authenticationKey = security.ak
    # The meter keeps one replay counter per client SAP: continue above what the head-end used.
    client.ciphering.invocationCounter = first_counter
    return client


def test_stored_values_equal_gurux_reading_the_same_meter(registry: Registry, tmp_path: Path) -> None:
    day_end = FIELD_NOW.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day_start = day_end - timedelta(days=1)
    with FieldThread(small_field()) as field:
        assert field.fleet.security(P2P_WRAPPER).policy == "hls-gmac"
        registry.import_manifest(field.write_manifest(tmp_path / "fleet.json"))
        registers = asyncio.run(read_meter(registry, P2P_WRAPPER, "registers", requested_by="test",
                                           clock=lambda: FIELD_NOW))
        profile = asyncio.run(read_meter(registry, P2P_WRAPPER, "profile", start=day_start, end=day_end,
                                         requested_by="test", clock=lambda: FIELD_NOW))
        assert registers.state == "EXE" and profile.state == "EXE", (registers.reason, profile.reason)

        state = counter_state(registry.engine, P2P_WRAPPER, 1)
        assert state is not None
        session = GuruxSession(field.fleet.p2p(P2P_WRAPPER).port, _gurux_client(field, P2P_WRAPPER, state[0] + 100))
        try:
            session.open()
            gurux_registers = {ln: session.read(GXDLMSRegister(ln), 2) for ln in REGISTERS}
            gurux_rows = session.read_range(day_start + INTERVAL, day_end)
            session.release()
        finally:
            session.close()

    with Session(registry.engine) as db:
        meter_id = db.scalars(select(Meter.id).where(Meter.serial == P2P_WRAPPER)).one()
        readings = db.scalars(select(RegisterReading).where(RegisterReading.meter_id == meter_id))
        stored_registers = {row.obis: row.value for row in readings}
        stored_a_plus = sorted(
            (row.interval_end, row.value)
            for row in db.scalars(select(IntervalValue).where(
                IntervalValue.meter_id == meter_id, IntervalValue.obis == "1.0.1.8.0.255"))
        )

    # registers: stored (scaler 0, Wh) == gurux == the simulator's function
    expected = registers_at(SEED, P2P_WRAPPER, FIELD_NOW)
    for ln, name in REGISTERS.items():
        assert Decimal(stored_registers[ln]) == gurux_registers[ln] == getattr(expected, name), ln

    # a day of A+: stored == gurux == the simulator's function
    gurux_day = profile_rows([[gurux_decode_data(b"\x09\x0c" + bytes(r[0])), *r[1:]] for r in gurux_rows])
    first, last = interval_index(day_start), interval_index(day_end) - 1
    function_day = [row.a_plus for row in profile_intervals(SEED, P2P_WRAPPER, first, last)]
    assert len(stored_a_plus) == len(gurux_day) == len(function_day) == 96
    assert [Decimal(value) for _, value in stored_a_plus] == [row[2] for row in gurux_day] == function_day
    assert [when for when, _ in stored_a_plus] == [row[0] for row in gurux_day]
