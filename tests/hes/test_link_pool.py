"""Reused DC connections (``hes.transport.pool.LinkPool``): one TCP connection for consecutive sessions, none
kept after a bad session, a stale one retried on a new connection with higher invocation counters, idle
expiry and closing, and the plan engine's worker with its own pool. Loopback only, every test time-bounded.

The simulated DC is served here by ``serve_wrapper`` (its tables, our server), so a test can give it an
idle timeout, drop its connections, and see each session's TCP connection: a server session runs in
the task of the connection that carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import Engine

from hes.keys import MasterKey
from hes.model import MeterTarget, ViaConcentrator
from hes.registry import Registry
from hes.session import MeterSession, Timeouts, open_session
from hes.transport import WrapperLink, open_tcp
from hes.transport.pool import LinkPool
from protocols.errors import ConnectionLost, ReadTimeout, SecurityError
from protocols.wrapper import WrapperFrame
from scheduler.contract import ExecutionContext
from scheduler.engine import EngineOptions, Worker
from scheduler.executors import default_executors
from scheduler.plans import Plans, PlanSpec
from simulators.clock import FieldClock
from simulators.endpoint import LogicalDevice, Session
from simulators.energy import interval_end, interval_index, profile_intervals
from simulators.faults import FaultPlan
from simulators.fleet import Fleet, FleetOptions
from simulators.manifest import ManifestConcentrator
from simulators.meter import SERIAL_NUMBER
from simulators.transport import close_connections, serve_wrapper, stop_server
from tests.fieldtime import EPOCH, interval_floor, profile_state
from tests.hes.test_session import dc_target, expected_day, read_profile_day, reservation
from tests.hes.test_transport import run, server, silent

SEED = 11
FAST = Timeouts(connect=2.0, read=0.5, release=0.5, retries=1)
Mode = Literal["gateway", "concentrated"]


# --- a simulated DC whose connections the test sees --------------------------------------------------------


class _SeenSession:
    def __init__(self, inner: Session, dc: ServedDc) -> None:
        self._inner = inner
        self._dc = dc

    async def handle(self, apdu: bytes) -> list[bytes]:
        task = asyncio.current_task()
        assert task is not None
        self._dc.connections.add(task)
        return await self._inner.handle(apdu)

    def close(self) -> None:
        self._inner.close()


class _SeenDevice:
    def __init__(self, inner: LogicalDevice, dc: ServedDc) -> None:
        self._inner = inner
        self._dc = dc

    def open_session(self, client_sap: int) -> Session | None:
        session = self._inner.open_session(client_sap)
        return None if session is None else _SeenSession(session, self._dc)


@dataclasses.dataclass(eq=False)
class ServedDc:
    """The fleet's DC served on a port of the test's own: its server, fault plan and the connections seen."""

    fleet: Fleet
    manifest: ManifestConcentrator
    server: asyncio.Server
    port: int
    faults: FaultPlan
    #: The connection handler tasks that carried a session: one per TCP connection used.
    connections: set[asyncio.Task[Any]] = dataclasses.field(default_factory=set)

    def target(self, index: int, mode: Mode = "concentrated") -> MeterTarget:
        target = dc_target(self.manifest, index, mode)
        assert isinstance(target.route, ViaConcentrator)
        return dataclasses.replace(target, route=dataclasses.replace(target.route, port=self.port))

    def open_connections(self) -> int:
        return sum(not task.done() for task in self.connections)

    async def all_closed(self, limit: float = 2.0) -> None:
        """Wait until the DC has seen every connection it served closed."""
        async with asyncio.timeout(limit):
            while self.open_connections():
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def served_dc(meters: int = 5, *, idle_timeout: float = 60.0) -> AsyncIterator[ServedDc]:
    fleet = Fleet(FleetOptions(concentrators=1, meters_per_dc=meters, seed=SEED, plc_latency=0.0, loss=0.0,
                               schedule=False, epoch=EPOCH), clock=FieldClock(EPOCH, 0.0))
    faults = FaultPlan(seed=SEED, name="served")
    async with fleet:
        concentrator = fleet.concentrators["DC0001"]
        dc: ServedDc | None = None

        def devices(wport: int) -> LogicalDevice | None:
            device = concentrator.logical_device(wport)
            return None if device is None or dc is None else _SeenDevice(device, dc)

        srv = await serve_wrapper(devices, "127.0.0.1", 0, faults, idle_timeout=idle_timeout)
        try:
            dc = ServedDc(fleet, fleet.manifest().concentrators[0], srv, srv.sockets[0].getsockname()[1], faults)
            yield dc
        finally:
            await stop_server(srv)


def run_dc(body: Callable[[ServedDc], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        async with served_dc(**options) as dc:
            await body(dc)

    run(main, limit=20.0)


async def read_serial(target: MeterTarget, pool: LinkPool | None, start: int = 1,
                      timeouts: Timeouts = FAST) -> None:
    async with open_session(target, reservation(start), timeouts=timeouts, pool=pool) as s:
        assert (await s.get(1, SERIAL_NUMBER, 2)).value == target.serial


# --- the stream and the wrapper link ----------------------------------------------------------------------


def test_a_stream_is_reusable_only_when_nothing_is_pending_on_it() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()

    async def body() -> None:
        async with server(echo) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            assert stream.reusable
            await stream.write(b"ping")
            await asyncio.sleep(0.05)
            assert not stream.reusable  # the answer waits in the buffer
            assert await stream.read(4096, 10.0) == b"ping"
            assert stream.reusable
            await stream.write(b"pong")
            assert await stream.read(4096, 10.0) == b"pong"  # this read waited, with a timer
            # The long deadline's timer is still armed (on purpose, for the next read); parking drops it.
            assert stream._timer is not None
            stream.park()
            assert stream._timer is None and stream._deadline is None
            await stream.write(b"again")
            assert await stream.read(4096, 0.5) == b"again"
            stream.close()
            assert not stream.reusable
            await stream.aclose()  # already closed: nothing left to do

        async with server(silent) as port:
            stream = await open_tcp("127.0.0.1", port, timeout=2.0)
            with pytest.raises(ReadTimeout):
                await stream.read(4096, 0.05)
            assert stream.reusable  # a timed-out read leaves nothing behind in the stream itself
        # The server closed its side: the stream saw the FIN.
        await asyncio.sleep(0.05)
        assert not stream.reusable
        await stream.aclose()

    run(body)


def test_the_wrapper_link_hands_its_stream_over_only_at_a_pdu_boundary() -> None:
    whole = WrapperFrame(1, 0x10, b"\xc4\x01\xc1\x00\x09\x01\x41").encode()

    async def answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(4096):
            if request.endswith(b"two"):
                writer.write(whole + whole)  # one more than asked for
            elif request.endswith(b"half"):
                writer.write(whole + whole[:5])  # and the start of another
            else:
                writer.write(whole)
            await writer.drain()

    async def body() -> None:
        async with server(answers) as port:
            for request, detachable in ((b"one", True), (b"two", False), (b"half", False)):
                stream = await open_tcp("127.0.0.1", port, timeout=2.0)
                link = WrapperLink(stream, client_wport=0x10, server_wport=1)
                await link.send([request])
                # The whole answer waits in the stream: one read takes it all, the first APDU comes out, and
                # the rest stays in the link (a whole APDU queued, or the start of a PDU).
                await asyncio.sleep(0.05)
                assert await link.receive(2.0) == whole[8:]
                handed = link.detach()
                assert (handed is stream) is detachable, request
                assert link.detach() is None  # once only
                if detachable:
                    with pytest.raises(ConnectionLost, match="handed its stream over"):
                        await link.send([b"late"])
                    await link.aclose()  # the stream is not the link's any more: left open
                    assert stream.reusable
                    await stream.aclose()
                else:
                    await link.aclose()
                    assert not stream.reusable

    run(body)


# --- sessions through a pool ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["concentrated", "gateway"])
def test_consecutive_sessions_to_a_dcs_meters_use_one_connection(mode: Mode) -> None:
    async def body(dc: ServedDc) -> None:
        pool = LinkPool()
        day = interval_floor(dc.fleet.clock.now()) - timedelta(days=2 if mode == "gateway" else 1)
        for index in range(5):
            target = dc.target(index, mode)
            async with open_session(target, reservation(), timeouts=FAST, pool=pool) as s:
                assert (await s.get(1, SERIAL_NUMBER, 2)).value == target.serial
                assert await read_profile_day(s, day) == expected_day(SEED, target.serial, day)
            assert pool.idle_streams() == 1
        assert (pool.opened, pool.reused, pool.discarded) == (1, 4, 0)
        assert len(dc.connections) == 1 and dc.open_connections() == 1  # the DC's view: one connection, still open

        # The same meter again on the same connection: a new association (above the counters used before).
        await read_serial(dc.target(0, mode), pool, start=500)
        assert (pool.opened, pool.reused, len(dc.connections)) == (1, 5, 1)

        await pool.aclose()
        assert pool.closed and pool.idle_streams() == 0 and pool.discarded == 1
        await dc.all_closed()

        # Without a pool: one connection per session, as before.
        for index in range(3):
            await read_serial(dc.target(index, mode), None, start=800)
        assert len(dc.connections) == 4

    run_dc(body)


def test_concurrent_sessions_keep_at_most_per_peer_idle_streams() -> None:
    async def body(dc: ServedDc) -> None:
        pool = LinkPool(per_peer=1)
        async with open_session(dc.target(0), reservation(), timeouts=FAST, pool=pool) as a, \
                open_session(dc.target(1), reservation(), timeouts=FAST, pool=pool) as b:
            await asyncio.gather(a.get(1, SERIAL_NUMBER, 2), b.get(1, SERIAL_NUMBER, 2))
        assert (pool.opened, pool.reused, pool.discarded, pool.idle_streams()) == (2, 0, 1, 1)
        await read_serial(dc.target(2), pool)
        assert (pool.opened, pool.reused) == (2, 1)
        await pool.aclose()
        await dc.all_closed()

    run_dc(body)


class _Boom(Exception):
    pass


@pytest.mark.parametrize("how", ["caller-error", "read-timeout", "release-timeout", "cancelled"])
def test_a_session_that_ended_badly_does_not_give_its_stream_back(
        how: str, caplog: pytest.LogCaptureFixture) -> None:
    # Answers come late enough to time a read out, early enough for a release after it.
    timeouts = Timeouts(connect=2.0, read=0.3, release=2.0, retries=1)

    async def body(dc: ServedDc) -> None:
        pool = LinkPool()
        await read_serial(dc.target(0), pool)
        assert pool.idle_streams() == 1
        target = dc.target(1)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hes.session"):
            if how == "caller-error":
                with pytest.raises(_Boom):
                    async with open_session(target, reservation(), timeouts=timeouts, pool=pool) as s:
                        await s.get(1, SERIAL_NUMBER, 2)
                        raise _Boom
            elif how == "read-timeout":
                async with open_session(target, reservation(), timeouts=timeouts, pool=pool) as s:
                    dc.faults.answer_delay = 0.6
                    with pytest.raises(ReadTimeout):
                        await s.get(1, SERIAL_NUMBER, 2)
                    dc.faults.answer_delay = 0.0
                    await asyncio.sleep(0.5)  # the late answer arrives meanwhile
                    # The session is usable, and ends with a clean release; still, the late answer
                    # crossed this connection after its request was given up: it is not reused.
                    assert (await s.get(1, SERIAL_NUMBER, 2)).value == target.serial
            elif how == "release-timeout":
                async with open_session(target, reservation(), timeouts=FAST, pool=pool) as s:
                    await s.get(1, SERIAL_NUMBER, 2)
                    dc.faults.answer_delay = 1.0
            else:
                async with open_session(target, reservation(), timeouts=FAST, pool=pool) as s:
                    dc.faults.answer_delay = 0.2
                    task = asyncio.create_task(s.get(1, SERIAL_NUMBER, 2))
                    await asyncio.sleep(0.05)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                    dc.faults.answer_delay = 0.0
        released = not any(("release failed" in r.getMessage() or "release answered" in r.getMessage())
                           for r in caplog.records)
        assert released == (how != "release-timeout"), caplog.text
        # The stream was taken from the pool, and closed rather than given back.
        assert (pool.opened, pool.reused, pool.idle_streams()) == (1, 1, 0)
        dc.faults.answer_delay = 0.0
        await dc.all_closed()
        # The next session connects anew and works.
        await read_serial(dc.target(2), pool)
        assert (pool.opened, pool.idle_streams()) == (2, 1)
        await pool.aclose()

    run_dc(body)


def test_an_association_rejected_or_refused_is_not_given_back() -> None:
    async def body(dc: ServedDc) -> None:
        pool = LinkPool()
        await read_serial(dc.target(0), pool)
        target = dc.target(1)
        assert isinstance(target.route, ViaConcentrator) and target.route.dc_security.ak is not None
        wrong = dataclasses.replace(target.route.dc_security, ak=bytes(16))
        bad = dataclasses.replace(target, route=dataclasses.replace(target.route, dc_security=wrong))
        with pytest.raises(SecurityError):
            await read_serial(bad, pool)
        assert (pool.opened, pool.reused, pool.idle_streams()) == (1, 1, 0)
        await pool.aclose()

    run_dc(body)


# --- the DC closing idle connections ---------------------------------------------------------------------


def recording_aarqs(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """(the invocation counter each AARQ was built with, every counter consumed), in order."""
    aarqs: list[int] = []
    used: list[int] = []
    associate, counter_used = MeterSession._associate, MeterSession._counter_used

    async def recording_associate(self: MeterSession) -> None:
        aarqs.append(self._association.next_invocation_counter)
        await associate(self)

    def recording_counter(self: MeterSession, value: int) -> None:
        used.append(value)
        counter_used(self, value)

    monkeypatch.setattr(MeterSession, "_associate", recording_associate)
    monkeypatch.setattr(MeterSession, "_counter_used", recording_counter)
    return aarqs, used


def test_a_connection_the_dc_closed_while_idle_is_not_reused() -> None:
    async def body(dc: ServedDc) -> None:
        pool = LinkPool()
        await read_serial(dc.target(0), pool)
        await dc.all_closed()  # the DC's idle timer closed it; the pool's stream saw the FIN
        await read_serial(dc.target(1), pool)
        assert (pool.opened, pool.reused, pool.discarded) == (2, 0, 1)
        await pool.aclose()

    run_dc(body, idle_timeout=0.2)


def test_a_stale_connection_is_retried_on_a_new_one_with_higher_invocation_counters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    aarqs, used = recording_aarqs(monkeypatch)

    async def body(dc: ServedDc) -> None:
        pool = LinkPool()
        await read_serial(dc.target(0), pool)
        assert pool.idle_streams() == 1
        first = len(aarqs)
        # The DC drops the connection, and the pool has not seen it yet when the next session takes it.
        assert close_connections(dc.server) == 1
        target = dc.target(1)
        async with open_session(target, reservation(10), timeouts=FAST, pool=pool) as s:
            assert (await s.get(1, SERIAL_NUMBER, 2)).value == target.serial
        assert (pool.opened, pool.reused, pool.discarded) == (2, 1, 1)
        assert len(dc.connections) == 2
        failed, retried = aarqs[first:]
        assert failed == 10  # the reservation's first counter, consumed by the AARQ the DC never answered
        assert retried > failed and retried in used
        assert len(used) == len(set(used))  # no invocation counter used twice
        assert s.counters_used is not None and s.counters_used >= retried
        assert pool.idle_streams() == 1  # the new connection went back to the pool
        await pool.aclose()

    run_dc(body)


def test_a_stale_connection_to_a_dc_that_is_down_is_a_connection_lost() -> None:
    async def body(dc: ServedDc) -> None:
        pool = LinkPool()
        await read_serial(dc.target(0), pool)
        dc.faults.refuse_connections = True  # the WAN goes down: open connections drop on their next bytes
        with pytest.raises(ConnectionLost):
            await read_serial(dc.target(1), pool)
        assert (pool.opened, pool.reused, pool.discarded, pool.idle_streams()) == (2, 1, 1, 0)
        dc.faults.refuse_connections = False
        await read_serial(dc.target(1), pool, start=100)
        await pool.aclose()

    run_dc(body)


def test_a_reused_connection_that_fails_after_an_answer_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    aarqs, _ = recording_aarqs(monkeypatch)

    async def body(dc: ServedDc) -> None:
        pool = LinkPool()
        await read_serial(dc.target(0), pool)
        dc.faults.drop_mid_transfer = 1.0  # the DC answers part of the AARE, then drops the connection
        with pytest.raises(ConnectionLost):
            await read_serial(dc.target(1), pool)
        assert len(aarqs) == 2 and (pool.opened, pool.reused) == (1, 1)
        await pool.aclose()

    run_dc(body)


# --- idle expiry and closing ----------------------------------------------------------------------------


def test_idle_streams_expire_and_aclose_closes_the_rest() -> None:
    async def body(dc: ServedDc) -> None:
        with pytest.raises(ValueError):
            LinkPool(per_peer=0)
        with pytest.raises(ValueError):
            LinkPool(idle=0)
        pool = LinkPool(idle=0.2)
        await read_serial(dc.target(0), pool)
        assert pool.idle_streams("127.0.0.1", dc.port) == 1
        # Nobody uses the pool: its sweep closes the stream, and the DC sees the connection end.
        await asyncio.sleep(0.35)
        assert pool.idle_streams() == 0 and pool.discarded == 1
        await dc.all_closed()

        # Expired when taken (the sweep not yet run): a new connection.
        await read_serial(dc.target(1), pool)
        assert pool._sweep is not None
        pool._sweep.cancel()
        pool._sweep = None
        await asyncio.sleep(0.25)
        await read_serial(dc.target(2), pool)
        assert (pool.opened, pool.reused, pool.discarded) == (3, 0, 2)

        # Two idle streams (two sessions at once), closed by aclose.
        async with open_session(dc.target(3), reservation(), timeouts=FAST, pool=pool) as a, \
                open_session(dc.target(4), reservation(), timeouts=FAST, pool=pool) as b:
            await asyncio.gather(a.get(1, SERIAL_NUMBER, 2), b.get(1, SERIAL_NUMBER, 2))
        assert pool.idle_streams() == 2
        await pool.aclose()
        assert pool.idle_streams() == 0 and pool._sweep is None
        await dc.all_closed()

        # A closed pool keeps nothing: sessions connect and close as without one.
        await read_serial(dc.target(0), pool, start=100)
        assert pool.idle_streams() == 0
        await dc.all_closed()
        await pool.aclose()

    run_dc(body)


def test_a_pool_belongs_to_one_event_loop() -> None:
    pool = LinkPool()

    async def first() -> None:
        async with served_dc(1) as dc:
            await read_serial(dc.target(0), pool)
            await pool.aclose()

    async def second() -> None:
        with pytest.raises(RuntimeError, match="one event loop"):
            await pool.open("127.0.0.1", 9, timeout=1.0)

    run(first)
    run(second)


# --- the plan engine ----------------------------------------------------------------------------------------


A_PLUS, A_MINUS = "1.0.1.8.0.255", "1.0.2.8.0.255"


def expected_profile(serial: str, start: Any, end: Any) -> dict[tuple[Any, str], float]:
    out: dict[tuple[Any, str], float] = {}
    for row in profile_intervals(SEED, serial, interval_index(start), interval_index(end) - 1):
        out[interval_end(row.interval), A_PLUS] = row.a_plus
        out[interval_end(row.interval), A_MINUS] = row.a_minus
    return out


def test_a_worker_reuses_dc_connections_and_stores_the_same_data(
        tmp_path: Path, engine: Engine, master_key: MasterKey) -> None:
    from tests.scheduler.test_field import items_of, stored_profile

    connections: set[asyncio.Task[Any]] = set()

    class Seen:
        def __init__(self, inner: Session) -> None:
            self._inner = inner

        async def handle(self, apdu: bytes) -> list[bytes]:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            return await self._inner.handle(apdu)

        def close(self) -> None:
            self._inner.close()

    class SeenDevice:
        def __init__(self, inner: LogicalDevice) -> None:
            self._inner = inner

        def open_session(self, client_sap: int) -> Session | None:
            session = self._inner.open_session(client_sap)
            return None if session is None else Seen(session)

    fleet = Fleet(FleetOptions(concentrators=1, meters_per_dc=4, seed=SEED, schedule=False, loss=0.0,
                               epoch=EPOCH), clock=FieldClock(EPOCH, 0.0))
    concentrator = fleet.concentrators["DC0001"]
    original = concentrator.logical_device

    def seen(wport: int) -> LogicalDevice | None:
        device = original(wport)
        return None if device is None else SeenDevice(device)

    concentrator.logical_device = seen  # type: ignore[method-assign]
    serials = [f"SIM0001{i:05d}" for i in range(4)]
    timeouts = Timeouts(connect=1.0, read=1.0, release=0.3, retries=1)

    async def body() -> None:
        async with fleet:
            registry = Registry(engine, master_key, clock=fleet.clock.now)
            fleet.write_manifest(tmp_path / "fleet.json")
            registry.import_manifest(tmp_path / "fleet.json")
            context = ExecutionContext(registry, engine, fleet.clock.now, timeouts=timeouts)
            plans = Plans(engine)
            plans.create(PlanSpec("pooled", "concentrator", "DC0001", ("profile", "daily")))
            # One item in flight per DC: the sessions follow each other, and each takes the last one's connection.
            worker = Worker(context, default_executors(), EngineOptions(worker_id="w", poll=0.05, per_concentrator=1))

            first = plans.start_run("pooled")
            await worker.work(run_id=first.id)
            rows = items_of(engine, first.id)
            # A day of profile (WARN where the simulator flags a power cut in it) and the daily values.
            day = interval_index(EPOCH - timedelta(days=1))
            assert {(r.serial, r.command): r.state for r in rows} == {
                (s, c): profile_state(SEED, s, day, day + 95) if c == "profile" else "EXE"
                for s in serials for c in ("profile", "daily")}, [(r.state, r.reason, r.observations) for r in rows]
            for serial in serials:
                assert stored_profile(engine, serial) == expected_profile(serial, EPOCH - timedelta(days=1), EPOCH)
            assert len(connections) == 1  # four meters, profile and daily values each: one TCP connection
            # The worker's pool was closed when it returned: the DC sees no connection left open.
            async with asyncio.timeout(2.0):
                while any(not task.done() for task in connections):
                    await asyncio.sleep(0.01)
            assert worker.context.links is None and not worker._contexts

            # The next pass, an hour later: a new pool, a new connection, four intervals more per meter.
            fleet.clock.jump(timedelta(hours=1))
            await concentrator.read_cycle()
            second = plans.start_run("pooled")
            await worker.work(run_id=second.id)
            # Four intervals more each (WARN where one has a power cut); the daily values are not due.
            assert {(r.serial, r.command): r.state for r in items_of(engine, second.id)} == {
                (s, c): profile_state(SEED, s, day + 96, day + 99) if c == "profile" else "EXE"
                for s in serials for c in ("profile", "daily")}
            for serial in serials:
                assert stored_profile(engine, serial) == expected_profile(serial, EPOCH - timedelta(days=1),
                                                                          EPOCH + timedelta(hours=1))
            assert len(connections) == 2

            # A pool of the caller's: used, and left open for the caller to close.
            pool = LinkPool()
            own = Worker(dataclasses.replace(context, links=pool), default_executors(),
                         EngineOptions(worker_id="w2", poll=0.05, per_concentrator=1))
            fleet.clock.jump(timedelta(hours=1))
            await concentrator.read_cycle()
            third = plans.start_run("pooled")
            await own.work(run_id=third.id)
            assert pool.opened == 1 and pool.reused == 3 and not pool.closed and pool.idle_streams() == 1
            await pool.aclose()

    run(body, limit=60.0)
