"""What a session needs to know of one meter and its concentrator: one statement, read by every path.

``meter_facts(connection, serial)`` reads the meter, its link, its (encrypted) keys and, behind a
DC, the DC's address, keys, medium, deadline and reachability, in one driver-level statement. The
checks (``hes.checks``), the targets (``hes.registry.Registry.target``) and N2PLoad's planning all
start from it: there is no second query for "the meter and its DC".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from concentrator.clock import ClockState
from concentrator.reachability import Reachability
from hes.db.sql import from_db, from_db_date, run, run_many

__all__ = ["ConcentratorFacts", "MeterFacts", "concentrator_facts", "meter_facts", "record_list_limits"]

_METER_SQL = (
    "SELECT m.id, m.serial, m.state, m.decommissioning_date, m.concentrator_id, m.logical_device, "
    "m.dc_physical_address, m.host, m.port, m.interface, m.server_sap, m.hdlc_physical_address, m.serial_device, "
    "m.client_sap, m.security_policy, m.system_title, m.password_enc, m.ek_enc, m.ak_enc, m.device_type, "
    "m.created_at, m.make, m.model, m.firmware, m.max_get_with_list, c.id, c.host, c.port, c.wport, c.client_sap, "
    "c.network_id, c.security_policy, c.system_title, "
    "c.password_enc, c.ek_enc, c.ak_enc, c.updated_at, c.medium, c.response_deadline_s, c.reachable, "
    "c.last_attempt, c.last_contact, c.unreachable_since, c.clock_checked_at, c.clock_deviation_s "
    "FROM meters m LEFT JOIN concentrators c ON c.id = m.concentrator_id WHERE m.serial = ?"
)
_CONCENTRATOR_SQL = (
    "SELECT c.id, c.host, c.port, c.wport, c.client_sap, c.network_id, c.security_policy, c.system_title, "
    "c.password_enc, c.ek_enc, c.ak_enc, c.updated_at, c.medium, c.response_deadline_s, c.reachable, "
    "c.last_attempt, c.last_contact, c.unreachable_since, c.clock_checked_at, c.clock_deviation_s "
    "FROM concentrators c WHERE c.id = ?"
)


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


@dataclass(frozen=True, slots=True)
class ConcentratorFacts:
    """A DC as a session through it needs it (keys still encrypted)."""

    id: str
    host: str
    port: int
    wport: int
    client_sap: int
    network_id: int
    security_policy: str
    system_title: bytes | None
    password_enc: bytes | None
    ek_enc: bytes | None
    ak_enc: bytes | None
    #: Moves whenever the DC's row changes (its keys, among others): caches of its security key on it.
    updated_at: datetime | None
    medium: str
    response_deadline: float | None
    #: In epoch seconds (``concentrator.reachability`` times).
    reachability: Reachability
    clock: ClockState


@dataclass(frozen=True, slots=True)
class MeterFacts:
    """A meter as the checks and a session need it (keys still encrypted); ``concentrator`` behind a DC."""

    id: int
    serial: str
    state: str
    decommissioning_date: date | None
    concentrator_id: str | None
    logical_device: int | None
    dc_physical_address: bytes | None
    host: str | None
    port: int | None
    interface: str | None
    server_sap: int | None
    hdlc_physical_address: int | None
    serial_device: str | None
    client_sap: int
    security_policy: str
    system_title: bytes | None
    password_enc: bytes | None
    ek_enc: bytes | None
    ak_enc: bytes | None
    device_type: str | None
    created_at: datetime | None
    make: str | None
    model: str | None
    firmware: str | None
    concentrator: ConcentratorFacts | None
    #: The GET-with-list limit learned from the meter's answers (None: not learned).
    max_get_with_list: int | None = None


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def meter_facts(connection: Connection, serial: str) -> MeterFacts | None:
    """The meter ``serial`` and its DC as stored, None when no such meter is registered."""
    row = run(connection, _METER_SQL, (serial,)).fetchone()
    if row is None:
        return None
    (ident, serial_, state, decommissioned, dc_id, logical_device, physical, host, port, interface, server_sap,
     hdlc_address, serial_device, client_sap, policy, title, password, ek, ak, device_type, created, make, model,
     firmware, list_limit, c_id) = row[:26]
    concentrator = None if c_id is None else _concentrator_cached(row[25:])
    return MeterFacts(
        int(ident), str(serial_), str(state), from_db_date(decommissioned), dc_id, _int(logical_device),
        _bytes(physical), host, _int(port), interface, _int(server_sap), _int(hdlc_address), serial_device,
        int(client_sap), str(policy), _bytes(title), _bytes(password), _bytes(ek), _bytes(ak), device_type,
        from_db(created), make, model, firmware, concentrator, _int(list_limit))


#: A DC's facts by its stored row: a pass reads the same DC row for each of its hundreds of meters.
_DC_FACTS: dict[tuple[Any, ...], ConcentratorFacts] = {}
_DC_FACTS_KEPT = 4096


def _concentrator_cached(row: Any) -> ConcentratorFacts:
    key = tuple(row)
    try:
        found = _DC_FACTS.get(key)
    except TypeError:  # a driver's value that cannot be a key (none of ours): no cache
        return _concentrator(key)
    if found is None:
        if len(_DC_FACTS) >= _DC_FACTS_KEPT:
            _DC_FACTS.clear()
        found = _DC_FACTS[key] = _concentrator(key)
    return found


def _concentrator(row: Any) -> ConcentratorFacts:
    (c_id, c_host, c_port, c_wport, c_sap, c_network, c_policy, c_title, c_password, c_ek, c_ak, c_updated, c_medium,
     c_deadline, c_reachable, c_attempt, c_contact, c_since, c_checked, c_deviation) = row
    reachability = Reachability.stored(None if c_reachable is None else bool(c_reachable),
                                       _seconds(from_db(c_attempt)), _seconds(from_db(c_contact)),
                                       _seconds(from_db(c_since)))
    return ConcentratorFacts(
        str(c_id), str(c_host), int(c_port), int(c_wport), int(c_sap), int(c_network), str(c_policy), _bytes(c_title),
        _bytes(c_password), _bytes(c_ek), _bytes(c_ak), from_db(c_updated), str(c_medium or "plc"),
        None if c_deadline is None else float(c_deadline), reachability,
        ClockState(from_db(c_checked), None if c_deviation is None else float(c_deviation)))


def concentrator_facts(connection: Connection, ident: str) -> ConcentratorFacts | None:
    """The DC ``ident`` as stored, None when no such concentrator is registered."""
    row = run(connection, _CONCENTRATOR_SQL, (ident,)).fetchone()
    return None if row is None else _concentrator(row)


def record_list_limits(connection: Connection, limits: Sequence[tuple[str, int]]) -> None:
    """Keep each meter's learned GET-with-list limit (serial, limit), in the caller's transaction.

    Only ever lowered: two sessions that learned different limits leave the smaller one."""
    run_many(connection, "UPDATE meters SET max_get_with_list = ? WHERE serial = ? "
                         "AND (max_get_with_list IS NULL OR max_get_with_list > ?)",
             [(limit, serial, limit) for serial, limit in limits])
