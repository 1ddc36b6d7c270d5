"""The support check: does a meter have the object a command reads? From its own object list, or its model's.

Two sources, the first that knows wins: the meter's own object list, read from its association
(``0.0.40.0.0.255`` attribute 2, by ``discover``) and cached in ``meter_objects``; else the list an
engineer declared for the meter's make and model (``declare_model``, ``model_objects``). When neither
knows the meter, the check cannot say no and the command runs (the meter's own answer then decides).
Objects are written ``class_id/OBIS``, e.g. ``7/1.0.99.1.0.255``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hes.commands import DISCONNECT_CONTROL
from hes.db.engine import session_factory, storage_errors
from hes.db.models import utcnow
from hes.errors import HesError
from hes.model import ViaConcentrator
from hes.reads import CLOCK, DAILY_VALUES, EVENT_LOGS, LOAD_PROFILE, REGISTERS
from hes.runner import Finish, Job, Observations
from hes.session import MeterSession
from protocols.axdr import DataTag
from protocols.cosem.association import ObjectListElement
from protocols.errors import DlmsError, ProtocolError
from protocols.obis import ObisCode
from scheduler.contract import Command, ExecutionContext
from scheduler.models import MeterObjects, ModelObjects

__all__ = [
    "ASSOCIATION_LN",
    "REQUIREMENTS",
    "CapabilityError",
    "KnownObjects",
    "declare_model",
    "discover",
    "known_objects",
    "missing_object",
    "object_key",
    "record_meter_objects",
]

ASSOCIATION_LN = ObisCode(0, 0, 40, 0, 0, 255)


class CapabilityError(HesError):
    """A declared object list that cannot be right (a malformed ``class_id/OBIS``)."""


def object_key(class_id: int, obis: ObisCode | str) -> str:
    return f"{class_id}/{obis}"


#: Per command: groups of objects; the meter must have at least one object of every group. These are
#: the objects the executors read (``hes.reads``): the daily values at 1.0.98.1.0.255 exactly, one
#: event log at least, the clock and one register at least for a register read; the relay orders act
#: on the disconnect control (IC 70) at 0.0.96.3.10.255.
REQUIREMENTS: Mapping[Command, tuple[tuple[str, ...], ...]] = {
    "profile": ((object_key(7, LOAD_PROFILE),),),
    "daily": ((object_key(7, DAILY_VALUES),),),
    "events": (tuple(object_key(7, obis) for obis, _ in EVENT_LOGS),),
    "registers": ((object_key(8, CLOCK),), tuple(object_key(3, obis) for obis, _ in REGISTERS)),
    "clock": ((object_key(8, CLOCK),),),
    "disconnect": ((object_key(70, DISCONNECT_CONTROL),),),
    "reconnect": ((object_key(70, DISCONNECT_CONTROL),),),
}


def _normalise(objects: Iterable[str]) -> list[str]:
    out: set[str] = set()
    for text in objects:
        class_text, _, obis_text = text.strip().partition("/")
        try:
            out.add(object_key(int(class_text), ObisCode.parse(obis_text)))
        except (ValueError, DlmsError):
            raise CapabilityError(f"object {text!r} is not class_id/OBIS (e.g. 7/1.0.99.1.0.255)") from None
    return sorted(out)


def missing_object(command: Command, objects: frozenset[str] | set[str]) -> str | None:
    """None when ``objects`` support ``command``; else which object is missing, for the report."""
    for group in REQUIREMENTS[command]:
        if not any(key in objects for key in group):
            return " or ".join(group)
    return None


@dataclass(frozen=True, slots=True)
class KnownObjects:
    """The objects a meter is known to have and where that knowledge comes from."""

    objects: frozenset[str]
    source: str


def known_objects(session: Session, meters: Sequence[tuple[int, str | None, str | None]]) -> dict[int, KnownObjects]:
    """For (meter id, make, model) triples: what is known of each meter's objects (absent: nothing known)."""
    known: dict[int, KnownObjects] = {}
    ids = [meter_id for meter_id, _, _ in meters]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for meter_id, objects, source in session.execute(
            select(MeterObjects.meter_id, MeterObjects.objects, MeterObjects.source)
            .where(MeterObjects.meter_id.in_(chunk))
        ):
            known[meter_id] = KnownObjects(frozenset(objects), f"object list read from the meter ({source})")
    models = {(make, model): frozenset(objects) for make, model, objects in
              session.execute(select(ModelObjects.make, ModelObjects.model, ModelObjects.objects))}
    if models:
        for meter_id, make, model in meters:
            declared = models.get((make or "", model or ""))
            if meter_id not in known and declared is not None:
                known[meter_id] = KnownObjects(declared, f"objects declared for {make} {model}")
    return known


def declare_model(engine: Engine, make: str, model: str, objects: Iterable[str]) -> list[str]:
    """Declare the objects every meter of ``make``/``model`` has (replaces an earlier declaration)."""
    if not make or not model:
        raise CapabilityError("a declaration needs both a make and a model")
    normalised = _normalise(objects)
    with storage_errors(engine), session_factory(engine)() as session, session.begin():
        row = session.get(ModelObjects, (make, model))
        if row is None:
            session.add(ModelObjects(make=make, model=model, objects=normalised, updated_at=utcnow()))
        else:
            row.objects, row.updated_at = normalised, utcnow()
    return normalised


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
