"""Every fault of the plan, shown happening to our client over loopback, and the plan's own rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from protocols.association import ExceptionReceived, SecurityFailure
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import ConnectionLost, ReadTimeout, SecurityError, ServiceError
from protocols.hdlc import FrameDiscarded
from protocols.xdlms.errors import ExceptionServiceError
from simulators.faults import FaultInjector, FaultPlan, ProbabilityError
from simulators.p2p import PointToPointMeter
from tests.simulators.netclient import HdlcTarget, NetClient
from tests.simulators.test_p2p import FIELD_NOW, read_real_day, real_meter
from tests.simulators.test_transport import (
    CLOCK,
    NOW,
    DoubleMeter,
    client_config,
    expected_rows,
    read_day,
    run,
    wait_for,
)

DAY = datetime(2026, 3, 5, tzinfo=UTC)
EXPECTED_DAY = expected_rows(DAY + timedelta(minutes=15), DAY + timedelta(days=1))


async def hdlc_client(p2p: PointToPointMeter, *, secure: bool = False, timeout: float = 0.15,
                      retries: int = 8) -> NetClient:
    # A small information field: the day of profile crosses in many segments, so many frames to damage.
    from protocols.hdlc import HdlcParameters

    target = HdlcTarget(physical=0x11, parameters=HdlcParameters(max_info_tx=128, max_info_rx=128))
    return await NetClient.open_hdlc(p2p.host, p2p.port, client_config(secure), target=target,
                                     timeout=timeout, retries=retries)


def discarded(client: NetClient) -> list[FrameDiscarded]:
    return [e for e in client.events if isinstance(e, FrameDiscarded)]


# --------------------------------------------------------------------------- byte level: HDLC frames


def test_bad_fcs_frames_are_discarded_and_recovered_by_polling() -> None:
    plan = FaultPlan(seed=7, name="meter-fcs", corrupt_fcs=0.2)

    meter = real_meter(True)

    async def body() -> None:
        async with PointToPointMeter(meter, interface="hdlc", faults=plan, physical_address=0x11) as p2p:
            client = await hdlc_client(p2p, secure=True)
            await client.associate()
            rows, expected = await read_real_day(client, meter)
            assert rows == expected
            await client.close()
            assert plan.applied["corrupt_fcs"] > 0
            assert any("FCS" in e.reason for e in discarded(client))
            assert client.polls > 0  # each damaged frame cost a timeout and a poll (or a new SNRM)

    run(body, 30)


def test_every_fcs_bad_ends_in_read_timeout_after_the_retries() -> None:
    plan = FaultPlan(name="meter-fcs-all")

    async def body() -> None:
        async with PointToPointMeter(DoubleMeter(), interface="hdlc", faults=plan, physical_address=0x11) as p2p:
            client = await hdlc_client(p2p, timeout=0.1, retries=2)
            await client.associate()
            plan.corrupt_fcs = 1.0  # changed while running
            with pytest.raises(ReadTimeout):
                await client.get(8, CLOCK, 2)
            assert client.polls == 2
            # The answer and both repeats went out with a bad FCS; the client, hunting for the next
            # good frame, reports the run of bad frames as one discard.
            assert plan.applied["corrupt_fcs"] >= 3
            assert [e for e in discarded(client) if "FCS" in e.reason]
            await client.close()

    run(body)


def test_truncated_hdlc_frames_are_discarded_and_recovered() -> None:
    plan = FaultPlan(seed=3, name="meter-trunc", truncate_frame=0.15)

    meter = real_meter(False)

    async def body() -> None:
        async with PointToPointMeter(meter, interface="hdlc", faults=plan, physical_address=0x11) as p2p:
            client = await hdlc_client(p2p)
            await client.associate()
            rows, expected = await read_real_day(client, meter)
            assert rows == expected
            await client.close()
            assert plan.applied["truncate_frame"] > 0
            assert discarded(client)
            assert client.polls > 0

    run(body, 30)


def test_truncated_wrapper_pdu_leaves_the_client_waiting() -> None:
    plan = FaultPlan(name="meter-trunc-wrapper")

    async def body() -> None:
        async with PointToPointMeter(DoubleMeter(), faults=plan) as p2p:
            client = await NetClient.open_wrapper(p2p.host, p2p.port, client_config(False), timeout=0.3)
            await client.associate()
            plan.truncate_frame = 1.0
            with pytest.raises(ReadTimeout):
                await client.get(8, CLOCK, 2)
            assert plan.applied["truncate_frame"] == 1
            await client.close()

    run(body)


# --------------------------------------------------------------------------- byte level: connections


def test_slow_answers_take_the_delay_and_time_out_a_hasty_client() -> None:
    plan = FaultPlan(name="meter-slow")

    async def body() -> None:
        async with PointToPointMeter(DoubleMeter(), faults=plan) as p2p:
            client = await NetClient.open_wrapper(p2p.host, p2p.port, client_config(False), timeout=2.0)
            await client.associate()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await client.get(8, CLOCK, 2)
            fast = loop.time() - started
            plan.answer_delay = 0.4
            started = loop.time()
            assert (await client.get_data(8, CLOCK, 2)).value.to_datetime() == NOW
            slow = loop.time() - started
            assert slow >= 0.4 and fast < slow
            client.timeout = 0.1
            with pytest.raises(ReadTimeout):
                await client.get(8, CLOCK, 2)
            await client.close()

    run(body)


def test_refused_connections_during_a_wan_outage_then_recovery() -> None:
    plan = FaultPlan(name="dc-wan", refuse_connections=True)

    async def body() -> None:
        async with PointToPointMeter(DoubleMeter(), faults=plan) as p2p:
            client = await NetClient.open_wrapper(p2p.host, p2p.port, client_config(False), timeout=2.0)
            with pytest.raises(ConnectionLost):
                await client.associate()
            await client.close()
            assert plan.applied["refuse_connections"] == 1
            plan.refuse_connections = False  # the outage ends
            client = await NetClient.open_wrapper(p2p.host, p2p.port, client_config(False), timeout=2.0)
            await client.associate()
            plan.refuse_connections = True  # a new outage also cuts the open connection
            with pytest.raises(ConnectionLost):
                await client.get(8, CLOCK, 2)
            await client.close()

    run(body)


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
def test_connection_dropped_mid_transfer(interface: str) -> None:
    plan = FaultPlan(seed=1, name="dc-drop")
    meter = DoubleMeter()

    async def body() -> None:
        async with PointToPointMeter(meter, interface=interface, faults=plan,  # type: ignore[arg-type]
                                     physical_address=0x11) as p2p:
            if interface == "wrapper":
                client = await NetClient.open_wrapper(p2p.host, p2p.port, client_config(False), timeout=2.0)
            else:
                client = await hdlc_client(p2p, timeout=2.0)
            await client.associate()
            plan.drop_mid_transfer = 1.0
            with pytest.raises(ConnectionLost):
                await read_day(client)
            await client.close()
            await wait_for(lambda: meter.closed == 1)  # the session ended with the connection
            assert plan.applied["drop_mid_transfer"] == 1

    run(body)


def test_silent_modem_accepts_but_never_answers() -> None:
    plan = FaultPlan(name="meter-modem", silent=True)
    meter = DoubleMeter()

    async def body() -> None:
        async with PointToPointMeter(meter, faults=plan) as p2p:
            client = await NetClient.open_wrapper(p2p.host, p2p.port, client_config(False), timeout=0.3)
            with pytest.raises(ReadTimeout):
                await client.associate()
            await client.close()
            assert meter.handled == 0

    run(body)


# --------------------------------------------------------------------------- APDU level


def test_exception_response_instead_of_the_answer() -> None:
    plan = FaultPlan(name="meter-exc", exception_error=ExceptionServiceError.SERVICE_NOT_SUPPORTED)

    async def body() -> None:
        async with PointToPointMeter(real_meter(True), faults=plan) as p2p:
            client = await NetClient.open_wrapper(p2p.host, p2p.port, client_config(True))
            await client.associate()
            plan.exception_response = 1.0
            with pytest.raises(ServiceError) as caught:
                await client.get(8, CLOCK, 2)
            assert caught.value.code == ExceptionServiceError.SERVICE_NOT_SUPPORTED
            assert any(isinstance(e, ExceptionReceived) for e in client.events)
            plan.exception_response = 0.0
            assert CosemDateTime.decode((await client.get_data(8, CLOCK, 2)).value).to_datetime() == FIELD_NOW
            await client.release()  # ACSE is never answered with an exception
            await client.close()

    run(body)


def test_replayed_invocation_counter_is_refused_by_our_client() -> None:
    plan = FaultPlan(name="meter-replay")

    async def body() -> None:
        async with PointToPointMeter(real_meter(True), faults=plan, interface="hdlc",
                                     physical_address=0x11) as p2p:
            client = await hdlc_client(p2p, secure=True, timeout=2.0)
            await client.associate()
            await client.get(8, CLOCK, 2)
            accepted = client.association.server_invocation_counter
            plan.replay_counter = 1.0
            with pytest.raises(SecurityError):
                await client.get(8, CLOCK, 2)
            failures = [e for e in client.events if isinstance(e, SecurityFailure)]
            assert failures and client.association.server_invocation_counter == accepted
            plan.replay_counter = 0.0
            assert CosemDateTime.decode((await client.get_data(8, CLOCK, 2)).value).to_datetime() == FIELD_NOW
            await client.close()

    run(body)


# --------------------------------------------------------------------------- the plan itself


def test_plan_rejects_impossible_values() -> None:
    with pytest.raises(ProbabilityError, match="corrupt_fcs"):
        FaultPlan(corrupt_fcs=1.5)
    with pytest.raises(ProbabilityError, match="answer_delay"):
        FaultPlan(answer_delay=-1)
    plan = FaultPlan()
    plan.loss = 0.5  # type: ignore[attr-defined]  # not a fault field: validate ignores it
    plan.truncate_frame = -0.1
    with pytest.raises(ProbabilityError):
        plan.validate()


def test_decisions_are_deterministic_from_the_seed_and_independent_per_kind() -> None:
    def draws(plan: FaultPlan) -> list[bytes]:
        injector = FaultInjector(plan)
        return [injector.damage_frame(bytes(range(20)), has_fcs=True) for _ in range(200)]

    first = draws(FaultPlan(seed=11, name="m", corrupt_fcs=0.3))
    assert first == draws(FaultPlan(seed=11, name="m", corrupt_fcs=0.3))
    assert first != draws(FaultPlan(seed=12, name="m", corrupt_fcs=0.3))
    damaged = sum(frame != bytes(range(20)) for frame in first)
    assert 30 < damaged < 90  # about 30 % of 200
    # Turning truncation on does not change which frames get a bad FCS: each kind has its own stream.
    alone = FaultPlan(seed=11, name="m", corrupt_fcs=0.3)
    both = FaultPlan(seed=11, name="m", corrupt_fcs=0.3, truncate_frame=0.5)
    draws(alone)
    draws(both)
    assert alone.applied["corrupt_fcs"] == both.applied["corrupt_fcs"] == damaged
    assert both.applied["truncate_frame"] > 0


def test_no_faults_means_no_randomness_and_nothing_applied() -> None:
    plan = FaultPlan(seed=5)
    injector = FaultInjector(plan)
    frame = bytes(range(30))
    assert all(injector.damage_frame(frame, has_fcs=True) == frame for _ in range(100))
    assert injector.drop_point(100) is None
    assert injector.exception_instead(b"\xc0\x01\x81") is None
    assert not plan.any_byte_fault
    assert plan.applied == {}
