"""Delivery of the CIM outbox into the legacy integration database, with re-injection of failures.

``Delivery(engine, settings).deliver_due()`` claims the messages that are due (PENDING, or FAILED
whose re-injection time has come) in batches, integrates each one (``cim.legacy.integrate``: one
legacy transaction per message, ``ON CONFLICT DO NOTHING`` on the MessageID and on every row
identity) and records the outcome on the HES side:

- DELIVERED: in the legacy database (also when it was there already: a re-delivery is a no-op);
- DISCARDED, with the reason: the integration step refuses it for good (no readings, load-curve or
  event identifiers);
- FAILED, with the reason and ``next_attempt_at`` = now + ``HES_CIM_REINJECT_AFTER`` (1 hour by
  default): the legacy database is down or refused it, or the message is not valid. It is then
  re-injected as it is, same XML and MessageID. When the legacy database cannot be reached, the
  rest of the batch is marked FAILED with the same reason and the pass stops (no hammering).

Claims are leases (``lease_until``, ``claimed_by``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so
several ``hes run`` workers share the outbox and a killed worker's claim lapses. A worker killed
after integrating but before recording the outcome leaves the message due again; its second
integration is a no-op on the legacy side. Delivered exactly once either way.

Validation: always the structure the integration needs (well-formed, envelope fields, a payload
of the Noun, identifiers); also against the IEC XSDs when ``HES_CIM_XSD_DIR`` names their folder
(the XSDs are not shipped with the project).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Table, func, or_, select, update

from cim.legacy import Discarded, InvalidMessage, Schemas, integrate, load_schemas
from cim.models import OUTBOX_STATES, OutboxMessage
from hes.config import Settings, redact_url
from hes.daemon import DaemonContext
from hes.db.engine import StorageError, create_engine_for, storage_errors
from hes.db.models import utcnow
from hes.errors import FAILURES

__all__ = [
    "CimDeliveryComponent",
    "Delivery",
    "DeliveryReport",
    "OutboxStatus",
    "component",
    "outbox_status",
    "retry",
]

logger = logging.getLogger(__name__)

_OUTBOX = cast(Table, OutboxMessage.__table__)
#: How long a claim keeps other workers away from a message.
LEASE = timedelta(minutes=5)
#: How often ``hes run`` looks for due messages.
POLL_S = 5.0


@dataclass(slots=True)
class DeliveryReport:
    """What one pass did."""

    delivered: int = 0
    discarded: int = 0
    failed: int = 0
    reasons: list[str] = field(default_factory=list)  # one per failed or discarded message, "ID: reason"

    def to_json(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "discarded": self.discarded, "failed": self.failed,
                "reasons": self.reasons}


class Delivery:
    """Delivers the outbox of ``engine`` into the legacy database of ``settings`` (or ``legacy_engine``)."""

    def __init__(
        self, engine: Engine, settings: Settings, *, legacy_engine: Engine | None = None, worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow, batch: int = 100,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.legacy = legacy_engine if legacy_engine is not None else _legacy_engine(settings.legacy_database_url)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.batch = batch
        self.reinject_after = timedelta(seconds=settings.cim_reinject_after_s)
        self.schemas: Schemas | None = None if settings.cim_xsd_dir is None else load_schemas(settings.cim_xsd_dir)

    def _claim(self, now: datetime) -> list[tuple[str, bytes]]:
        """Up to ``batch`` due messages, leased to this worker (oldest first)."""
        due = (
            select(_OUTBOX.c.message_id)
            .where(_OUTBOX.c.state.in_(("PENDING", "FAILED")), _OUTBOX.c.next_attempt_at <= now,
                   or_(_OUTBOX.c.lease_until.is_(None), _OUTBOX.c.lease_until < now))
            .order_by(_OUTBOX.c.created_at, _OUTBOX.c.message_id)
            .limit(self.batch)
        )
        if self.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        with storage_errors(self.engine), self.engine.begin() as connection:
            ids = list(connection.scalars(due))
            if not ids:
                return []
            connection.execute(update(_OUTBOX).where(_OUTBOX.c.message_id.in_(ids))
                               .values(lease_until=now + LEASE, claimed_by=self.worker_id))
            rows = connection.execute(select(_OUTBOX.c.message_id, _OUTBOX.c.xml)
                                      .where(_OUTBOX.c.message_id.in_(ids)))
            xml = {message_id: bytes(body) for message_id, body in rows}
        return [(message_id, xml[message_id]) for message_id in ids]

    def _record(self, message_id: str, state: str, reason: str | None, now: datetime) -> None:
        values: dict[str, Any] = {"state": state, "reason": reason, "lease_until": None, "claimed_by": None,
                                  "attempts": _OUTBOX.c.attempts + 1}
        if state == "DELIVERED":
            values["delivered_at"] = now
        elif state == "FAILED":
            values["next_attempt_at"] = now + self.reinject_after
        with storage_errors(self.engine), self.engine.begin() as connection:
            connection.execute(update(_OUTBOX).where(_OUTBOX.c.message_id == message_id,
                                                     _OUTBOX.c.claimed_by == self.worker_id).values(**values))

    def deliver_due(self, limit: int | None = None) -> DeliveryReport:
        """One pass: deliver what is due now (at most ``limit`` messages); ``StorageError`` if the HES DB is down."""
        report = DeliveryReport()
        done = 0
        while limit is None or done < limit:
            now = self.clock()
            claimed = self._claim(now)
            if not claimed:
                break
            for index, (message_id, xml) in enumerate(claimed):
                if limit is not None and done >= limit:
                    self._release([m for m, _ in claimed[index:]])
                    return report
                done += 1
                try:
                    integrate(self.legacy, xml, expected_id=message_id, schemas=self.schemas, now=self.clock())
                except Discarded as exc:
                    self._outcome(report, message_id, "DISCARDED", str(exc))
                except InvalidMessage as exc:
                    self._outcome(report, message_id, "FAILED", f"invalid message: {exc}")
                except StorageError as exc:
                    self._outcome(report, message_id, "FAILED", f"legacy database: {exc}")
                    if exc.retryable:  # down: the rest of the batch would fail alike
                        for other, _ in claimed[index + 1:]:
                            self._outcome(report, other, "FAILED", f"legacy database: {exc}")
                        return report
                except FAILURES as exc:
                    self._outcome(report, message_id, "FAILED", str(exc))
                else:
                    self._record(message_id, "DELIVERED", None, self.clock())
                    report.delivered += 1
        return report

    def _outcome(self, report: DeliveryReport, message_id: str, state: str, reason: str) -> None:
        now = self.clock()
        self._record(message_id, state, reason, now)
        if state == "DISCARDED":
            report.discarded += 1
            logger.warning("CIM message %s discarded: %s", message_id, reason)
        else:
            report.failed += 1
            logger.warning("CIM message %s failed, re-injected at %s: %s", message_id,
                           (now + self.reinject_after).isoformat(), reason)
        report.reasons.append(f"{message_id}: {reason}")

    def _release(self, ids: list[str]) -> None:
        with storage_errors(self.engine), self.engine.begin() as connection:
            connection.execute(update(_OUTBOX).where(_OUTBOX.c.message_id.in_(ids),
                                                     _OUTBOX.c.claimed_by == self.worker_id)
                               .values(lease_until=None, claimed_by=None))

    def close(self) -> None:
        self.legacy.dispose()


def _legacy_engine(url: str) -> Engine:
    # A bounded connect: an unreachable legacy database must fail the attempt, not hang the worker.
    if url.startswith("postgresql"):
        return create_engine_for(url, connect_args={"connect_timeout": 10}, pool_pre_ping=True)
    return create_engine_for(url)


# --- status and re-injection by hand --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """Messages by state, the oldest waiting one, the next re-injection, the last failure."""

    counts: dict[str, int]
    oldest_pending: datetime | None
    next_reinjection: datetime | None
    last_failure: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            **{state.lower(): self.counts.get(state, 0) for state in OUTBOX_STATES},
            "oldest_pending": None if self.oldest_pending is None else _iso(self.oldest_pending),
            "next_reinjection": None if self.next_reinjection is None else _iso(self.next_reinjection),
            "last_failure": self.last_failure,
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def outbox_status(engine: Engine) -> OutboxStatus:
    """Counts by state and the oldest message not yet delivered (PENDING or FAILED)."""
    with storage_errors(engine), engine.connect() as connection:
        counts = {state: int(n) for state, n in connection.execute(
            select(_OUTBOX.c.state, func.count()).group_by(_OUTBOX.c.state))}
        waiting = _OUTBOX.c.state.in_(("PENDING", "FAILED"))
        oldest = connection.scalar(select(func.min(OutboxMessage.created_at)).where(waiting))
        following = connection.scalar(select(func.min(OutboxMessage.next_attempt_at))
                                      .where(_OUTBOX.c.state == "FAILED"))
        last = connection.execute(
            select(_OUTBOX.c.message_id, _OUTBOX.c.reason).where(_OUTBOX.c.state == "FAILED")
            .order_by(_OUTBOX.c.next_attempt_at.desc()).limit(1)).first()
    return OutboxStatus(counts, oldest, following, None if last is None else f"{last[0]}: {last[1]}")


def retry(engine: Engine, message_ids: list[str] | None, *, now: datetime | None = None) -> int:
    """Make FAILED messages (all when ``message_ids`` is None) due now, and DISCARDED ones named by id PENDING again.

    Returns how many were changed.
    """
    at = now or utcnow()
    with storage_errors(engine), engine.begin() as connection:
        if message_ids is None:
            condition = _OUTBOX.c.state == "FAILED"
        else:
            # An entry recorded without XML (values that could not be built) has nothing to deliver.
            condition = _OUTBOX.c.message_id.in_(message_ids) & _OUTBOX.c.state.in_(("FAILED", "DISCARDED")) \
                & (func.length(_OUTBOX.c.xml) > 0)
        result = connection.execute(update(_OUTBOX).where(condition)
                                    .values(state="PENDING", next_attempt_at=at, lease_until=None, claimed_by=None))
        return int(result.rowcount)


# --- the daemon's component -----------------------------------------------------------------------------------------


class CimDeliveryComponent:
    """``hes run``'s CIM delivery: a pass every few seconds (in a thread: the database calls block)."""

    name = "cim-delivery"

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s

    async def run(self, context: DaemonContext) -> None:
        delivery = Delivery(context.engine, context.settings, worker_id=context.worker_id)
        logger.info("CIM delivery into %s", redact_url(context.settings.legacy_database_url))
        try:
            while not context.stop.is_set():
                report = await asyncio.to_thread(delivery.deliver_due)
                if report.delivered or report.failed or report.discarded:
                    logger.info("CIM delivery: %d delivered, %d failed, %d discarded", report.delivered,
                                report.failed, report.discarded)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(context.stop.wait(), timeout=self.poll_s)
        finally:
            delivery.close()


def component() -> CimDeliveryComponent:
    """The factory ``cli/run.py`` names in ``COMPONENTS``."""
    return CimDeliveryComponent()
