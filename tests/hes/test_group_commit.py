"""Group commit: concurrent tasks' database work in one transaction per flush, each task with its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import Connection, Engine, text

from hes.db.group_commit import GroupCommit, for_loop


def _table(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE gc_probe (k INTEGER PRIMARY KEY)"))


def _stored(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(text("SELECT k FROM gc_probe ORDER BY k"))]


def _insert(connection: Connection, requests: Sequence[int]) -> list[str]:
    out = []
    for k in requests:
        if k < 0:
            raise ValueError(f"bad request {k}")
        connection.execute(text("INSERT INTO gc_probe (k) VALUES (:k)"), {"k": k})
        out.append(f"stored {k}")
    return out


def test_concurrent_requests_share_one_transaction_and_get_their_own_answers(engine: Engine) -> None:
    _table(engine)

    async def body() -> tuple[GroupCommit[int, str], list[str]]:
        batcher: GroupCommit[int, str] = GroupCommit(engine, _insert, linger=0.01, max_requests=100)
        answers = await asyncio.gather(*(batcher.submit(k) for k in range(10)))
        return batcher, answers

    batcher, answers = asyncio.run(body())
    assert answers == [f"stored {k}" for k in range(10)]
    assert (batcher.flushes, batcher.requests) == (1, 10)
    assert _stored(engine) == list(range(10))


def test_a_bad_request_fails_alone_and_the_others_are_stored(engine: Engine) -> None:
    _table(engine)

    async def body() -> tuple[GroupCommit[int, str], list[object]]:
        batcher: GroupCommit[int, str] = GroupCommit(engine, _insert, linger=0.01)
        answers = await asyncio.gather(*(batcher.submit(k) for k in (1, 2, -3, 4)), return_exceptions=True)
        return batcher, answers

    batcher, answers = asyncio.run(body())
    assert batcher.flushes == 1 and batcher.requests == 4
    assert answers[:2] == ["stored 1", "stored 2"] and answers[3] == "stored 4"
    assert isinstance(answers[2], ValueError) and "bad request -3" in str(answers[2])
    assert _stored(engine) == [1, 2, 4]  # the shared transaction was rolled back, then each ran alone


def test_a_full_queue_flushes_at_once_and_nothing_is_durable_before_its_flush(engine: Engine) -> None:
    _table(engine)

    async def body() -> None:
        batcher: GroupCommit[int, str] = GroupCommit(engine, _insert, linger=30.0, max_requests=3)
        first = asyncio.ensure_future(asyncio.gather(batcher.submit(1), batcher.submit(2)))
        await asyncio.sleep(0.05)
        assert not first.done() and _stored(engine) == []  # waiting for the linger: not committed yet
        assert await batcher.submit(3) == "stored 3"  # the third fills the queue: flushed without waiting
        assert await first == ["stored 1", "stored 2"]
        assert batcher.flushes == 1

    asyncio.run(asyncio.wait_for(body(), 10))
    assert _stored(engine) == [1, 2, 3]


def test_one_group_commit_per_loop_engine_and_purpose(engine: Engine) -> None:
    async def body() -> tuple[object, object, object]:
        a = for_loop(engine, "x", _insert)
        return a, for_loop(engine, "x", _insert), for_loop(engine, "y", _insert)

    a, same, other = asyncio.run(body())
    assert a is same and a is not other
    again, _, _ = asyncio.run(body())  # another event loop: another batcher (futures belong to one loop)
    assert again is not a
    with pytest.raises(ValueError):
        GroupCommit(engine, _insert, max_requests=0)
