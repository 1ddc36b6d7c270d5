"""Orders (commands and their EXE/WARN/FAIL results), asset lifecycle events and the audit trail.

Sessions are the caller's: these functions add rows and flush (so ids and order numbers are
known), the caller commits with the rest of its unit of work.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hes.db.models import LIFECYCLE_KINDS, ORDER_STATES, AssetEvent, AuditEntry, Order, utcnow

__all__ = [
    "OrderStateError",
    "create_order",
    "finish_order",
    "get_order",
    "new_order_number",
    "record_asset_event",
    "record_audit",
    "start_order",
]


class OrderStateError(ValueError):
    """An order moved to a state it cannot take (a bug in the caller, not in the field)."""


def new_order_number(when: datetime | None = None) -> str:
    """A unique, sortable order number: ``ORD-YYYYMMDDTHHMMSS-xxxxxxxx`` (UTC, then 32 random bits)."""
    moment = (when or utcnow()).astimezone(UTC)
    return f"ORD-{moment:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def create_order(
    session: Session,
    meter_serial: str,
    command: str,
    parameters: dict[str, Any] | None = None,
    requested_by: str = "system",
    *,
    when: datetime | None = None,
) -> Order:
    """A PENDING order; its ``order_number`` is set and flushed."""
    created = when or utcnow()
    order = Order(
        order_number=new_order_number(created), meter_serial=meter_serial, command=command,
        parameters=dict(parameters or {}), requested_by=requested_by, created_at=created, state="PENDING",
    )
    session.add(order)
    session.flush()
    return order


def get_order(session: Session, order_number: str) -> Order | None:
    return session.execute(select(Order).where(Order.order_number == order_number)).scalar_one_or_none()


def start_order(session: Session, order: Order, *, when: datetime | None = None) -> None:
    if order.state != "PENDING":
        raise OrderStateError(f"order {order.order_number} is {order.state}, it cannot start")
    order.started_at = when or utcnow()
    session.flush()


def finish_order(
    session: Session,
    order: Order,
    state: str,
    *,
    observations: str | None = None,
    reason: str | None = None,
    when: datetime | None = None,
) -> None:
    """Record the result: EXE (no observations), WARN (with observations) or FAIL (with a reason)."""
    if state not in ORDER_STATES or state == "PENDING":
        raise OrderStateError(f"an order finishes as EXE, WARN or FAIL, not {state!r}")
    if order.state != "PENDING":
        raise OrderStateError(f"order {order.order_number} already finished as {order.state}")
    order.state = state
    order.observations = observations
    order.reason = reason
    order.finished_at = when or utcnow()
    if order.started_at is None:
        order.started_at = order.finished_at
    session.flush()


def record_asset_event(
    session: Session, meter_id: int, kind: str, detail: str | None = None, *, when: datetime | None = None
) -> AssetEvent:
    if kind not in LIFECYCLE_KINDS:
        raise ValueError(f"unknown lifecycle event {kind!r} (one of {', '.join(LIFECYCLE_KINDS)})")
    event = AssetEvent(meter_id=meter_id, kind=kind, at=when or utcnow(), detail=detail)
    session.add(event)
    session.flush()
    return event


def record_audit(session: Session, who: str, what: str, result: str, *, when: datetime | None = None) -> AuditEntry:
    """One line of the audit trail. ``what`` must never contain a key or a password."""
    entry = AuditEntry(who=who, at=when or utcnow(), what=what, result=result)
    session.add(entry)
    session.flush()
    return entry
