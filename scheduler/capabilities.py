"""The support check: can a meter run a command? From its device type, and from its own object list when read.

A command needs objects, and the meter's device type (``hes.devicetypes``) says where they are:
``profile`` its load profile, ``daily`` its daily values, ``events`` one of its event logs,
``registers`` its clock and one of its registers, ``clock`` its clock, ``disconnect`` and
``reconnect`` its disconnect control. A type without one of them (a meter without daily values,
without a relay) cannot run the command. When the meter's own object list is known (read from its
association, ``0.0.40.0.0.255`` attribute 2, by ``discover``, and kept in ``meter_objects``), the
objects must also be there. Objects are written ``class_id/OBIS``, e.g. ``7/1.0.99.1.0.255``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hes.db.engine import session_factory, storage_errors
from hes.db.models import utcnow
from hes.devicetypes import DeviceType
from hes.errors import HesError
from hes.model import ViaConcentrator
from hes.runner import Finish, Job, Observations
from hes.session import MeterSession
from protocols.axdr import DataTag
from protocols.cosem.association import ObjectListElement
from protocols.errors import DlmsError, ProtocolError
from protocols.obis import ObisCode
from scheduler.contract import Command, ExecutionContext
from scheduler.models import MeterObjects

__all__ = [
    "ASSOCIATION_LN",
    "CapabilityError",
    "discover",
    "meter_objects",
    "missing_object",
    "object_key",
    "record_meter_objects",
    "requirements",
]

ASSOCIATION_LN = ObisCode(0, 0, 40, 0, 0, 255)


class CapabilityError(HesError):
    """An object list that cannot be right (a malformed ``class_id/OBIS``), or a discovery that failed."""


def object_key(class_id: int, obis: ObisCode | str) -> str:
    return f"{class_id}/{obis}"


def requirements(device_type: DeviceType, command: Command) -> tuple[tuple[str, ...], ...] | None:
    """What ``command`` needs on a meter of ``device_type``: groups of objects, one of each group at least; None
    when the type has nothing the command could use."""
    kind = device_type
    if command == "profile":
        return ((object_key(7, kind.load_profile.obis),),)
    if command == "daily":
        return None if kind.daily is None else ((object_key(7, kind.daily.obis),),)
    if command == "events":
        return (tuple(object_key(7, log.obis) for log in kind.event_logs),) if kind.event_logs else None
    if command == "registers":
        return ((object_key(8, kind.clock),), tuple(object_key(r.class_id, r.obis) for r in kind.registers))
    if command == "clock":
        return ((object_key(8, kind.clock),),)
    return None if kind.relay is None else ((object_key(70, kind.relay),),)  # disconnect, reconnect


def missing_object(command: Command, device_type: DeviceType, objects: frozenset[str] | None) -> str | None:
    """None when a meter of ``device_type`` (with ``objects``, when its own list is known) can run ``command``;
    else what it lacks, for the report."""
    needed = requirements(device_type, command)
    if needed is None:
        return f"{command} objects in device type {device_type.name}"
    if objects is None:
        return None
    for group in needed:
        if not any(key in objects for key in group):
            return " or ".join(group)
    return None


def _normalise(objects: Iterable[str]) -> list[str]:
    out: set[str] = set()
    for text in objects:
        class_text, _, obis_text = text.strip().partition("/")
        try:
            out.add(object_key(int(class_text), ObisCode.parse(obis_text)))
        except (ValueError, DlmsError):
            raise CapabilityError(f"object {text!r} is not class_id/OBIS (e.g. 7/1.0.99.1.0.255)") from None
    return sorted(out)


def meter_objects(session: Session, meter_ids: Sequence[int]) -> dict[int, tuple[frozenset[str], str]]:
    """The object lists read from these meters (absent: not read), with where each came from."""
    known: dict[int, tuple[frozenset[str], str]] = {}
    ids = list(meter_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for meter_id, objects, source in session.execute(
                select(MeterObjects.meter_id, MeterObjects.objects, MeterObjects.source)
                .where(MeterObjects.meter_id.in_(chunk))):
            known[meter_id] = (frozenset(objects), f"object list read from the meter ({source})")
    return known


def _record(session: Session, meter_id: int, objects: Iterable[str], source: str) -> list[str]:
    normalised = _normalise(objects)
    row = session.get(MeterObjects, meter_id)
    if row is None:
        session.add(MeterObjects(meter_id=meter_id, objects=normalised, source=source, read_at=utcnow()))
    else:
        row.objects, row.source, row.read_at = normalised, source, utcnow()
    return normalised


def record_meter_objects(engine: Engine, meter_id: int, objects: Iterable[str], source: str) -> list[str]:
    """Cache the object list read from one meter (replaces the earlier one)."""
    with storage_errors(engine), session_factory(engine)() as session, session.begin():
        return _record(session, meter_id, objects, source)


async def discover(context: ExecutionContext, serial: str) -> list[str]:
    """Read the meter's object list from its association (end to end, through its DC's gateway) and cache it.

    An order of the one order runner (checks, counters, session, audit); a FAIL raises ``CapabilityError``
    with its reason.
    """

    async def body(session: MeterSession, _observations: Observations) -> tuple[list[str], str]:
        data = await session.get(15, ASSOCIATION_LN, 2)
        if data.tag != DataTag.ARRAY or not isinstance(data.value, list | tuple):
            raise ProtocolError(f"meter {serial}: the association's object list is not an array")
        elements = [ObjectListElement.from_data(element) for element in data.value]
        route = "gateway" if isinstance(session.target.route, ViaConcentrator) else "direct"
        return [object_key(e.class_id, e.logical_name) for e in elements], f"association {ASSOCIATION_LN}, {route}"

    def store(db: Session, finish: Finish, found: tuple[list[str], str]) -> tuple[int, str]:
        objects, source = found
        return len(_record(db, finish.device_id, objects, source)), f"{len(objects)} objects"

    # A large object list comes in blocks: a generous reservation, persisted before its first use.
    result = await context.runner().run(Job(serial, "discover objects", body, 64, store=store),
                                        requested_by=context.requested_by)
    if result.result is None or result.state == "FAIL":
        error = CapabilityError(result.reason or f"meter {serial}: no object list read")
        error.retryable = result.retryable
        raise error
    return _normalise(result.result[0])
