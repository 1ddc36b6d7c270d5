"""The outbox's driver-level INSERT stores exactly the row the SQLAlchemy Core insert stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, insert, text

from cim.messages import CimMessage
from cim.models import OutboxMessage
from cim.outbox import write_messages

OUTBOX = cast(Table, OutboxMessage.__table__)
NOW = datetime(2026, 11, 30, 16, 5, 7, 123456, tzinfo=UTC)


def message(message_id: str, correlation: str | None) -> CimMessage:
    return CimMessage(message_id, "MeterReadings", correlation, 2, 3, "set-1", ("M1", "M2"), 192,
                      "<?xml version='1.0' encoding='UTF-8'?>\n<a>é</a>".encode())


def raw(engine: Engine, message_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM cim_outbox WHERE message_id = :id"), {"id": message_id}).one()
    found = dict(row._mapping)
    found.pop("message_id")
    found["xml"] = bytes(found["xml"])
    return found


def test_written_rows_equal_what_a_core_insert_stores(engine: Engine) -> None:
    with engine.begin() as connection:
        write_messages(connection, [message("driver-1", "R" * 300), message("driver-2", None)], NOW)
        connection.execute(insert(OUTBOX), [
            {"message_id": f"core-{n}", "noun": "MeterReadings", "correlation_id": correlation, "set_id": "set-1",
             "part": 2, "parts": 3, "meters": "M1,M2", "item_count": 192, "xml": message("x", None).xml,
             "state": "PENDING", "attempts": 0, "reason": None, "created_at": NOW, "next_attempt_at": NOW,
             "lease_until": None, "claimed_by": None, "delivered_at": None}
            for n, correlation in ((1, "R" * 255), (2, None))
        ])
    for n in (1, 2):
        assert raw(engine, f"driver-{n}") == raw(engine, f"core-{n}")
    assert raw(engine, "driver-1")["correlation_id"] == "R" * 255  # the column keeps its first 255 characters


def test_a_message_id_already_there_is_left_as_it_is(engine: Engine) -> None:
    with engine.begin() as connection:
        write_messages(connection, [message("same-1", "first")], NOW)
    with engine.begin() as connection:
        write_messages(connection, [message("same-1", "second"), message("other-1", "second")], NOW)
    assert raw(engine, "same-1")["correlation_id"] == "first"
    assert raw(engine, "other-1")["correlation_id"] == "second"


def test_a_failed_transaction_leaves_no_message(engine: Engine) -> None:
    try:
        with engine.begin() as connection:
            write_messages(connection, [message("rolled-back-1", None)], NOW)
            raise RuntimeError("the store failed")
    except RuntimeError:
        pass
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM cim_outbox")).scalar_one() == 0
