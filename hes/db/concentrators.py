"""The concentrator model's storage: contacts, the DC's clock, and its meter table reconciled into the registry.

The rules are ``concentrator/``'s; this module only writes their results, each statement once:

- ``record_contacts``: the outcome of contacts with DCs (``concentrator.reachability.Contact``):
  reachable or not, the attempt, the last answer, since when it is down. One write per DC and call
  (a pass reads hundreds of meters through one DC in one transaction).
- ``record_clock``: a reading of a DC's clock (``concentrator.clock.ClockCheck``).
- ``apply_reconciliation``: what a DC's meter table means for the registry
  (``concentrator.meter_table.Reconciliation``): discovered meters added, addresses and links set,
  meters missing from the table flagged and cleared, each with its lifecycle event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from concentrator.clock import ClockCheck
from concentrator.meter_table import Reconciliation, RegisteredMeter
from concentrator.reachability import Contact, reached
from hes.db.models import Concentrator, Meter
from hes.db.orders import record_asset_event
from hes.db.sql import run, run_many, to_db

__all__ = ["SyncCounts", "apply_reconciliation", "record_clock", "record_contacts", "registered_for_table"]

_CONTACT_SQL = (
    "UPDATE concentrators SET reachable = ?, last_attempt = ?, "
    "last_contact = CASE WHEN ? THEN ? ELSE last_contact END, "
    "unreachable_since = CASE WHEN ? THEN NULL ELSE COALESCE(unreachable_since, ?) END WHERE id = ?"
)
_CLOCK_SQL = "UPDATE concentrators SET clock_checked_at = ?, clock_deviation_s = ? WHERE id = ?"


def record_contacts(connection: Connection, contacts: Sequence[tuple[str, Contact, datetime]]) -> None:
    """Store (DC id, contact outcome, when) for each DC; of several for one DC, the last one counts."""
    last: dict[str, tuple[Contact, datetime]] = {}
    for ident, contact, at in contacts:
        last[ident] = (contact, at)
    rows = []
    for ident, (contact, at) in last.items():
        up = reached(contact)
        when = to_db(connection, at)
        rows.append((up, when, up, when, up, when, ident))
    run_many(connection, _CONTACT_SQL, rows)


def record_clock(connection: Connection, check: ClockCheck) -> None:
    run(connection, _CLOCK_SQL, (to_db(connection, check.head_end_time), check.deviation, check.concentrator_id))


# --- the meter table --------------------------------------------------------------------------------------------


def registered_for_table(session: Session, concentrator_id: str, serials: Sequence[str]) -> list[RegisteredMeter]:
    """The registry's side of a reconciliation: the meters linked to the DC, and the table's serials known elsewhere."""
    columns = (Meter.serial, Meter.state, Meter.concentrator_id, Meter.logical_device, Meter.dc_physical_address,
               Meter.missing_since)
    found = {row[0]: row for row in session.execute(select(*columns).where(Meter.concentrator_id == concentrator_id))}
    wanted = [s for s in serials if s not in found]
    for start in range(0, len(wanted), 500):
        for row in session.execute(select(*columns).where(Meter.serial.in_(wanted[start:start + 500]))):
            found[row[0]] = row
    return [RegisteredMeter(serial, state, dc, logical_device, None if physical is None else bytes(physical), missing)
            for serial, state, dc, logical_device, physical, missing in found.values()]


@dataclass(frozen=True, slots=True)
class SyncCounts:
    """What ``apply_reconciliation`` changed."""

    added: int
    linked: int
    flagged: int
    cleared: int


def _identification(text: str | None, index: int) -> str | None:
    """MAKE MODEL FIRMWARE, as the simulated DC's table gives it (a part missing: None)."""
    parts = (text or "").split()
    return parts[index][:32] if len(parts) > index else None


def apply_reconciliation(session: Session, result: Reconciliation, now: datetime) -> SyncCounts:
    """Write a DC's reconciliation into the registry, with a lifecycle event per change, in the caller's transaction.

    Discovered meters are registered in state ``discovered``, linked to the DC (gateway address and
    logical device from the table) without keys: ``hes meter commission`` gives them.
    """
    dc = result.concentrator_id
    by_serial = {m.serial: m for m in session.scalars(select(Meter).where(Meter.serial.in_(
        [r.serial for r in (*result.readdressed, *result.relinked)]
        + [m.serial for m in (*result.missing, *result.returned)])))}
    added: list[tuple[Meter, str]] = []
    for entry in result.discovered:
        meter = Meter(serial=entry.serial, state="discovered", concentrator_id=dc, logical_device=entry.logical_device,
                      dc_physical_address=entry.physical_address, client_sap=1, security_policy="none",
                      make=_identification(entry.identification, 0), model=_identification(entry.identification, 1),
                      firmware=_identification(entry.identification, 2), created_at=now, updated_at=now)
        session.add(meter)
        added.append((meter, f"in the meter table of concentrator {dc} at address {entry.physical_address.hex()}"
                             + (f" ({entry.identification})" if entry.identification else "")))
    session.flush()
    for meter, detail in added:
        record_asset_event(session, meter.id, "discovered", detail, when=now)
    relinked = {r.serial for r in result.relinked}
    for relink in (*result.readdressed, *result.relinked):
        meter = by_serial[relink.serial]
        entry = relink.entry
        meter.concentrator_id, meter.dc_physical_address, meter.updated_at = dc, entry.physical_address, now
        if entry.logical_device is not None:
            meter.logical_device = entry.logical_device
        meter.host = meter.port = meter.interface = meter.server_sap = meter.hdlc_physical_address = None
        meter.serial_device = None
        now_at = f"{dc} LD {meter.logical_device} addr {entry.physical_address.hex()}"
        record_asset_event(session, meter.id, "relinked" if relink.serial in relinked else "readdressed",
                           f"was {relink.before}; now {now_at} (its meter table)", when=now)
    for registered in result.missing:
        meter = by_serial[registered.serial]
        meter.missing_since = now
        record_asset_event(session, meter.id, "missing from concentrator", f"no longer in the meter table of {dc}",
                           when=now)
    for registered in result.returned:
        meter = by_serial[registered.serial]
        meter.missing_since = None
        record_asset_event(session, meter.id, "back in concentrator", f"listed again in the meter table of {dc}",
                           when=now)
    row = session.get(Concentrator, dc)
    if row is not None:
        row.table_synced_at = now
    session.flush()
    return SyncCounts(len(added), len(result.readdressed) + len(result.relinked), len(result.missing),
                      len(result.returned))
