"""Group commit: the database work of many concurrent asyncio tasks, done in one transaction per flush.

A bulk collection runs tens of sessions at once and each ends with a small transaction (its rows,
its watermark); the commit itself (an fsync on SQLite, a round trip and a WAL flush on PostgreSQL)
then costs more than the statements, and so does doing per meter what can be done once per batch.
``GroupCommit(engine, work)`` takes requests from many tasks (``submit(request)`` waits for the
answer); its queue is flushed ``linger`` seconds after its first request, or at once when it holds
``max_requests``: ``work(connection, requests)`` then runs in ONE transaction, which commits once,
and each task gets its own answer (``work`` returns one per request, in order).

What a crash does: the requests of a flush commit together or not at all, exactly as each would
alone; a task learns its request is durable only when ``submit`` returns.

When ``work`` raises, the transaction is rolled back and each request is run again alone, in a
transaction of its own: one bad request fails alone (its task gets the exception) and the others
are stored. ``work`` should therefore turn the failures it expects into answers, and leave
exceptions for what cannot be helped (a database error, a bug).

The flush runs in the event loop's thread (the database calls block, as every other database call
of the head-end does). ``for_loop`` keeps one ``GroupCommit`` per (event loop, engine, purpose).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from hes.db.engine import storage_errors

__all__ = ["GroupCommit", "for_loop"]

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class GroupCommit(Generic[Request, Answer]):
    """Queue requests from many tasks; answer each flush's requests in one transaction (module docstring)."""

    def __init__(self, engine: Engine, work: Callable[[Connection, Sequence[Request]], Sequence[Answer]], *,
                 linger: float = 0.05, max_requests: int = 128) -> None:
        if linger < 0 or max_requests < 1:
            raise ValueError("linger must be >= 0 and max_requests >= 1")
        self.engine = engine
        self.work = work
        self.linger = linger
        self.max_requests = max_requests
        self._queue: list[tuple[Request, asyncio.Future[Answer]]] = []
        self._timer: asyncio.TimerHandle | None = None
        #: Flushes done and requests answered (for tests and figures).
        self.flushes = 0
        self.requests = 0

    async def submit(self, request: Request) -> Answer:
        """``request``'s answer, once the transaction that did its work has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._queue.append((request, future))
        if len(self._queue) >= self.max_requests:
            if self._timer is not None:
                self._timer.cancel()
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.linger, self.flush)
        return await future

    def flush(self) -> None:
        """Do the queued requests' work now (normally called by the timer or a full queue)."""
        self._timer = None
        queue, self._queue = self._queue, []
        if not queue:
            return
        self.flushes += 1
        self.requests += len(queue)
        if not self._run(queue, hand_errors=len(queue) == 1):
            for entry in queue:
                self._run([entry], hand_errors=True)

    def _run(self, queue: list[tuple[Request, asyncio.Future[Answer]]], *, hand_errors: bool) -> bool:
        """One transaction for ``queue``; False when it failed and ``hand_errors`` is not set (nothing handed)."""
        try:
            with storage_errors(self.engine), self.engine.begin() as connection:
                answers = self.work(connection, [request for request, _ in queue])
                if len(answers) != len(queue):
                    raise RuntimeError(f"group commit: {len(answers)} answers to {len(queue)} requests")
        except Exception as exc:
            if not hand_errors:
                return False
            for _, future in queue:
                if not future.done():
                    future.set_exception(exc)
            return True
        for (_, future), answer in zip(queue, answers, strict=True):
            if not future.done():
                future.set_result(answer)
        return True


_registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, str], GroupCommit[Any, Any]]] = (
    weakref.WeakKeyDictionary())


def for_loop(engine: Engine, purpose: str, work: Callable[[Connection, Sequence[Any]], Sequence[Any]], *,
             linger: float = 0.05, max_requests: int = 128) -> GroupCommit[Any, Any]:
    """The running loop's ``GroupCommit`` for ``engine`` and ``purpose`` (made on first use)."""
    loop = asyncio.get_running_loop()
    mine = _registry.setdefault(loop, {})
    key = (id(engine), purpose)
    found = mine.get(key)
    if found is None or found.engine is not engine:
        found = mine[key] = GroupCommit(engine, work, linger=linger, max_requests=max_requests)
    return found
